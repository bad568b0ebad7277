"""``treasury run``: one anyio task group of small loops.

Start-up order is a safety property: become the account's sender (a lease; a standby
waits here), seed the send pace from the database (the rate holds across restarts),
then reconcile every ``submitting`` intent *before* any new send. The loops:

* lease   — renew the sender lease; losing it stops sends (the commit also checks it)
* intake  — claim due ``queued`` intents and process them one by one (sends are paced)
* reconcile — establish the outcome of sends left in ``submitting``; sweep the
  account's history against the ledger (before the first send, then every
  ``sweep_interval_s``): no send leaves until one sweep has succeeded
* settle  — poll history in batches until withdrawals settle
* wake    — PostgreSQL LISTEN/NOTIFY: a new intent wakes intake at once
* view    — publish the cached exchange view (``service_state`` key
  ``exchange_view:<account>``) every ``publish_view_s`` when it changed, for
  ``treasury api``'s preview; an idle sender refreshes the expired parts of it every
  ``VIEW_WARM_S`` (standing, rules, balances, quota: about 50 weight a minute)

Shutdown: ``stop()`` (the supervisor calls it on the first SIGTERM/SIGINT) stops intake
from claiming; an in-flight send gets ``shutdown_grace_s`` to finish and be recorded; then
everything is cancelled. A second signal makes the supervisor cancel at once; the next
start reconciles whatever was left in flight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
import structlog
from anyio.abc import TaskStatus

from treasury.domain.intent import Intent
from treasury.domain.reconcile import PROCESSING_TIMEOUT_MS
from treasury.domain.wallet import Wallet
from treasury.ports.clock import utcnow
from treasury.ports.exchange import ExchangeError
from treasury.services import reconcile, settle, submit, truth, watch
from treasury.services.context import StartupHold, WorkerContext
from treasury.services.view_publish import publish_view

log = structlog.get_logger("treasury.daemon")
VIEW_WARM_S = 60.0  # an idle sender refreshes the view it publishes this often

Hook = Callable[[str], None]


def send_concurrency(rate: float) -> int:
    """Intents processed at once: 1 up to 10 sends/s, a few more above (benchmarks)."""
    return max(1, min(4, math.ceil(rate / 10)))


def _ignore() -> None:
    return None


class Daemon:
    def __init__(
        self,
        ctx: WorkerContext,
        *,
        pace: Callable[[float], None] | None = None,
        listen: Callable[[Callable[[], None]], Awaitable[None]] | None = None,
        on_tick: Hook | None = None,
        whitelist_sync: Callable[[], Awaitable[object]] | None = None,
        whitelist_sync_interval_s: float = 0.0,
        publish_view_s: float = 5.0,
        wanted: Callable[[], bool] | None = None,
        listening: Callable[[], bool] | None = None,
    ) -> None:
        """``listening``: whether ``listen`` delivers NOTIFYs now (an idle intake then
        sleeps until the next hold comes due, at most ``intake_listening_s``, instead of
        polling every ``intake_interval_s``; see ``_idle_s``)."""
        self.ctx = ctx
        self._listening = listening or (lambda: False)
        # fair share (several daemons): whether this process should hold the account's
        # lease now; None: always. The lease stays the only arbiter of who sends.
        self._wanted = wanted or (lambda: True)
        self._holds = False  # this process holds the lease (is_sender, or handing over)
        self._lease_wake = anyio.Event()
        self._pace = pace  # seeds the client's send pacer with the last send (epoch s)
        self._listen = listen
        self._on_tick = on_tick or (lambda _name: None)
        self._whitelist_sync = whitelist_sync
        self._whitelist_sync_interval_s = whitelist_sync_interval_s
        self._publish_view_s = publish_view_s
        self.stopping = anyio.Event()
        self.finished = anyio.Event()
        self.is_sender = False
        self.swept = False  # a sweep since becoming the sender: sends may leave
        self._last_sweep = -math.inf
        self._failing_since: float | None = None
        self._last_ok_sweep = datetime.min.replace(tzinfo=UTC)
        self._failure_alerted = False
        self._wake = anyio.Event()
        self._settle_wake = anyio.Event()
        self._busy = 0
        self._slots = anyio.Semaphore(send_concurrency(ctx.config.withdraw_rate))
        ctx.on_submitted = self._settle_wake.set
        self.settle_stats = settle.SettleStats()

    # ---- lifecycle -------------------------------------------------------------------

    async def run(self) -> None:
        """Run the loops until ``stop()``; signals are the caller's (the supervisor's)."""
        if self._whitelist_sync is not None:
            # before anything is sent: an exchange-sourced address-book entry is trusted
            # only once this process has seen it on the exchange (else it cools)
            await self._sync_whitelist()
        async with anyio.create_task_group() as tg:
            await tg.start(self._lease_loop)
            tg.start_soon(self._reconcile_loop)
            tg.start_soon(self._settle_loop)
            tg.start_soon(self._intake_loop)
            if self._listen is not None:
                tg.start_soon(self._listen_loop)
            if self._whitelist_sync is not None and self._whitelist_sync_interval_s > 0:
                tg.start_soon(self._whitelist_loop)
            if self._publish_view_s > 0:
                tg.start_soon(self._publish_view_loop)
            await self.stopping.wait()
            await self._drain()
            tg.cancel_scope.cancel()
        await self._release()
        self.finished.set()

    def wake(self) -> None:
        """Make intake look for work now (a NOTIFY arrived, or a test asks)."""
        self._wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()
        self._settle_wake.set()

    async def _drain(self) -> None:
        with anyio.move_on_after(self.ctx.config.shutdown_grace_s):
            while self._busy:  # noqa: ASYNC110 (a flag of the intake loop, bounded by the grace)
                await anyio.sleep(0.05)
        if self._busy:
            log.warning("shutdown.send_unfinished", in_flight=sorted(self.ctx.in_flight))

    def poke(self) -> None:
        """Look at the lease now (fair share changed its mind)."""
        self._lease_wake.set()

    async def _release(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            if self.is_sender or self._holds:
                await self.ctx.ledger.state.release_lease(
                    self.ctx.config.account, self.ctx.config.worker_id
                )

    # ---- loops -----------------------------------------------------------------------

    async def _publish_view_loop(self) -> None:
        last: str | None = None
        warmed = time.monotonic()  # a sender that just started has fetched all of it
        while not self.stopping.is_set():
            with anyio.move_on_after(self._publish_view_s):
                await self.stopping.wait()
            if self.stopping.is_set():
                return
            if self.is_sender and time.monotonic() - warmed > VIEW_WARM_S:
                warmed = time.monotonic()
                try:  # an idle sender fetches nothing else: keep the preview's view fresh
                    await self.ctx.view.warm(Wallet(self.ctx.config.wallet))
                except (ExchangeError, ValueError) as exc:
                    log.info("view.warm_failed", error=str(exc))
            try:
                last = await publish_view(self.ctx, last)
            except Exception as exc:  # a failed write is retried at the next tick
                log.warning("view.publish_failed", error=type(exc).__name__)

    async def _whitelist_loop(self) -> None:
        while not self.stopping.is_set():
            with anyio.move_on_after(self._whitelist_sync_interval_s):
                await self.stopping.wait()
            if self.stopping.is_set():
                return
            await self._sync_whitelist()

    async def _sync_whitelist(self) -> None:
        assert self._whitelist_sync is not None
        try:
            await self._whitelist_sync()
        except Exception:
            log.exception("whitelist.sync_failed", account=self.ctx.config.account)
        self._on_tick("whitelist")

    async def _lease_loop(self, *, task_status: TaskStatus[None]) -> None:
        cfg = self.ctx.config
        state = self.ctx.ledger.state
        started = False
        while not self.stopping.is_set():
            self._lease_wake = anyio.Event()
            try:
                if not self._wanted():
                    await self._hand_over()
                    if not started:
                        log.info("standby", account=cfg.account, worker=cfg.worker_id)
                        task_status.started()
                        started = True
                    self._on_tick("lease")
                    with anyio.move_on_after(cfg.lease_ttl_s / 3):
                        await self._lease_wake.wait()
                    continue
                held = await state.acquire_lease(cfg.account, cfg.worker_id, cfg.lease_ttl_s)
                self._holds = held
                if held and not self.is_sender:
                    await self._become_sender()
                    # the start-up reconcile may have outlasted the lease: hold it again
                    # before sending (the commit checks it too, this just avoids churn)
                    held = False  # not wanted meanwhile: the next round hands over
                    if self._wanted():
                        held = await state.acquire_lease(
                            cfg.account, cfg.worker_id, cfg.lease_ttl_s
                        )
                        self._holds = held
                    self.is_sender = held
                    if held:
                        self._wake.set()
                        self._settle_wake.set()  # a standby's settle loop slept idle
            except Exception:
                # A database hiccup must not end the daemon: stop sending until the lease
                # can be renewed again (the commit transaction checks it regardless).
                log.exception("lease.renew_failed", account=cfg.account)
                self.is_sender = False
                held = False
            if not held and self.is_sender:
                log.error("lease.lost", account=cfg.account)
                self.is_sender = False
            elif not held and not started:
                log.info("standby", account=cfg.account, worker=cfg.worker_id)
            if not started:
                task_status.started()
                started = True
            self._on_tick("lease")
            with anyio.move_on_after(cfg.lease_ttl_s / 3):
                await self._lease_wake.wait()

    async def _hand_over(self) -> None:
        """Fair share wants the account elsewhere: stop sending; once no send is in
        flight, release the lease (until then keep renewing it: the in-flight send's
        commit is checked against it). The next holder reconciles as after any takeover."""
        cfg = self.ctx.config
        state = self.ctx.ledger.state
        if self.is_sender:
            log.info("lease.handing_over", account=cfg.account, worker=cfg.worker_id)
            self.is_sender = False
        if not self._holds:
            return
        if self._busy:
            self._holds = await state.acquire_lease(cfg.account, cfg.worker_id, cfg.lease_ttl_s)
            return
        await state.release_lease(cfg.account, cfg.worker_id)
        self._holds = False
        log.info("lease.handed_over", account=cfg.account, worker=cfg.worker_id)

    async def _become_sender(self) -> None:
        cfg = self.ctx.config
        last_ms = await self.ctx.ledger.intents.last_send_ms(cfg.account)
        if self._pace is not None:
            # The last send on record was signed at most a moment before it left; a
            # predecessor may also have sent just now: wait one interval from either.
            self._pace(max(last_ms / 1000 if last_ms else 0.0, time.time()))
        await self.ctx.ledger.intents.release_claims(account=cfg.account, keep=cfg.worker_id)
        count = await reconcile.reconcile_all(self.ctx)
        now = utcnow()
        wait_s = (
            cfg.apply_recv_window_ms + PROCESSING_TIMEOUT_MS
        ) / 1000 + cfg.history_lag_allowance_s
        self.ctx.startup_hold = StartupHold(
            created_before=now, until=now + timedelta(seconds=wait_s)
        )
        self.swept = False
        await self._sweep()
        log.info(
            "sender.active",
            account=cfg.account,
            worker=cfg.worker_id,
            reconciled=count,
            last_send_ms=last_ms,
            swept=self.swept,
        )

    async def _sweep(self) -> None:
        """The account's history against the ledger. Until one succeeds after becoming
        the sender, nothing is sent: a restored ledger must learn what left meanwhile."""
        now = self._last_sweep = anyio.current_time()
        started_at = utcnow()
        try:
            await truth.sweep(self.ctx)
        except (ExchangeError, ValueError) as exc:
            log.warning(
                "sweep.failed", account=self.ctx.config.account, error=str(exc), sending=self.swept
            )
            await self._sweep_failing(now, exc)
            return
        self._failing_since = None
        self._last_ok_sweep = started_at
        if not self.swept:
            self.swept = True
            self._wake.set()

    async def _sweep_failing(self, now: float, exc: Exception) -> None:
        """Sends wait for a sweep; a sweep that keeps failing must not hold them silently."""
        if self._failing_since is None:
            self._failing_since, self._failure_alerted = now, False
        waited = now - self._failing_since
        if waited >= self.ctx.config.exchange_unreachable_alert_s and not self._failure_alerted:
            self._failure_alerted = True
            account = self.ctx.config.account
            held = "" if self.swept else "; nothing is sent until one succeeds"
            await self.ctx.alert(
                "sweep_failing",
                f"account {account!r}: the withdrawal history "
                f"could not be read for {waited:.0f} s ({exc}){held}",
                None,
            )

    async def _intake_loop(self) -> None:
        cfg = self.ctx.config
        while not self.stopping.is_set():
            self._on_tick("intake")
            # A fresh event *before* looking for work: a NOTIFY that arrives while we
            # claim sets it, and the wait below returns at once (no lost wake-up).
            self._wake = anyio.Event()
            sending = self.is_sender and self.swept
            worked = await self._intake_once() if sending else False
            if not worked:
                with anyio.move_on_after(
                    await self._idle_s() if sending else cfg.intake_interval_s
                ):
                    await self._wake.wait()

    async def _idle_s(self) -> float:
        """How long an intake with nothing to claim waits (a wake-up cuts it short).

        While NOTIFY is delivered, a new or re-queued intent wakes the intake, so it waits
        until the next held intent or claim comes due (a time no NOTIFY announces), up to
        ``intake_listening_s``; otherwise it polls every ``intake_interval_s``."""
        cfg = self.ctx.config
        if not self._listening():
            return cfg.intake_interval_s
        now = utcnow()
        try:
            due = await self.ctx.ledger.intents.next_due(
                account=cfg.account, worker=cfg.worker_id, now=now
            )
        except Exception as exc:  # the database: poll as if nothing listened
            log.warning("intake.next_due_failed", error=type(exc).__name__)
            return cfg.intake_interval_s
        if due is None:
            return cfg.intake_listening_s
        return min(cfg.intake_listening_s, max(0.0, (due - now).total_seconds()))

    async def _intake_once(self) -> bool:
        cfg = self.ctx.config
        if (await self.ctx.ledger.state.pause_state(cfg.account)).paused:
            return False
        now = utcnow()
        claimed = await self.ctx.ledger.intents.claim_queued(
            account=cfg.account,
            worker=cfg.worker_id,
            now=now,
            lease_until=now + timedelta(seconds=max(60.0, cfg.lease_ttl_s * 4)),
            limit=cfg.claim_batch,
        )
        # At high rates the next intent's checks and commit overlap the current request
        # (the client's pacer still spaces the requests); at 1/s one at a time is plenty.
        async with anyio.create_task_group() as tg:
            for intent in claimed:
                if self.stopping.is_set() or not self.is_sender:
                    await self.ctx.ledger.intents.release(intent)
                    continue
                await self._slots.acquire()
                if self.stopping.is_set() or not self.is_sender:
                    # stopped (or lost the lease) while waiting for a slot: start nothing
                    self._slots.release()
                    await self.ctx.ledger.intents.release(intent)
                    continue
                tg.start_soon(self._process, intent)
        return bool(claimed)

    async def _process(self, intent: Intent) -> None:
        self._busy += 1
        try:
            await submit.process(self.ctx, intent)
        except Exception:
            # One intent's trouble must not stop the others: it stays where it is
            # (queued, or submitting for the reconciler) and the error is logged.
            log.exception("intake.process_failed", intent_id=intent.id)
        finally:
            self._busy -= 1
            self._slots.release()

    async def _reconcile_loop(self) -> None:
        while not self.stopping.is_set():
            await anyio.sleep(self.ctx.config.reconcile_interval_s)
            self._on_tick("reconcile")
            if self.is_sender:
                try:
                    await reconcile.reconcile_all(self.ctx)
                    await watch.flag_unserved(self.ctx)
                    await watch.expire_approvals(self.ctx)
                    await watch.announce_operators(self.ctx)
                    due = self._last_sweep + self.ctx.config.sweep_interval_s
                    hold = self.ctx.startup_hold
                    hold_over = hold is not None and utcnow() >= hold.until
                    if not self.swept or hold_over or anyio.current_time() >= due:
                        await self._sweep()
                    if (
                        hold is not None
                        and hold_over
                        and self.ctx.startup_hold is hold
                        and self._last_ok_sweep >= hold.until
                    ):
                        # the history has had its allowance, and was read after it
                        self.ctx.startup_hold = None
                        log.info("sender.startup_hold_over", account=self.ctx.config.account)
                        self._wake.set()
                except Exception:  # a loop must survive one bad round; it is logged
                    log.exception("reconcile.round_failed")

    async def _settle_loop(self) -> None:
        youngest: float | None = None
        gap = settle.min_poll_gap_s(self.ctx.config)
        while not self.stopping.is_set():
            polled_at = anyio.current_time()
            # installed before the poll: a submission that lands during it wakes the wait
            self._settle_wake = anyio.Event()
            self.ctx.on_submitted = self._settle_wake.set
            if self.is_sender:
                try:
                    youngest = await settle.poll_once(self.ctx, self.settle_stats)
                except Exception:
                    log.exception("settle.round_failed")
            self._on_tick("settle")
            delay = settle.poll_interval_s(self.ctx.config, youngest_age_s=youngest)
            if youngest is not None:
                self.ctx.on_submitted = _ignore  # the regular interval already covers it
            with anyio.move_on_after(max(0.0, polled_at + delay - anyio.current_time())):
                # Idle, a new submission brings the next poll forward; with withdrawals
                # in flight the regular interval already covers it.
                await self._settle_wake.wait()
            # never sooner than the budget allows
            await anyio.sleep(max(0.0, polled_at + gap - anyio.current_time()))

    async def _listen_loop(self) -> None:
        assert self._listen is not None
        while not self.stopping.is_set():
            try:
                await self._listen(self.wake)
            except Exception:
                log.exception("listen.failed")
                await anyio.sleep(1)
