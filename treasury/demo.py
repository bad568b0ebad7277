"""``treasury demo``: the whole service on this machine, with nothing to set up.

Starts the sandbox exchange and the daemon on a temporary SQLite ledger, mirrors the
sandbox's whitelist, enqueues a handful of intents — valid ones and ones that must be
refused — and shows their progress live until every one is settled.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import anyio
from rich.live import Live
from rich.table import Table

from treasury.cli import output as out
from treasury.domain.intent import Intent
from treasury.domain.status import Status

DEMO_INTENTS = [
    # (label, coin, network, address, tag, amount)
    ("valid, USDT on TRON", "USDT", "TRX", "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", None, "25.5"),
    (
        "valid, USDT on Ethereum",
        "USDT",
        "ETH",
        "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
        None,
        "120",
    ),
    ("valid, XRP with memo", "XRP", "XRP", "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", "104400725", "40"),
    (
        "valid, BTC, 8 decimals",
        "BTC",
        "BTC",
        "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
        None,
        "0.01234567",
    ),
    ("below the minimum", "USDT", "TRX", "T2WouRpQKa1QRj1xs34r742gcgx1APB6g2", None, "2"),
    ("not whitelisted", "USDT", "TRX", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", None, "30"),
    ("memo missing", "XRP", "XRP", "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", None, "40"),
    ("network the coin lacks", "USDT", "SOL", "TKRxQ4JgmaUA6ewL4p4x9H6m8a4pbWHnQQ", None, "15"),
]
SETTLED = {s for s in Status if s.terminal} | {Status.NEEDS_ATTENTION}


def run_demo(keep: Path | None) -> None:
    workdir = keep or Path(tempfile.mkdtemp(prefix="treasury-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    anyio.run(_demo, workdir)


async def _demo(workdir: Path) -> None:
    from treasury.adapters.db import migrate
    from treasury.bootstrap import open_ledger, runtime
    from treasury.config import load_settings
    from treasury.domain.validation import validate_new_intent
    from treasury.logs import configure
    from treasury.runtime.daemon import Daemon
    from treasury.sandbox.config import default_config
    from treasury.sandbox.server import running_sandbox
    from treasury.services.whitelist_sync import sync_whitelist

    configure(fmt="console", level="error")
    started = time.monotonic()
    base = default_config()
    config = dataclasses.replace(
        base,
        timings=dataclasses.replace(
            base.timings,
            processing_s=4.0,
            processing_jitter_s=1.0,
            failure_share=0.0,
            rejection_share=0.0,
            seed=7,
        ),
        journal_fsync=False,
    )
    db = workdir / "demo.sqlite3"
    async with running_sandbox(config=config, state_path=workdir / "sandbox.jsonl") as sb:
        account = config.accounts["default"]
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{db}",
            binance_base_url=sb.url,
            binance_api_key=account.api_key,
            binance_api_secret=account.hmac_secret,
            poll_interval_s=1.0,
            intake_interval_s=0.2,
            reconcile_interval_s=2.0,
            history_lag_allowance_s=2.0,
            hold_backoff_s=2.0,
        )
        out.console.print(f"sandbox exchange on {sb.url}; ledger {db}")
        async with (
            open_ledger(settings) as ledger,
            runtime(settings, ledger=ledger, worker="demo") as rt,
        ):
            await migrate.upgrade(ledger.engine)
            drift = await sync_whitelist(
                rt.exchange, rt.ledger.whitelist, account=rt.ctx.config.account, seen=rt.ctx.seen
            )
            out.console.print(f"whitelist mirrored from the exchange: {len(drift.added)} entries")
            daemon = Daemon(rt.ctx, pace=rt.exchange.apply_limiter.note_sent_at)
            ids: dict[int, str] = {}
            async with anyio.create_task_group() as tg:
                tg.start_soon(daemon.run)
                # enqueued once the daemon is the sender, as a bot would: what was queued
                # before it started would first wait out the history-lag allowance
                while not (daemon.is_sender and daemon.swept):  # noqa: ASYNC110 (two flags)
                    await anyio.sleep(0.05)
                for label, coin, network, address, tag, amount in DEMO_INTENTS:
                    slug = label.replace(" ", "-").replace(",", "")
                    new = validate_new_intent(
                        coin=coin,
                        network=network,
                        address=address,
                        address_tag=tag,
                        amount=Decimal(amount),
                        request_id=f"demo-{slug}",
                        requested_by="demo",
                    )
                    intent, _ = await rt.ledger.intents.enqueue(new, actor="cli:demo")
                    ids[intent.id] = label
                with Live(refresh_per_second=4, console=out.console) as live:
                    while True:
                        intents = [await rt.ledger.intents.get(i) for i in ids]
                        live.update(_table(intents, ids))
                        if all(i.status in SETTLED for i in intents):
                            break
                        if time.monotonic() - started > 50:
                            break
                        await anyio.sleep(0.25)
                daemon.stop()
            intents = [await rt.ledger.intents.get(i) for i in ids]
    out.console.print(_table(intents, ids, title="summary"))
    counts: dict[str, int] = {}
    for i in intents:
        counts[i.status.value] = counts.get(i.status.value, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    out.console.print(f"done in {time.monotonic() - started:.1f} s: {summary}")
    out.console.print(f"inspect: TREASURY_DATABASE_URL=sqlite:///{db} treasury list")


def _table(intents: list[Intent], labels: dict[int, str], title: str = "intents") -> Table:
    table = Table(title=title)
    for col in ("id", "case", "amount", "status", "reason"):
        table.add_column(col, overflow="fold")
    for i in intents:
        table.add_row(
            str(i.id),
            labels[i.id],
            f"{out.amount_text(i.amount)} {i.coin}",
            i.status.value,
            i.status_reason or "",
        )
    return table
