"""The composition root hands the worker every setting it names, none copied by hand."""

from __future__ import annotations

import dataclasses

import pytest

from treasury.bootstrap import worker_config
from treasury.config import Settings, load_settings
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
