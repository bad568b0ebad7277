"""The ledger-vs-exchange rule (pure): every state an intent can be in, against a record."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from treasury.domain import truth
from treasury.domain.exchange import WithdrawalRecord
from treasury.domain.ids import intent_id_from_order_id, next_free_order_id, withdraw_order_id
from treasury.domain.intent import Intent
from treasury.domain.reconcile import amount_matches, matches
from treasury.domain.status import Status
from treasury.domain.wallet import Wallet

NOW = datetime(2026, 11, 29, tzinfo=UTC)
OID = "trs-abcd1234-7"


def intent(status: Status = Status.QUEUED, **kw: object) -> Intent:
    base = Intent(
        id=7,
        coin="USDT",
        network="TRX",
        address="TAddr",
        address_tag=None,
        amount=Decimal("100"),
        account="default",
        request_id=None,
        requested_by=None,
        note=None,
        status=status,
        status_reason=None,
        withdraw_order_id=None,
        exchange_withdraw_id=None,
        tx_id=None,
        fee=None,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def record(**kw: object) -> WithdrawalRecord:
    base = WithdrawalRecord(
        id="w1",
        withdraw_order_id=OID,
        coin="USDT",
        network="TRX",
        address="TAddr",
        address_tag=None,
        amount=Decimal("99"),
        fee=Decimal("1"),
        status=6,
        tx_id="tx",
        apply_time=NOW,
        complete_time=NOW,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def judge(owner: Intent | None, rec: WithdrawalRecord | None = None) -> truth.Judgement:
    return truth.judge(rec or record(), owner, account="default", intent_id=7)


@pytest.mark.parametrize(
    ("amount", "fee", "ok"),
    [
        ("99", "1", True),  # net of the fee: the realistic form
        ("100", "1", True),  # gross
        ("100", "0", True),
        ("98.99", "1", False),  # neither
        ("99.000000000000000001", "1", False),  # exact, not "close enough"
        ("101", "1", False),
    ],
)
def test_amount_matches_net_or_gross_exactly(amount: str, fee: str, ok: bool) -> None:
    assert amount_matches(Decimal("100"), record(amount=Decimal(amount), fee=Decimal(fee))) is ok


@pytest.mark.parametrize("status", [Status.QUEUED, Status.AWAITING_APPROVAL, Status.SUBMITTING])
def test_a_matching_record_of_an_unsent_intent_is_adopted(status: Status) -> None:
    assert isinstance(judge(intent(status)), truth.Adopt)


@pytest.mark.parametrize(
    "change",
    [
        {"address": "TOther"},
        {"coin": "BTC"},
        {"network": "BSC"},
        {"address_tag": "9"},
        {"amount": Decimal("50")},
    ],
)
def test_a_contradicting_record_of_an_unsent_intent_needs_a_person(
    change: dict[str, object],
) -> None:
    rec = record(**change)
    got = judge(intent(), rec)
    assert isinstance(got, truth.Attention)
    assert not matches(intent(), rec)
    assert "does not match" in got.reason and rec.id in got.reason


def test_no_owner_means_the_ledger_is_behind() -> None:
    got = truth.judge(record(), None, account="default", intent_id=7)
    assert isinstance(got, truth.Unknown) and got.intent_id == 7
    assert "restored from a backup" in got.reason and "w1" in got.reason


def test_another_accounts_intent_is_a_contradiction() -> None:
    assert isinstance(judge(intent(account="desk2")), truth.Attention)
    assert isinstance(
        judge(intent(Status.COMPLETED, account="desk2", exchange_withdraw_id="w1")),
        truth.Disagreement,
    )


def test_a_second_withdrawal_is_a_duplicate() -> None:
    assert isinstance(judge(intent(Status.SUBMITTED, exchange_withdraw_id="w0")), truth.Duplicate)


@pytest.mark.parametrize(
    ("status", "exchange_status", "expected"),
    [
        (Status.SUBMITTED, 4, truth.Consistent),  # the settle poll takes it on
        (Status.COMPLETED, 6, truth.Consistent),
        (Status.FAILED, 5, truth.Consistent),
        (Status.COMPLETED, 5, truth.Disagreement),  # completed here, failed there
        (Status.FAILED, 6, truth.Disagreement),  # failed here, completed there
        (Status.FAILED, 4, truth.Disagreement),  # failed here, still pending there
    ],
)
def test_the_same_withdrawal_is_checked_for_its_outcome(
    status: Status, exchange_status: int, expected: type
) -> None:
    got = judge(intent(status, exchange_withdraw_id="w1"), record(status=exchange_status))
    assert isinstance(got, expected)
    if isinstance(got, truth.Disagreement):
        assert got.pause is False  # the ledger knew the withdrawal: not behind


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.REJECTED, Status.FAILED])
def test_terminal_without_the_withdrawal_pauses(status: Status) -> None:
    got = judge(intent(status))
    assert isinstance(got, truth.Disagreement) and got.pause
    assert status.value in got.reason and "w1" in got.reason


def test_needs_attention_gets_a_note() -> None:
    got = judge(intent(Status.NEEDS_ATTENTION))
    assert isinstance(got, truth.Noted) and "it matches" in got.reason


def test_next_free_order_id_skips_burned_ids() -> None:
    assert next_free_order_id(OID, set()) == OID
    assert next_free_order_id(OID, {OID}) == f"{OID}-2"
    assert next_free_order_id(OID, {OID, f"{OID}-2"}) == f"{OID}-3"


@pytest.mark.parametrize(
    ("oid", "expected"),
    [
        ("trs-abcd1234-7", 7),
        ("trs-abcd1234-7-2", 7),
        ("trs-other999-7", None),
        ("trs-abcd1234-x", None),
        ("trs-abcd1234-7-x", None),
        ("trs-abcd1234-7-", None),
        ("trs-abcd1234-٣", None),
        ("trs-abcd1234-" + "9" * 30, None),
        ("manual-1", None),
    ],
)
def test_order_ids_name_their_intent(oid: str, expected: int | None) -> None:
    assert intent_id_from_order_id("abcd1234", oid) == expected
    if expected is not None:
        assert oid.startswith(withdraw_order_id("abcd1234", expected))


@pytest.mark.parametrize(
    ("wallet", "wallet_type", "same"),
    [
        (Wallet.SPOT, 0, True),
        (Wallet.FUNDING, 1, True),
        (Wallet.FUNDING, 0, False),  # the exchange debited another wallet than recorded
        (Wallet.SPOT, 1, False),
        (None, 1, True),  # a queued intent's wallet is still open
        (Wallet.SPOT, None, True),  # a record without walletType says nothing
    ],
)
def test_the_wallet_debited_must_be_the_intents(
    wallet: Wallet | None, wallet_type: int | None, same: bool
) -> None:
    rec = record(wallet_type=wallet_type)
    mine = intent(wallet=wallet)
    assert matches(mine, rec) is same
    got = judge(mine, rec)
    if same:
        assert isinstance(got, truth.Adopt)
    else:
        assert isinstance(got, truth.Attention) and "wallet" in got.reason


@pytest.mark.parametrize(
    ("amount", "fee", "who_pays"),
    [
        ("100", "1", "sender"),  # transactionFeeFlag false: the fee on top, all 100 arrive
        ("99", "1", "recipient"),  # transactionFeeFlag true, net: 99 arrive
        ("100", "0", "either"),  # a free internal transfer
    ],
)
def test_an_internal_transfer_matches_with_either_fee_payer(
    amount: str, fee: str, who_pays: str
) -> None:
    rec = record(
        amount=Decimal(amount),
        fee=Decimal(fee),
        transfer_type=1,
        tx_id="Off-chain transfer 123456789",
    )
    assert amount_matches(Decimal("100"), rec), who_pays
    assert isinstance(judge(intent(Status.SUBMITTING), rec), truth.Adopt)


def test_an_internal_transfer_showing_the_fee_added_to_the_amount_needs_a_person() -> None:
    """101 = 100 requested + 1 fee: the sender's whole debit shown as the amount. No reading
    of Binance's history gives it, so it is never adopted silently."""
    rec = record(amount=Decimal("101"), fee=Decimal("1"), transfer_type=1)
    assert not amount_matches(Decimal("100"), rec)
    got = judge(intent(Status.SUBMITTING), rec)
    assert isinstance(got, truth.Attention) and "amount 101 + fee 1 vs 100" in got.reason
