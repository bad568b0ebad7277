"""``treasury run`` as a whole: the daemon plus what operates it.

Metrics and health (``/metrics``, ``/healthz``, ``/readyz``), the webhook runner (alerts
and subscriptions, from the outbox), the systemd watchdog and the gauges' sampler run
beside the daemon in one task group; none of them can block a send (an alert is one
short INSERT into the outbox; delivery is in the background, on its own HTTP client).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import structlog

from treasury.adapters import alerts as ops_alerts
from treasury.adapters.binance.client import BinanceClient
from treasury.adapters.db.state import ServiceState
from treasury.adapters.db.webhooks import SqlWebhooks
from treasury.bootstrap import (
    Runtime,
    adopt_policy_file,
    open_ledger,
    postgres_notifications,
    runtime,
)
from treasury.config import AccountCredentials, Settings, SettingsError
from treasury.netaddr import parse_bind
from treasury.runtime import health, systemd
from treasury.runtime import metrics as ops_metrics
from treasury.runtime import webhooks as ops_webhooks
from treasury.runtime.accounts import AccountSet, Fleet, Notifications
from treasury.runtime.daemon import Daemon
from treasury.services import preflight
from treasury.services.context import Alert, WorkerContext
from treasury.services.preflight import Check
from treasury.services.whitelist_sync import sync_whitelist


async def supervise(
    settings: Settings,
    *,
    checks: Callable[[Runtime], Awaitable[list[Check]]],
    report: Callable[[list[Check]], object],
) -> bool:
    """Run until a signal stops the daemon. False if the preflight refused to start.

    A preflight whose only failures are the exchange's passing state (``Check.waits``)
    does not stop the start: the health server reports not ready with the reason, the
    checks run again every ``TREASURY_PREFLIGHT_RETRY_S``, and the daemons start once
    all of them pass. Nothing is sent before that (the key's posture may not even be
    known yet).
    """
    # the port first: a port in use is the operator's to fix, before any other work
    sock = _metrics_socket(settings.metrics_bind)
    try:
        return await _supervise(settings, sock, checks=checks, report=report)
    finally:
        if sock is not None:
            sock.close()  # a no-op once the server has closed it


def _metrics_socket(bind: str | None) -> socket.socket | None:
    if not parse_bind(bind):
        return None
    try:
        return health.listen(bind)
    except OSError as exc:
        raise SettingsError(
            f"TREASURY_METRICS_BIND: cannot listen on {bind} ({exc.strerror or exc}): "
            "another process may have it; give a free address, or off"
        ) from None


async def _supervise(
    settings: Settings,
    sock: socket.socket | None,
    *,
    checks: Callable[[Runtime], Awaitable[list[Check]]],
    report: Callable[[list[Check]], object],
) -> bool:
    metrics = ops_metrics.Metrics()
    async with (
        open_ledger(settings) as ledger,
        ops_webhooks.webhook_runner(
            settings, ledger.engine, on_alert_result=metrics.alert_result
        ) as hooks,
        runtime(
            settings,
            ledger=ledger,
            # each alert is an outbox row, written at once: a crash does not lose it
            alert=_logged(ops_alerts.outbox_alert(SqlWebhooks(ledger.engine).write_alert)),
            on_call=metrics.on_call,
        ) as rt,
    ):
        first = await checks(rt)
        report(first)
        if not preflight.may_start(first):
            return False
        # the alert channel's subscription; a missing key is alerted, not fatal
        await ops_webhooks.prepare(hooks, alert=rt.ctx.alert)
        # the file setting seeds an empty ledger; a file that differs is only reported
        await adopt_policy_file(settings, rt.ledger)
        gate = _Gate(preflight.failing(first))
        rt.ctx.on_reconciled = metrics.reconciled
        ticks = health.LoopTicks(health.loop_max_ages(rt.ctx.config))

        def sync_of(ctx: WorkerContext) -> Callable[[], Awaitable[object]]:
            async def sync() -> object:
                drift = await sync_whitelist(
                    ctx.exchange,
                    rt.ledger.whitelist,
                    rt.ledger.events,
                    account=ctx.config.account,
                    seen=ctx.seen,
                )
                metrics.drift(len(drift.added) + len(drift.disabled) + len(drift.reenabled))
                return drift

            return sync

        fleet: Fleet | None = None
        account_set: AccountSet | None = None
        listen_all = postgres_notifications(settings)
        notes = Notifications(listen_all) if listen_all is not None else None

        def wanted_of(account: str) -> Callable[[], bool] | None:
            if fleet is None:
                return None
            return lambda: fleet is not None and fleet.wants(account)

        def make_daemon(exchange: BinanceClient, ctx: WorkerContext) -> Daemon:
            return Daemon(
                ctx,
                pace=exchange.apply_limiter.note_sent_at,
                listen=notes.listener(ctx.config.account) if notes is not None else None,
                listening=(lambda: notes.live) if notes is not None else None,
                on_tick=ticks.tick,
                # each account's address book follows that account's list on the exchange;
                # the daemon syncs once before it sends (exchange-sourced entries are
                # trusted only once this process has seen them there)
                whitelist_sync=sync_of(ctx),
                whitelist_sync_interval_s=settings.whitelist_sync_interval_s,
                wanted=wanted_of(ctx.config.account),
            )

        async def check_account(
            name: str, exchange: BinanceClient, creds: AccountCredentials
        ) -> list[Check]:
            return await preflight.run_checks(
                exchange,
                schema=None,
                allow_unrestricted_ip=settings.allow_unrestricted_ip_key,
                local_entity=creds.local_entity,
            )

        primary_ctx = rt.accounts[0][1]
        metrics.track_exchange(rt.exchange)

        def served_names() -> list[str]:
            return account_set.names() if account_set is not None else []

        def senders() -> dict[str, bool]:
            if account_set is None:
                return {}
            return {name: d.is_sender for name, d in account_set.daemons.items()}

        metrics.track_accounts(senders)

        async def paused_accounts() -> dict[str, str]:
            return {a: p.reason for a, p in (await rt.ledger.state.account_pauses()).items()}

        ready = health.Readiness(
            ticks=ticks,
            waiting=gate.reason,
            database=health.database_ping(rt.ledger.engine),
            exchange_age_s=metrics.exchange_age_s,
            paused_accounts=paused_accounts,
        )
        sampler = ops_metrics.Sampler(
            metrics,
            count_by_status=rt.ledger.intents.count_by_status,
            pause_state=rt.ledger.state.pause_state,
            is_sender=lambda: senders().get(primary_ctx.config.account, False),
            account=rt.ctx.view.account,
            banned_for_s=rt.exchange.rate_limiter.banned_for_s,
            alert=rt.ctx.alert,
            exchange_age_s=metrics.exchange_age_s,
            unreachable_after_s=settings.exchange_unreachable_alert_s,
            account_pauses=rt.ledger.state.account_pauses,
            accounts=served_names,
        )
        if gate.reason() is not None:
            # said before /readyz can answer 503 with the same reason
            structlog.get_logger("treasury.daemon").warning(
                "daemon.waiting_for_exchange", reason=gate.reason()
            )
        async with anyio.create_task_group() as tg:
            if sock is not None:
                app = health.build_app(ready, metrics.registry)
                await tg.start(partial(health.serve, app, sock=sock))
            await tg.start(hooks.run)
            await tg.start(sampler.run)
            if gate.reason() is not None:
                if not await _wait_for_exchange(
                    rt, gate, checks, retry_s=settings.preflight_retry_s
                ):
                    tg.cancel_scope.cancel()  # stopped by a signal while waiting
                    structlog.get_logger("treasury.daemon").info("daemon.stopped")
                    return True
                ticks.restart()
            async with anyio.create_task_group() as workers:
                account_set = AccountSet(
                    rt,
                    tg=workers,
                    make_daemon=make_daemon,
                    check=check_account,
                    alert=rt.ctx.alert,
                    env_names=settings.account_names,
                    file_credentials={
                        n: c for n, c in rt.credentials.items() if n not in settings.account_names
                    },
                )
                if rt.ledger.engine.dialect.name == "postgresql":
                    fleet = Fleet(
                        ServiceState(rt.ledger.engine),
                        rt.ctx.config.worker_id,
                        ttl_s=settings.lease_ttl_s,
                        grace_s=settings.lease_ttl_s / 3,
                        served=served_names,
                        on_change=account_set.poke,
                    )
                    # the first share before the daemons start: a lone member starts as
                    # today (sender at once); others stand by until they are given a share
                    try:
                        await fleet.round([c.config.account for _, c in rt.accounts])
                    except Exception as exc:  # the fleet's loop tries again
                        structlog.get_logger("treasury.daemon").warning(
                            "fleet.round_failed", error=f"{type(exc).__name__}: {exc}"
                        )
                for exchange, ctx in rt.accounts:
                    account_set.start(exchange, ctx)
                if fleet is not None:
                    workers.start_soon(fleet.run)
                if notes is not None:
                    workers.start_soon(notes.run)
                primary = account_set.daemons[primary_ctx.config.account]
                tg.start_soon(
                    partial(
                        systemd.feed_watchdog,
                        ticks,
                        max_age_s=health.watchdog_max_ages(rt.ctx.config),
                        stopping_now=primary.stopping.is_set,
                    )
                )
                structlog.get_logger("treasury.daemon").info(
                    "daemon.starting",
                    accounts=served_names(),
                    worker=rt.ctx.config.worker_id,
                    fair_share=fleet is not None,
                )
                workers.start_soon(_signals, account_set, rt.policy.reload, workers.cancel_scope)
                if settings.accounts_file is not None:
                    workers.start_soon(account_set.run, settings.accounts_reload_s)
                await account_set.stopped.wait()
                workers.cancel_scope.cancel()
            tg.cancel_scope.cancel()
    structlog.get_logger("treasury.daemon").info("daemon.stopped")
    return True


def _logged(alert: Alert) -> Alert:
    """Every alert is also a log line (the webhook may be off, or failing)."""
    log = structlog.get_logger("treasury.alert")

    async def logged(kind: str, message: str, intent_id: int | None) -> None:
        log.warning("alert", kind=kind, message=message, intent_id=intent_id)
        await alert(kind, message, intent_id)

    return logged


class _Gate:
    """Why the daemons have not started yet (None once the preflight passes)."""

    def __init__(self, failed: list[Check]) -> None:
        self.failed = failed

    def reason(self) -> str | None:
        if not self.failed:
            return None
        return "waiting for the exchange: " + "; ".join(
            f"{c.name}: {c.detail}" for c in self.failed
        )


async def _wait_for_exchange(
    rt: Runtime,
    gate: _Gate,
    checks: Callable[[Runtime], Awaitable[list[Check]]],
    *,
    retry_s: float,
) -> bool:
    """Run the checks every ``retry_s`` until all pass (True), or until SIGTERM/SIGINT
    (False); the caller logs ``daemon.waiting_for_exchange``. systemd hears READY (the
    process is up; ``/readyz`` says it is not ready) and its watchdog is fed meanwhile. A
    failure that appears meanwhile and that an operator must fix (a key revoked, say) is
    waited on too, and reported."""
    log = structlog.get_logger("treasury.daemon")
    await rt.ctx.alert("waiting_for_exchange", gate.reason() or "", None)
    systemd.ready()
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with anyio.create_task_group() as tg:
            stopped = False

            async def on_signal() -> None:
                nonlocal stopped
                async for signum in signals:
                    log.info("shutdown.requested", signal=signal.Signals(signum).name)
                    stopped = True
                    tg.cancel_scope.cancel()
                    return

            tg.start_soon(on_signal)
            while gate.failed:
                systemd.status(gate.reason() or "")
                with anyio.move_on_after(retry_s):
                    while True:  # the watchdog, fed while the checks wait
                        systemd.watchdog()
                        await anyio.sleep(min(5.0, retry_s))
                try:
                    gate.failed = preflight.failing(await checks(rt))
                except Exception as exc:  # a check that cannot run is a reason to wait
                    log.warning("daemon.recheck_failed", error=f"{type(exc).__name__}: {exc}")
                    continue
                if gate.failed:
                    log.info("daemon.still_waiting", reason=gate.reason())
            tg.cancel_scope.cancel()
    if stopped:
        return False
    log.info("daemon.exchange_ready")
    return True


async def _signals(
    accounts: AccountSet, reload: Callable[[], object], scope: anyio.CancelScope
) -> None:
    """First SIGTERM/SIGINT: every daemon stops gracefully; a second: at once. SIGHUP:
    read the policy in force from the ledger now (it is re-read every few seconds anyway;
    a policy file is never reloaded: changes go through ``treasury policy apply``), and
    re-read the accounts file now."""
    log = structlog.get_logger("treasury.daemon")
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                log.info("reload.requested")
                reload()
                accounts.request_reload()
            elif not accounts.stopping.is_set():
                log.info("shutdown.requested", signal=signal.Signals(signum).name)
                scope_tg = anyio.create_task_group()
                async with scope_tg:
                    scope_tg.start_soon(accounts.stop_all)
                    # a second signal while stopping: at once
                    async for again in signals:
                        if again == signal.SIGHUP:
                            continue
                        log.warning("shutdown.forced", signal=signal.Signals(again).name)
                        scope.cancel()
                        return
