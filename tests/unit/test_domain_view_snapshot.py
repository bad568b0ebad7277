"""``domain.view_snapshot``: the daemon's exchange view as JSON, round trip exact (amounts
as decimal strings), and anything else refused as ``MalformedSnapshot`` saying why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from treasury.domain.exchange import CoinConfig, NetworkRule, WithdrawQuota
from treasury.domain.fee_payer import FeePayer
from treasury.domain.view_snapshot import (
    FORMAT,
    MalformedSnapshot,
    Standing,
    ViewSnapshot,
    from_json,
    key_of,
    to_json,
)
from treasury.domain.wallet import Wallet

AT = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)


def _full() -> ViewSnapshot:
    rule = NetworkRule(
        coin="USDT",
        network="TRX",
        withdraw_enable=True,
        withdraw_min=Decimal("10.000"),
        withdraw_max=Decimal("9999999.99999999"),
        withdraw_multiple=Decimal("0.01"),
        withdraw_fee=Decimal("0.00000001"),
        address_regex="^T[A-Za-z0-9]{33}$",
        memo_regex="",
        memo_required=False,
        is_default=True,
        busy=True,
        withdraw_desc="suspended for upgrade",
    )
    memo = NetworkRule(
        coin="XRP",
        network="XRP",
        withdraw_enable=False,
        withdraw_min=Decimal("20"),
        withdraw_max=Decimal("0"),
        withdraw_multiple=Decimal("0"),
        withdraw_fee=Decimal("0.25"),
        address_regex="",
        memo_regex="^[0-9]+$",
        memo_required=None,
    )
    return ViewSnapshot(
        account="main",
        fetched_at=AT,
        wallet=Wallet.FUNDING,
        fee_payer=FeePayer.SENDER,
        coins={
            "USDT": CoinConfig(
                coin="USDT", withdraw_all_enable=True, free=Decimal("1.10"), networks=(rule,)
            ),
            "XRP": CoinConfig(
                coin="XRP", withdraw_all_enable=False, free=Decimal(0), networks=(memo,)
            ),
        },
        balances={
            Wallet.SPOT: {"USDT": Decimal("123456789.12345678"), "XRP": Decimal("0E-8")},
            Wallet.FUNDING: {"USDT": Decimal("-0.5")},
        },
        quota=WithdrawQuota(quota=Decimal("8000000"), used=Decimal("12.5")),
        standing=Standing(
            system_normal=True, can_withdraw=False, account_status="Normal", enable_withdrawals=True
        ),
        travel_rule="JP",
        travel_rule_known=True,
    )


def test_round_trip_is_exact() -> None:
    snap = _full()
    text = to_json(snap)
    back = from_json(text)
    assert back == snap
    # exact to the digit: "10.000" stays "10.000", no float anywhere
    assert back.coins["USDT"].networks[0].withdraw_min.as_tuple() == Decimal("10.000").as_tuple()
    doc = json.loads(text)
    assert doc["format"] == FORMAT
    assert doc["balances"]["spot"]["USDT"] == "123456789.12345678"
    assert to_json(back) == text


def test_round_trip_of_a_bare_snapshot() -> None:
    bare = ViewSnapshot(
        account="default", fetched_at=AT, wallet=Wallet.SPOT, fee_payer=FeePayer.RECIPIENT
    )
    assert from_json(to_json(bare)) == bare
    assert bare.free(Wallet.SPOT, "USDT") is None  # not fetched, not zero


def test_free_and_age() -> None:
    snap = _full()
    assert snap.free(Wallet.SPOT, "BTC") == Decimal(0)  # fetched, none held
    assert snap.age_s(datetime(2026, 11, 30, 12, 1, 0, 123456, tzinfo=UTC)) == 60
    assert snap.age_s(datetime(2026, 11, 30, 11, 0, tzinfo=UTC)) == 0  # never negative
    assert key_of("main") == "exchange_view:main"


def _doc() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(to_json(_full()))
    return result


def _with(change: Any) -> str:
    doc = _doc()
    change(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[]", "list, not an object"),
        ('"x"', "str, not an object"),
        ("{}", "format None"),
        (_with(lambda d: d.update(format=2)), "format 2, expected 1"),
        (_with(lambda d: d.update(format="1")), "format '1'"),
        (_with(lambda d: d.pop("account")), "'account'"),
        (_with(lambda d: d.pop("coins")), "'coins'"),
        (_with(lambda d: d.update(wallet="margin")), "margin"),
        (_with(lambda d: d.update(fee_payer="nobody")), "nobody"),
        (_with(lambda d: d.update(fetched_at="yesterday")), "yesterday"),
        (_with(lambda d: d.update(fetched_at="2026-11-30T12:00:00")), "no time zone"),
        (_with(lambda d: d.update(fetched_at=1)), "fetched_at is int"),
        (_with(lambda d: d["balances"]["spot"].update(USDT="lots")), "InvalidOperation"),
        (_with(lambda d: d["balances"]["spot"].update(USDT=1.5)), "float, not a decimal"),
        (_with(lambda d: d["balances"]["spot"].update(USDT="NaN")), "'NaN'"),
        (_with(lambda d: d["quota"].update(used="Infinity")), "'Infinity'"),
        (_with(lambda d: d["coins"]["USDT"]["networks"][0].pop("withdraw_fee")), "withdraw_fee"),
        (_with(lambda d: d["coins"]["USDT"].update(networks=None)), "TypeError"),
        (_with(lambda d: d["standing"].update(extra=1)), "extra"),
        (_with(lambda d: d.update(balances=[])), "AttributeError"),
    ],
)
def test_anything_else_is_refused_saying_why(text: str, words: str) -> None:
    with pytest.raises(MalformedSnapshot) as caught:
        from_json(text)
    assert words in str(caught.value), str(caught.value)
    assert isinstance(caught.value, ValueError)
