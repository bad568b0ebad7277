"""What the worker's services share: the ledger, the exchange, the knobs, the alarms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from treasury.ports.exchange import Exchange
from treasury.ports.store import Ledger
from treasury.services.address_book import ExchangeSeen, Trust
from treasury.services.exchange_view import ExchangeView

if TYPE_CHECKING:
    from treasury.services.policy import PolicySnapshot

# kind, message, intent id (if any): delivered in the background, never blocks the worker
Alert = Callable[[str, str, int | None], Awaitable[None]]
# The policy in force (services.policy.PolicySource.current): None, no policy at all.
PolicyReader = Callable[[], Awaitable["PolicySnapshot | None"]]


async def no_alert(_kind: str, _message: str, _intent_id: int | None) -> None:
    return None


async def no_policy() -> PolicySnapshot | None:
    return None


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    account: str = "default"
    worker_id: str = "worker"
    withdraw_rate: float = 1.0
    apply_recv_window_ms: int = 5000
    poll_interval_s: float = 5.0
    intake_interval_s: float = 0.5
    # the same while a LISTEN connection delivers NOTIFY (PostgreSQL): new and re-queued
    # intents wake the intake at once, so the poll only finds held intents come due
    intake_listening_s: float = 5.0
    history_lag_allowance_s: float = 600.0
    resend: str = "auto"  # "manual": a proven absence goes to a person, not back to queued
    wallet: str = "spot"  # the account's default wallet, for intents that name none
    internal_fee_payer: str = "recipient"  # who pays an internal transfer's fee (sender/recipient)
    sweep_interval_s: float = 300.0
    exchange_unreachable_alert_s: float = 300.0
    reconcile_interval_s: float = 10.0
    reconcile_give_up_s: float = 3600.0
    hold_backoff_s: float = 30.0
    max_hold_s: float = 86400.0
    max_settle_age_s: float = 86400.0
    lease_ttl_s: float = 15.0
    shutdown_grace_s: float = 8.0
    history_per_second: int = 10  # withdraw/history's per-second limit (the client's)
    claim_batch: int = 20
    # a manual (or unverified) address-book entry is usable this long after created_at
    manual_whitelist_cooling_s: float = 86400.0


@dataclass(frozen=True)
class StartupHold:
    """A new sender does not send what was queued before it started until the history
    could show every withdrawal a predecessor made: a restored ledger (or a replica that
    lost writes) cannot tell it which of those intents already left."""

    created_before: datetime
    until: datetime

    @property
    def reason(self) -> str:
        return (
            f"held until {self.until:%Y-%m-%d %H:%M:%S} UTC: this daemon became the sender "
            "at "
            f"{self.created_before:%H:%M:%S}, and a withdrawal made just before that "
            "(by a restored or failed-over ledger) can take up to the history-lag allowance "
            "to show in history; nothing queued before then is sent until it has been looked for"
        )


@dataclass(kw_only=True)
class WorkerContext:
    ledger: Ledger
    exchange: Exchange
    view: ExchangeView
    config: WorkerConfig
    # the caps, the approvals and their expiry all come from one snapshot of one version
    policy: PolicyReader = no_policy
    alert: Alert = no_alert
    in_flight: set[int] = field(default_factory=set)
    startup_hold: StartupHold | None = None
    on_submitted: Callable[[], None] = lambda: None  # wakes the settle poller
    on_reconciled: Callable[[str], None] = lambda _decision: None  # metrics
    # what this process's syncs saw on the exchange's address book (shared by accounts)
    seen: ExchangeSeen = field(default_factory=ExchangeSeen)
    # the operators (approvers) this process has already told people about
    operators_known: set[str] = field(default_factory=set)
    _trust: Trust | None = field(default=None, init=False, repr=False)

    @property
    def trust(self) -> Trust:
        """The cooling verdict's inputs from this process (one per context: it remembers
        which unverified entries it has alerted about)."""
        if self._trust is None:
            self._trust = Trust(self.seen, self.config.manual_whitelist_cooling_s, self.alert)
        return self._trust
