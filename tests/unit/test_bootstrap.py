"""The composition root hands the worker every setting it names, none copied by hand."""

from __future__ import annotations

import dataclasses

import pytest

from treasury.bootstrap import worker_config
from treasury.config import Settings, SettingsError, load_settings
from treasury.services.context import WorkerConfig

DERIVED = {"worker_id", "history_per_second", "claim_batch"}


def test_every_worker_knob_is_a_setting_or_derived() -> None:
    names = {f.name for f in dataclasses.fields(WorkerConfig)}
    assert names - DERIVED <= set(Settings.model_fields), (
        names - DERIVED - set(Settings.model_fields)
    )


def test_settings_reach_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREASURY_RESEND", "manual")
    monkeypatch.setenv("TREASURY_SWEEP_INTERVAL_S", "42")
    monkeypatch.setenv("TREASURY_WITHDRAW_RATE", "10")
    cfg = worker_config(load_settings(), worker="w1")
    assert (cfg.resend, cfg.sweep_interval_s, cfg.withdraw_rate) == ("manual", 42, 10)
    assert cfg.worker_id == "w1" and cfg.claim_batch == 30


async def test_every_account_of_a_runtime_shares_the_ip_budgets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """Binance limits and bans by IP: the clients of all accounts one process serves
    (the environment's and a hot-added one) draw on one IpBudgets; UID pools stay theirs."""
    from treasury.bootstrap import runtime
    from treasury.config import account_credentials

    monkeypatch.setenv("TREASURY_DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    monkeypatch.setenv("TREASURY_BINANCE_API_KEY", "k0")
    monkeypatch.setenv("TREASURY_BINANCE_API_SECRET", "s" * 32)
    monkeypatch.setenv("TREASURY_EXTRA_ACCOUNTS", "ops-1,ops2")
    for name in ("OPS_1", "OPS2"):
        monkeypatch.setenv(f"TREASURY_ACCOUNT_{name}_API_KEY", f"k-{name}")
        monkeypatch.setenv(f"TREASURY_ACCOUNT_{name}_API_SECRET", "t" * 32)
    settings = load_settings()
    async with runtime(settings) as rt:
        limiters = [client.rate_limiter for client, _ in rt.accounts]
        assert len(limiters) == 3
        assert all(lim.ip_budgets is rt.ip_budgets for lim in limiters)
        assert len({id(lim) for lim in limiters}) == 3  # each account its own UID pools
        added, _ = rt.add_account(account_credentials(settings)[1])
        assert added.rate_limiter.ip_budgets is rt.ip_budgets


def test_the_ip_budgets_are_divided_among_the_processes_sharing_the_ip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from treasury.bootstrap import rate_limits

    monkeypatch.setenv("TREASURY_BINANCE_API_KEY", "k0")
    monkeypatch.setenv("TREASURY_BINANCE_API_SECRET", "s" * 32)
    alone = rate_limits(load_settings())
    monkeypatch.setenv("TREASURY_IP_SHARED_BY", "3")
    shared = rate_limits(load_settings())
    assert (alone.api_ip_weight, alone.sapi_ip_weight) == (6_000, 12_000)
    assert (shared.api_ip_weight, shared.sapi_ip_weight) == (2_000, 4_000)
    assert (alone.ip_shared_by, shared.ip_shared_by) == (1, 3)  # the server's total, a third
    # the account's own (UID) budgets are not the IP's: not divided
    assert shared.sapi_uid_weight == alone.sapi_uid_weight
    assert shared.history_per_second == alone.history_per_second
    monkeypatch.setenv("TREASURY_IP_SHARED_BY", "0")
    with pytest.raises(SettingsError, match="TREASURY_IP_SHARED_BY"):
        load_settings()


def test_the_account_read_lasts_longer_the_more_accounts_send_on_the_ip() -> None:
    from treasury.adapters.binance.limits import AccountReadPlan, RateLimits

    plan = AccountReadPlan(RateLimits(), floor_s=5.0)
    by_senders = {}
    for n in (1, 12, 13, 100):
        plan.senders = lambda n=n: n
        by_senders[n] = plan.interval_s()
    # half of 6,000 a minute at weight 20 is 150 reads a minute
    assert by_senders == {1: 5.0, 12: 5.0, 13: pytest.approx(5.2), 100: pytest.approx(40.0)}
    shared = AccountReadPlan(RateLimits(api_ip_weight=2_000), floor_s=5.0)
    shared.senders = lambda: 34
    assert shared.interval_s() == pytest.approx(40.8)  # a third of the IP, a third of them
