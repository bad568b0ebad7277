"""The ccxt baseline: the withdraw-then-poll loop a ccxt user writes.

For each withdrawal, one after the other: ``exchange.withdraw(code, amount, address, tag,
params={'network': ...})``, then ``exchange.fetch_withdrawals(code, since=...)`` every
``--poll-s`` seconds until that withdrawal's unified status is final (``ok``, ``failed``
or ``canceled``). Sends are never closer than ``1 / --rate`` seconds, the pace the daemon
and ``bench/baseline.py`` are given. No withdrawOrderId, no persistence, no retries: the
script as the ccxt manual leads one to write it.

ccxt's **sync** API (``import ccxt``), because the loop is sequential by design: one
request in flight at a time, nothing to overlap, so ``ccxt.async_support`` would add an
event loop and change nothing measured. ccxt's own throttle (``enableRateLimit``) is left
at its default (on), as a user leaves it; at one poll a second it never waits.

ccxt's ``binance`` class is used unchanged except for where it connects (as in
``tests/integration/test_ccxt_sandbox.py``): every ``api.binance.com`` URL points at
``--base-url`` and the other hosts are dropped; spot markets only, no margin pairs; the
sandbox's URLs get ccxt's spot error table, as Binance's own host would.

ccxt passes amounts as floats (``--amount`` is parsed with ``float``); the benchmark
compares what the sandbox booked with ``Decimal(str(x))`` of the float given here.

``since``: ccxt dates a history item by its ``applyTime``, which has whole seconds, and
drops client-side every item dated before ``since``; so ``since`` = the time just before
the ``withdraw`` call misses the withdrawal whenever it is applied within that same
second (seen in an ad-hoc check, polling forever). The loop uses that time rounded down
to the second, less one second of margin.

    python bench/ccxt_baseline.py --base-url http://127.0.0.1:PORT --api-key K \
        --api-secret S --count 200 --rate 50 --coin USDT --network TRC20 \
        --address T... --amount 11

Prints one JSON object: start/end (epoch s), per-withdrawal times, and counts. Exits 3
without output when ccxt is not importable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lib import ccxt_final_status

NO_CCXT = 3


def sandbox_binance(ccxt: Any, base_url: str, api_key: str, secret: str) -> Any:
    """``ccxt.binance`` with its production URLs pointed at ``base_url``."""

    class SandboxBinance(ccxt.binance):  # type: ignore[misc,name-defined]
        def get_exceptions_by_url(self, url: str, exact_or_broad: str) -> dict[str, Any]:
            if url.startswith(base_url + "/"):
                table: dict[str, Any] = self.exceptions["spot"].get(exact_or_broad, {})
                return table
            found: dict[str, Any] = super().get_exceptions_by_url(url, exact_or_broad)
            return found

    exchange = SandboxBinance({"apiKey": api_key, "secret": secret})
    exchange.urls["api"] = {
        key: base_url + urlsplit(url).path
        for key, url in exchange.urls["api"].items()
        if urlsplit(url).netloc == "api.binance.com"
    }
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    exchange.options["fetchMargins"] = False
    return exchange


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--api-secret", required=True)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--rate", type=float, default=1.0, help="withdraw calls per second")
    p.add_argument("--poll-s", type=float, default=1.0)
    p.add_argument("--coin", default="USDT")
    p.add_argument("--network", default="TRC20", help="ccxt's unified network code")
    p.add_argument("--address", required=True)
    p.add_argument("--tag", default=None)
    p.add_argument("--amount", type=float, default=11.0)
    p.add_argument("--deadline-s", type=float, default=1800.0, help="give up after this long")
    args = p.parse_args(argv)
    try:
        import ccxt
    except ImportError as exc:
        print(f"ccxt is not importable: {exc}", file=sys.stderr)
        return NO_CCXT

    exchange = sandbox_binance(ccxt, args.base_url.rstrip("/"), args.api_key, args.api_secret)
    interval = 1.0 / args.rate
    counts = {"withdraw": 0, "fetch_withdrawals": 0, "errors": 0}
    items: list[dict[str, object]] = []
    t0 = time.time()
    exchange.load_markets()  # what the first withdraw would do; timed apart
    load_markets_s = time.time() - t0
    started = time.time()
    deadline = started + args.deadline_s
    last_send = 0.0
    try:
        for n in range(args.count):
            if time.time() > deadline:
                break
            wait = last_send + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            last_send = time.monotonic()
            sent_at = time.time()
            counts["withdraw"] += 1
            try:
                made = exchange.withdraw(
                    args.coin, args.amount, args.address, args.tag, {"network": args.network}
                )
            except ccxt.BaseError as exc:
                counts["errors"] += 1
                items.append({"n": n, "error": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            withdraw_id = made["id"]
            sent_ms = int(sent_at * 1000)
            since = sent_ms - sent_ms % 1000 - 1000
            status: str | None = None
            while status is None and time.time() < deadline:
                time.sleep(args.poll_s)
                counts["fetch_withdrawals"] += 1
                try:
                    seen = exchange.fetch_withdrawals(args.coin, since)
                except ccxt.BaseError:
                    counts["errors"] += 1
                    continue
                status = ccxt_final_status(seen, withdraw_id)
            items.append(
                {
                    "n": n,
                    "id": withdraw_id,
                    "sent_at": sent_at,
                    "done_at": time.time(),
                    "status": status or "unsettled",
                }
            )
    finally:
        exchange.close()
    ended = time.time()
    settled = sum(1 for i in items if i.get("status") == "ok")
    json.dump(
        {
            "start": started,
            "end": ended,
            "count": args.count,
            "completed": settled,
            "requests": counts,
            "amount": args.amount,
            "load_markets_s": load_markets_s,
            "ccxt_version": ccxt.__version__,
            "api": "sync",
            "items": items,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0 if settled == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
