"""The accounts ``treasury run`` serves while it runs: the accounts file's reload, and the
fair share of accounts between several processes on one PostgreSQL database.

* ``AccountSet`` keeps one ``Daemon`` per account served. The environment's accounts are
  fixed; the accounts file (``TREASURY_ACCOUNTS_FILE``) is re-read every
  ``TREASURY_ACCOUNTS_RELOAD_S`` and on SIGHUP: a new enabled account gets its client,
  context and daemon; a removed or disabled one is stopped as SIGTERM stops a daemon
  (the in-flight send finishes and is recorded, the lease is released); an account whose
  key or settings changed is stopped, then started anew. A file that cannot be read is
  logged and alerted, and nothing changes (never half-applied).
* ``Fleet`` heartbeats this process's row in ``fleet_members`` and decides, by rendezvous
  hashing over the live members (``treasury.domain.assignment``), which accounts this
  process should hold. A daemon whose account is not wanted here stands by (or hands its
  lease over); the lease stays the only arbiter of who sends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import structlog
from anyio.abc import TaskGroup

from treasury.accounts_file import read_accounts_file
from treasury.adapters.binance.client import BinanceClient
from treasury.adapters.db.state import ServiceState
from treasury.bootstrap import ListenAll, Runtime
from treasury.config import AccountCredentials, SettingsError
from treasury.domain.assignment import assign
from treasury.runtime.daemon import Daemon
from treasury.services.context import Alert, WorkerContext
from treasury.services.preflight import Check, failing, may_start

log = structlog.get_logger("treasury.accounts")

MakeDaemon = Callable[[BinanceClient, WorkerContext], Daemon]
CheckAccount = Callable[[str, BinanceClient, AccountCredentials], Awaitable[list[Check]]]


class Fleet:
    """This process's membership and its share of the accounts (PostgreSQL).

    Every ``ttl_s / 3``: renew the membership row (expiring after ``ttl_s``), read the
    live members and the live lease holders, and compute the assignment. This process
    wants an account when the assignment gives it here, or when the account has had no
    live lease holder for ``grace_s`` (the member it prefers has not taken it: any member
    that serves it may).
    """

    def __init__(
        self,
        state: ServiceState,
        worker: str,
        *,
        ttl_s: float,
        grace_s: float,
        served: Callable[[], list[str]],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.state = state
        self.worker = worker
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self._served = served
        self._on_change = on_change
        self._mine: set[str] = set()
        self._unheld_since: dict[str, float] = {}
        self.ready = False  # one round done: until then nothing is wanted

    def wants(self, account: str) -> bool:
        return account in self._mine

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except Exception as exc:  # the database may be away: keep the last answer
                    log.warning("fleet.round_failed", error=f"{type(exc).__name__}: {exc}")
                await anyio.sleep(self.ttl_s / 3)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                try:
                    await self.state.leave_fleet(self.worker)
                except Exception as exc:
                    log.warning("fleet.leave_failed", error=type(exc).__name__)

    async def round(self, served: list[str] | None = None) -> None:
        """One heartbeat and decision (``served``: before the daemons exist, at start)."""
        served = self._served() if served is None else served
        await self.state.heartbeat_member(self.worker, served, self.ttl_s)
        members = await self.state.live_members()
        members[self.worker] = served
        holders = await self.state.lease_holders()
        live_holders = {a: h for a, h in holders.items() if h in members}
        accounts: dict[str, list[str]] = {}
        for member, names in members.items():
            for name in names:
                accounts.setdefault(name, []).append(member)
        wish = assign(accounts, live_holders)
        now = time.monotonic()
        mine = set()
        for account in served:
            if account in live_holders:
                self._unheld_since.pop(account, None)
            else:
                self._unheld_since.setdefault(account, now)
            orphan = now - self._unheld_since.get(account, now) >= self.grace_s
            if wish.get(account) == self.worker or (orphan and account not in holders):
                mine.add(account)
        changed = mine != self._mine
        if changed:
            log.info(
                "fleet.share",
                worker=self.worker,
                members=len(members),
                accounts=sorted(mine),
                gained=sorted(mine - self._mine),
                lost=sorted(self._mine - mine),
            )
        self._mine = mine
        self.ready = True
        if changed:
            self._on_change()


class AccountSet:
    """The daemons of every account this process serves, and the file's reload."""

    def __init__(
        self,
        rt: Runtime,
        *,
        tg: TaskGroup,
        make_daemon: MakeDaemon,
        check: CheckAccount,
        alert: Alert,
        env_names: tuple[str, ...],
        file_credentials: dict[str, AccountCredentials],
    ) -> None:
        self.rt = rt
        self._tg = tg
        self._make = make_daemon
        self._check = check
        self._alert = alert
        self._env = env_names
        self.daemons: dict[str, Daemon] = {}
        self.clients: dict[str, BinanceClient] = {}
        self._file: dict[str, AccountCredentials] = dict(file_credentials)
        self._refused: dict[str, AccountCredentials] = {}  # failed their check: not retried
        self._last_error: str | None = None
        self._reload = anyio.Event()
        self._lock = anyio.Lock()
        self.stopping = anyio.Event()
        self.stopped = anyio.Event()
        if rt.read_plan is not None:  # the balance reads are spread over the senders here
            rt.read_plan.senders = self.senders

    def senders(self) -> int:
        """How many accounts this process sends for now (at least one)."""
        return max(1, sum(1 for d in self.daemons.values() if d.is_sender))

    def names(self) -> list[str]:
        return list(self.daemons)

    def start(self, exchange: BinanceClient, ctx: WorkerContext) -> Daemon:
        daemon = self._make(exchange, ctx)
        name = ctx.config.account
        self.daemons[name] = daemon
        self.clients[name] = exchange
        self._tg.start_soon(daemon.run, name=f"daemon:{name}")
        return daemon

    def poke(self) -> None:
        for daemon in self.daemons.values():
            daemon.poke()

    def request_reload(self) -> None:
        self._refused.clear()  # SIGHUP: try the refused accounts again too
        self._reload.set()

    async def run(self, interval_s: float) -> None:
        """Re-read the file every ``interval_s`` and on ``request_reload`` (SIGHUP)."""
        while not self.stopping.is_set():
            with anyio.move_on_after(interval_s):
                await self._reload.wait()
            self._reload = anyio.Event()
            if self.stopping.is_set():
                return
            await self.reload()

    async def reload(self) -> None:
        async with self._lock:
            await self._reload_locked()

    async def _reload_locked(self) -> None:
        settings = self.rt.settings
        try:
            found = read_accounts_file(settings)
        except SettingsError as exc:
            message = str(exc)
            if message != self._last_error:
                self._last_error = message
                log.error("accounts.file_invalid", error=message)
                await self._alert(
                    "accounts_file_invalid",
                    f"{message}; the accounts served stay as they were",
                    None,
                )
            return
        if self._last_error is not None:
            log.info("accounts.file_valid_again")
            self._last_error = None
        desired = {a.name: a.credentials for a in found if a.credentials is not None}
        stop = [n for n in self._file if desired.get(n) != self._file[n]]
        start = [
            n
            for n, creds in desired.items()
            if (n not in self._file or n in stop) and self._refused.get(n) != creds
        ]
        # every new client first: a key that cannot be loaded changes nothing
        built: dict[str, tuple[BinanceClient, WorkerContext]] = {}
        try:
            for name in start:
                built[name] = self.rt.add_account(desired[name])
        except SettingsError as exc:
            log.error("accounts.file_invalid", error=str(exc))
            await self._alert(
                "accounts_file_invalid", f"{exc}; the accounts served stay as they were", None
            )
            return
        if stop:
            log.info("accounts.stopping", accounts=stop)
            async with anyio.create_task_group() as tg:
                for name in stop:
                    tg.start_soon(self._stop_one, name)
        for name in start:
            exchange, ctx = built[name]
            checks = await self._check(name, exchange, desired[name])
            if not may_start(checks):
                self._refused[name] = desired[name]
                reasons = "; ".join(f"{c.name}: {c.detail}" for c in failing(checks))
                log.error("accounts.refused", account=name, reason=reasons)
                await self._alert(
                    "account_refused", f"account {name!r} is not served: {reasons}", None
                )
                continue
            self._file[name] = desired[name]
            self.start(exchange, ctx)
            log.info("accounts.started", account=name)

    async def _stop_one(self, name: str) -> None:
        self._file.pop(name, None)
        daemon = self.daemons.get(name)
        if daemon is None:
            return
        daemon.stop()
        await daemon.finished.wait()
        self.daemons.pop(name, None)
        self.clients.pop(name, None)
        log.info("accounts.stopped", account=name)

    async def stop_all(self) -> None:
        """SIGTERM: every daemon stops gracefully (no account starts meanwhile)."""
        self.stopping.set()
        self._reload.set()
        async with self._lock:
            for daemon in self.daemons.values():
                daemon.stop()
            for daemon in list(self.daemons.values()):
                await daemon.finished.wait()
        self.stopped.set()


class Notifications:
    """One LISTEN connection for every account of the process (not one per account: a
    file of many accounts would otherwise take as many database connections). Each
    daemon's ``listen`` subscribes its wake-up for its account."""

    def __init__(self, listen_all: ListenAll) -> None:
        self._listen_all = listen_all
        self._subs: dict[str, set[Callable[[], None]]] = {}
        # NOTIFYs are being delivered now: the daemons may poll less often
        self.live = False

    def _dispatch(self, payload: str) -> None:
        for wake in list(self._subs.get(payload, ())):
            wake()

    def _set_live(self, live: bool) -> None:
        was, self.live = self.live, live
        if live and not was:  # what was notified while no one listened: look now
            for subs in list(self._subs.values()):
                for wake in list(subs):
                    wake()

    async def run(self) -> None:
        while True:
            try:
                await self._listen_all(self._dispatch, self._set_live)
            except Exception:
                log.exception("listen.failed")
            self._set_live(False)
            await anyio.sleep(1)  # reconnect

    def listener(self, account: str) -> Callable[[Callable[[], None]], Awaitable[None]]:
        async def listen(wake: Callable[[], None]) -> None:
            self._subs.setdefault(account, set()).add(wake)
            try:
                await anyio.sleep_forever()
            finally:
                self._subs.get(account, set()).discard(wake)

        return listen
