"""The memo/tag rule of a network, as ``withdrawTag`` states it (docs/binance-capital-api.md).

A network with ``withdrawTag`` false takes no tag: Binance refuses one with -4106 whatever
its ``memoRegex`` says, so the worker refuses it before anything is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from treasury.domain.decisions import Pass, Reject
from treasury.domain.exchange import CoinConfig, NetworkRule
from treasury.domain.intent import Intent
from treasury.domain.rules import check_network_rules
from treasury.domain.status import Status

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def intent(tag: str | None) -> Intent:
    return Intent(
        id=1, coin="XRP", network="XRP", address="rAddr", address_tag=tag,
        amount=Decimal("25"), account="default", request_id=None, requested_by=None,
        note=None, status=Status.QUEUED, status_reason=None, withdraw_order_id=None,
        exchange_withdraw_id=None, tx_id=None, fee=None, created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def coins(memo_required: bool | None, memo_regex: str) -> dict[str, CoinConfig]:
    rule = NetworkRule(
        coin="XRP", network="XRP", withdraw_enable=True, withdraw_min=Decimal(1),
        withdraw_max=Decimal(1000), withdraw_multiple=Decimal("0.000001"),
        withdraw_fee=Decimal("0.25"), address_regex="", memo_regex=memo_regex,
        memo_required=memo_required,
    )  # fmt: skip
    return {"XRP": CoinConfig(coin="XRP", withdraw_all_enable=True, free=Decimal(0),
                              networks=(rule,))}  # fmt: skip


MEMO = r"^[0-9]{1,10}$"


@pytest.mark.parametrize(
    ("memo_required", "memo_regex", "tag", "refused"),
    [
        # withdrawTag false: no tag, even where a memo pattern is published (-4106)
        (False, MEMO, "12345", "takes no memo/tag (withdrawTag is false)"),
        (False, "", "12345", "takes no memo/tag (withdrawTag is false)"),
        (False, MEMO, None, None),
        # withdrawTag true: a tag is required, and must match the pattern
        (True, MEMO, None, "needs a memo/tag"),
        (True, MEMO, "12345", None),
        (True, MEMO, "abc", "does not match the memo pattern"),
        # no withdrawTag in the answer: a tag only where a memo pattern exists
        (None, MEMO, "12345", None),
        (None, "", "12345", "takes no memo/tag"),
        (None, "", None, None),
    ],
)
def test_tag_rule(
    memo_required: bool | None, memo_regex: str, tag: str | None, refused: str | None
) -> None:
    verdict = check_network_rules(intent(tag), coins(memo_required, memo_regex))
    if refused is None:
        assert verdict == Pass()
    else:
        assert isinstance(verdict, Reject) and refused in verdict.reason, verdict


def test_a_tag_refused_for_a_network_names_the_network() -> None:
    verdict = check_network_rules(intent("7"), coins(False, MEMO))
    assert isinstance(verdict, Reject) and "XRP on XRP" in verdict.reason
