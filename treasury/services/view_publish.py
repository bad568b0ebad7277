"""Publish the worker's cached exchange view for processes without exchange access.

``treasury api``'s preview reads it (``domain.view_snapshot``). Publishing fetches
nothing from the exchange: it writes what the view has cached, when it changed.
"""

from __future__ import annotations

from treasury.domain.fee_payer import FeePayer
from treasury.domain.view_snapshot import key_of, to_json
from treasury.domain.wallet import Wallet
from treasury.services.context import WorkerContext


async def publish_view(ctx: WorkerContext, last: str | None) -> str | None:
    """Write the account's snapshot unless it is what was written last; returns the text
    now published (``last`` when nothing was cached yet or nothing changed)."""
    config = ctx.config
    snapshot = ctx.view.snapshot(
        config.account, wallet=Wallet(config.wallet), fee_payer=FeePayer(config.internal_fee_payer)
    )
    if snapshot is None:
        return last
    text = to_json(snapshot)
    if text != last:
        await ctx.ledger.state.publish(key_of(config.account), text, by=config.worker_id)
    return text
