"""The baseline: the submit-then-poll loop the usual Binance withdrawal guides show.

For each withdrawal, one after the other: sign and POST ``withdraw/apply``, then poll
``withdraw/history`` for that id every ``--poll-s`` seconds until its status is final
(6 completed; 5 failure and 3 rejected end it too). Sends are never closer than
``1 / --rate`` seconds, the same pace the daemon is given. Plain httpx, HMAC-SHA256,
no persistence and no retries, on purpose: this is the script being compared against.

    python bench/baseline.py --base-url http://127.0.0.1:PORT --api-key K --api-secret S \
        --count 200 --rate 50 --coin USDT --network TRX --address T... --amount 11

Prints one JSON object: start/end (epoch s), per-withdrawal times, and counts.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
import uuid
from urllib.parse import urlencode

import httpx

FINAL = {6: "completed", 5: "failure", 3: "rejected"}


def signed(params: dict[str, object], secret: str) -> str:
    query = urlencode(params)
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--api-secret", required=True)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--rate", type=float, default=1.0, help="withdraw/apply calls per second")
    p.add_argument("--poll-s", type=float, default=1.0)
    p.add_argument("--coin", default="USDT")
    p.add_argument("--network", default="TRX")
    p.add_argument("--address", required=True)
    p.add_argument("--amount", default="11")
    p.add_argument("--deadline-s", type=float, default=1800.0, help="give up after this long")
    args = p.parse_args(argv)

    headers = {"X-MBX-APIKEY": args.api_key}
    interval = 1.0 / args.rate
    run_id = uuid.uuid4().hex[:8]
    started = time.time()
    deadline = started + args.deadline_s
    last_apply = 0.0
    items: list[dict[str, object]] = []
    counts = {"apply": 0, "history": 0, "errors": 0}
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=10.0) as http:
        for n in range(args.count):
            if time.time() > deadline:
                break
            wait = last_apply + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            last_apply = time.monotonic()
            params = {
                "coin": args.coin,
                "network": args.network,
                "address": args.address,
                "amount": args.amount,
                "withdrawOrderId": f"baseline-{run_id}-{n}",
                "timestamp": int(time.time() * 1000),
            }
            sent_at = time.time()
            reply = http.post("/sapi/v1/capital/withdraw/apply?" + signed(params, args.api_secret))
            counts["apply"] += 1
            if reply.status_code != 200:
                counts["errors"] += 1
                items.append({"n": n, "error": reply.text[:200], "sent_at": sent_at})
                continue
            withdraw_id = reply.json()["id"]
            status = None
            while status not in FINAL and time.time() < deadline:
                time.sleep(args.poll_s)
                query = {"idList": withdraw_id, "timestamp": int(time.time() * 1000)}
                answer = http.get(
                    "/sapi/v1/capital/withdraw/history?" + signed(query, args.api_secret)
                )
                counts["history"] += 1
                if answer.status_code != 200:
                    counts["errors"] += 1
                    continue
                rows = answer.json()
                if rows:
                    status = int(rows[0]["status"])
            items.append(
                {
                    "n": n,
                    "id": withdraw_id,
                    "sent_at": sent_at,
                    "done_at": time.time(),
                    "status": FINAL.get(status or -1, "unsettled"),
                }
            )
    ended = time.time()
    settled = sum(1 for i in items if i.get("status") == "completed")
    json.dump(
        {
            "start": started,
            "end": ended,
            "count": args.count,
            "completed": settled,
            "requests": counts,
            "items": items,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0 if settled == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
