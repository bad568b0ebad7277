"""The composition root: build the object graph from settings, in one place.

Nothing is created at import time and no adapter reads the environment itself.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog

from treasury.adapters.binance.client import BinanceClient
from treasury.adapters.binance.limits import AccountReadPlan, IpBudgets, RateLimits
from treasury.adapters.binance.signing import load_signer
from treasury.adapters.db.engine import create_engine, normalize_url
from treasury.adapters.db.ledger import SqlLedger
from treasury.config import (
    AccountCredentials,
    Settings,
    SettingsError,
    account_credentials,
    account_variable,
)
from treasury.domain.policy_text import PolicyError
from treasury.logs import register_secret
from treasury.services.address_book import ExchangeSeen
from treasury.services.context import Alert, WorkerConfig, WorkerContext, no_alert
from treasury.services.exchange_view import ACCOUNT_TTL_S, ExchangeView
from treasury.services.local_entity import LocalEntityRouting
from treasury.services.policy import REREAD_S, PolicySnapshot, PolicySource

log = structlog.get_logger("treasury.bootstrap")


def worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def rate_limits(settings: Settings) -> RateLimits:
    """Binance's budgets (raised by the sandbox multiplier), the IP's divided among the
    ``TREASURY_IP_SHARED_BY`` processes that leave from this address."""
    m = settings.exchange_limit_multiplier
    ip = m / settings.ip_shared_by
    base = RateLimits()
    return RateLimits(
        api_ip_weight=max(1, int(base.api_ip_weight * ip)),
        sapi_ip_weight=max(1, int(base.sapi_ip_weight * ip)),
        sapi_uid_weight=int(base.sapi_uid_weight * m),
        sapi_uid_weight_per_second=int(base.sapi_uid_weight_per_second * m),
        history_per_second=max(1, int(base.history_per_second * m)),
        ip_shared_by=settings.ip_shared_by,
    )


def worker_config(settings: Settings, *, worker: str) -> WorkerConfig:
    """The worker's knobs: every ``WorkerConfig`` field named like a setting takes the
    setting's value (no field is copied by hand); the rest are derived here."""
    derived = {"worker_id", "history_per_second", "claim_batch"}
    same = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(WorkerConfig)
        if f.name in Settings.model_fields and f.name not in derived
    }
    return WorkerConfig(
        **same,
        worker_id=worker,
        history_per_second=rate_limits(settings).history_per_second,
        # a claim covers ~3 s of sends: the pipeline drains once per claim, not every 20
        claim_batch=max(20, math.ceil(settings.withdraw_rate * 3)),
    )


OnCall = Callable[[str, str, float], None]
# LISTEN for every account: (each NOTIFY's payload, whether NOTIFYs arrive now)
ListenAll = Callable[[Callable[[str], None], Callable[[bool], None] | None], Awaitable[None]]


def build_exchange(
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    on_call: OnCall | None = None,
    credentials: AccountCredentials | None = None,
    ip_budgets: IpBudgets | None = None,
) -> BinanceClient:
    """A client for one account (default: the primary account of the settings); pass the
    process's ``ip_budgets`` when several accounts leave from this host's address."""
    creds = credentials or account_credentials(settings, with_file=False)[0]
    secret = creds.api_secret
    pem = creds.private_key_file.read_bytes() if creds.private_key_file else None
    passphrase = creds.passphrase
    for value in (
        secret.get_secret_value() if secret else None,
        pem,
        passphrase.get_secret_value() if passphrase else None,
    ):
        register_secret(value)
    try:
        signer = load_signer(
            api_secret=secret,
            private_key_pem=pem,
            passphrase=passphrase.get_secret_value().encode() if passphrase else None,
        )
    except ValueError as exc:
        raise SettingsError(f"{_key_setting(settings, creds)}: {exc}") from None
    return BinanceClient(
        http,
        base_url=settings.binance_base_url,
        api_key=creds.api_key.get_secret_value(),
        signer=signer,
        recv_window_ms=settings.recv_window_ms,
        apply_recv_window_ms=settings.apply_recv_window_ms,
        limits=rate_limits(settings),
        withdraw_rate=settings.withdraw_rate,
        apply_timeout_s=settings.apply_timeout_s,
        on_call=on_call,
        ip_budgets=ip_budgets,
    )


class PolicyHolder:
    """The process's reading of the policy in force: the ledger's, never a file's.

    ``current`` is the one call every decision makes (the worker's commit, the approval
    expiry): caps, approvals and the expiry come from the same snapshot of one version,
    re-read at most every ``policy_reread_s`` with one indexed query. SIGHUP makes the
    next call ask the ledger at once (``reload``).
    """

    def __init__(self, ledger: SqlLedger, *, reread_s: float = REREAD_S) -> None:
        self.source = PolicySource(ledger.policies, operators=ledger.operators, reread_s=reread_s)

    async def current(self) -> PolicySnapshot | None:
        return await self.source.current()

    def reload(self) -> None:
        log.info("policy.reread_requested")
        self.source.reread_now()


async def adopt_policy_file(settings: Settings, ledger: SqlLedger) -> str | None:
    """``TREASURY_POLICY_FILE``, if set: the ledger's first policy when it has none; else
    a warning (logged, and returned) when the file differs from the version in force.

    Raises:
        PolicyError: the ledger has no policy and the file is missing or invalid.
    """
    from treasury.policy_file import read_policy_text
    from treasury.services.policy import adopt_file

    path = settings.policy_file
    if path is None:
        return None
    if await ledger.policies.current() is None:
        warning = await adopt_file(ledger, read_policy_text(path), path=str(path))
    else:
        try:
            text = read_policy_text(path)
        except PolicyError as exc:
            warning = f"TREASURY_POLICY_FILE: {exc}; the ledger's policy stays in force"
        else:
            warning = await adopt_file(ledger, text, path=str(path))
    if warning is not None:
        log.warning("policy.file_differs", detail=warning)
    return warning


@dataclass
class Runtime:
    settings: Settings
    ledger: SqlLedger
    exchange: BinanceClient  # the primary account's
    ctx: WorkerContext  # the primary account's
    policy: PolicyHolder
    accounts: list[tuple[BinanceClient, WorkerContext]]  # every account served, primary first
    # what ``add_account`` needs to build one more account while running (hot reload)
    http: httpx.AsyncClient | None = None
    alert: Alert = no_alert
    on_call: OnCall | None = None
    seen: ExchangeSeen | None = None
    local_entities: dict[str, str | None] = dataclasses.field(default_factory=dict)
    credentials: dict[str, AccountCredentials] = dataclasses.field(default_factory=dict)
    # the IP's weight pools and ban: one for every account this process serves
    ip_budgets: IpBudgets = dataclasses.field(default_factory=IpBudgets)
    # how long each account's balance read lasts, from how many send on that IP budget
    read_plan: AccountReadPlan | None = None

    def add_account(self, creds: AccountCredentials) -> tuple[BinanceClient, WorkerContext]:
        """A client and a worker context for one more account (not added to ``accounts``:
        the caller keeps the list of what it serves)."""
        assert self.http is not None and self.seen is not None
        built = build_account(
            self.settings,
            self.http,
            self.ledger,
            creds,
            policy=self.policy,
            worker=self.ctx.config.worker_id,
            alert=self.alert,
            on_call=self.on_call,
            seen=self.seen,
            ip_budgets=self.ip_budgets,
            read_plan=self.read_plan,
        )
        self.local_entities[creds.name] = creds.local_entity
        self.credentials[creds.name] = creds
        return built


def account_settings(settings: Settings, creds: AccountCredentials) -> Settings:
    """``settings`` as one account sees them (its own send rate, if it has one)."""
    if creds.withdraw_rate is None or creds.withdraw_rate == settings.withdraw_rate:
        return settings
    return settings.model_copy(update={"withdraw_rate": creds.withdraw_rate})


def build_account(
    settings: Settings,
    http: httpx.AsyncClient,
    ledger: SqlLedger,
    creds: AccountCredentials,
    *,
    policy: PolicyHolder,
    worker: str,
    alert: Alert,
    on_call: OnCall | None,
    seen: ExchangeSeen,
    ip_budgets: IpBudgets | None = None,
    read_plan: AccountReadPlan | None = None,
) -> tuple[BinanceClient, WorkerContext]:
    """One account's client (its own key, UID weight budgets, send pacer, clock offset;
    the IP's budgets from ``ip_budgets``, shared) and worker context (its own lease)."""
    own = account_settings(settings, creds)
    exchange = build_exchange(own, http, on_call=on_call, credentials=creds, ip_budgets=ip_budgets)
    # sends with a questionnaire go through the local entity; histories merge
    routed = LocalEntityRouting(exchange, local_entity=creds.local_entity)

    async def can_withdraw_changed(now: bool, name: str = creds.name) -> None:
        if not now:
            await alert("can_withdraw_false", f"canWithdraw of account {name!r} turned false", None)

    ctx = WorkerContext(
        ledger=ledger,
        exchange=routed,
        view=ExchangeView(
            routed,
            rules_ttl_s=settings.rules_ttl_s,
            account_ttl_s=ACCOUNT_TTL_S if read_plan is None else read_plan.interval_s,
            on_can_withdraw=can_withdraw_changed,
        ),
        config=dataclasses.replace(
            worker_config(own, worker=worker),
            account=creds.name,
            wallet=creds.wallet,
            internal_fee_payer=creds.internal_fee_payer,
        ),
        policy=policy.current,
        alert=alert,
        seen=seen,
    )
    return exchange, ctx


@asynccontextmanager
async def open_ledger(settings: Settings) -> AsyncIterator[SqlLedger]:
    """The process's one engine, as the ledger's stores; disposed on the way out.

    Every entry point (``run``, the CLI, the demo, ``treasury.api``) opens the database
    here and nowhere else; migrations and the schema check run on this same engine.
    """
    register_secret(normalize_url(settings.database_url).password)  # never in a log line
    engine = create_engine(settings.database_url)
    try:
        yield SqlLedger.over(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def runtime(
    settings: Settings,
    *,
    ledger: SqlLedger | None = None,
    alert: Alert = no_alert,
    worker: str | None = None,
    on_call: OnCall | None = None,
) -> AsyncIterator[Runtime]:
    """Everything ``treasury run`` needs: the ledger, and per account served a client
    (its own key, weight budgets and send pacer) and a worker context (its own lease).

    Pass the ``ledger`` a command already opened to keep one engine per process;
    without one, it is opened (and closed) here.
    """
    if ledger is None:
        async with (
            open_ledger(settings) as own,
            runtime(settings, ledger=own, alert=alert, worker=worker, on_call=on_call) as rt,
        ):
            yield rt
        return
    async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
        policy = PolicyHolder(ledger)
        me = worker or worker_id(settings)
        seen = ExchangeSeen()  # what this process's syncs found on each account's list
        ip = IpBudgets()  # Binance counts and bans by IP: every account here shares it
        read_plan = AccountReadPlan(rate_limits(settings), floor_s=ACCOUNT_TTL_S)
        all_creds = account_credentials(settings)
        accounts = [
            build_account(
                settings,
                http,
                ledger,
                creds,
                policy=policy,
                worker=me,
                alert=alert,
                on_call=on_call,
                seen=seen,
                ip_budgets=ip,
                read_plan=read_plan,
            )
            for creds in all_creds
        ]
        yield Runtime(
            settings=settings,
            ledger=ledger,
            exchange=accounts[0][0],
            ctx=accounts[0][1],
            policy=policy,
            accounts=accounts,
            http=http,
            alert=alert,
            on_call=on_call,
            seen=seen,
            local_entities={c.name: c.local_entity for c in all_creds},
            credentials={c.name: c for c in all_creds},
            ip_budgets=ip,
            read_plan=read_plan,
        )


def postgres_listener(
    settings: Settings, account: str | None = None
) -> Callable[[Callable[[], None]], object] | None:
    """LISTEN treasury_intents on a dedicated connection (PostgreSQL only)."""
    account = account or settings.account
    notifications = postgres_notifications(settings)
    if notifications is None:
        return None

    async def listen(wake: Callable[[], None]) -> None:
        def on_payload(payload: str) -> None:
            if payload == account:
                wake()

        await notifications(on_payload, None)

    return listen


def postgres_notifications(settings: Settings) -> ListenAll | None:
    """LISTEN treasury_intents on one dedicated connection (PostgreSQL only): each
    NOTIFY's payload (the intent's account) goes to ``on_payload``. ``treasury run``
    opens one for all its accounts (an account file may list many)."""
    url = normalize_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        return None
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def listen(
        on_payload: Callable[[str], None], on_live: Callable[[bool], None] | None = None
    ) -> None:
        """``on_live(True)`` once NOTIFYs are delivered, ``on_live(False)`` when no longer."""
        import anyio
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:

            def on_notify(_c: object, _pid: int, _channel: str, payload: str) -> None:
                on_payload(payload)

            await conn.add_listener("treasury_intents", on_notify)
            if on_live is not None:
                on_live(True)
            while not conn.is_closed():
                await anyio.sleep(5)
                await conn.execute("SELECT 1")  # notice a dead connection
        finally:
            if on_live is not None:
                on_live(False)
            await conn.close()

    return listen


def _key_setting(settings: Settings, creds: AccountCredentials) -> str:
    """The variable that holds ``creds``' signing key (and the key file, if one)."""
    key = "PRIVATE_KEY_FILE" if creds.private_key_file else "API_SECRET"
    var = (
        f"TREASURY_BINANCE_{key}"
        if creds.name == settings.account
        else account_variable(creds.name, key)
    )
    return f"{var} ({creds.private_key_file})" if creds.private_key_file else var
