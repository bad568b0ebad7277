"""Request parameters, checked against Binance's documented rules before anything is sent.

A request that would be refused anyway raises ``ValueError`` here: nothing leaves, no
weight is spent, and for withdraw/apply no turn of the pace is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal

from treasury.adapters.binance.encoding import ParamValue
from treasury.domain.exchange import WithdrawRequest
from treasury.domain.fee_payer import FeePayer
from treasury.domain.money import format_amount
from treasury.domain.wallet import Wallet

WITHDRAW_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # ours, see reference §6
MAX_ID_LIST = 45  # since 2024-11-21 (older pages say 50)
MAX_HISTORY_LIMIT = 1000
DAY_MS = 86_400_000
MAX_HISTORY_WINDOW_MS = 90 * DAY_MS  # the window must be shorter than this
MAX_ORDER_ID_WINDOW_MS = 7 * DAY_MS  # ... and shorter than this with withdrawOrderId


def check_withdraw_order_id(value: object) -> str:
    if not isinstance(value, str) or not WITHDRAW_ORDER_ID.fullmatch(value):
        raise ValueError("withdraw_order_id must match [A-Za-z0-9_-]{1,64}")
    return value


def withdraw_params(request: WithdrawRequest) -> list[tuple[str, ParamValue]]:
    """coin, network, address, [addressTag], amount, withdrawOrderId, walletType,
    transactionFeeFlag; never ``name``. ``walletType`` is always sent: without it Binance
    debits the wallet chosen in the account's settings, which the API does not report.
    ``transactionFeeFlag`` (``true``: the recipient pays an internal transfer's fee;
    ``false``: the sender) is always sent too, so who pays never depends on a default;
    Binance ignores it for an on-chain withdrawal.

    ``name`` would add the address to the account's address book (and break signatures
    with escapable characters in several libraries), so it does not exist here.
    """
    for field in ("coin", "network", "address"):
        value = getattr(request, field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"withdraw {field} must be a non-empty string")
    amount = request.amount
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        raise ValueError("withdraw amount must be a finite Decimal greater than 0")
    params: list[tuple[str, ParamValue]] = [
        ("coin", request.coin),
        ("network", request.network),
        ("address", request.address),
    ]
    if request.address_tag:
        params.append(("addressTag", request.address_tag))
    params.append(("amount", format_amount(amount)))
    params.append(("withdrawOrderId", check_withdraw_order_id(request.withdraw_order_id)))
    wallet = request.wallet
    if not isinstance(wallet, Wallet):
        raise ValueError("withdraw wallet must be a Wallet (spot or funding)")
    params.append(("walletType", wallet.wallet_type))
    payer = request.fee_payer
    if not isinstance(payer, FeePayer):
        raise ValueError("withdraw fee_payer must be a FeePayer (sender or recipient)")
    params.append(("transactionFeeFlag", payer.transaction_fee_flag))
    return params


def history_params(
    *,
    withdraw_order_id: str | None,
    id_list: Sequence[str] | None,
    coin: str | None,
    status: int | None,
    start_time_ms: int | None,
    end_time_ms: int | None,
    offset: int,
    limit: int,
    now_ms: int,
) -> list[tuple[str, ParamValue]]:
    """Parameters for withdraw/history, after the documented checks.

    Raises:
        ValueError: limit outside 1..1000, negative offset, more than 45 ids, an empty or
            comma-bearing id, end before start, or a window of 90 days or more (7 days or
            more with ``withdraw_order_id``).
    """
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_HISTORY_LIMIT}")
    if offset < 0:
        raise ValueError("offset must not be negative")
    if start_time_ms is not None and end_time_ms is not None and end_time_ms < start_time_ms:
        raise ValueError("end_time_ms is before start_time_ms")
    if start_time_ms is not None:
        window = (end_time_ms if end_time_ms is not None else now_ms) - start_time_ms
        if window >= MAX_HISTORY_WINDOW_MS:
            raise ValueError("the history window must be shorter than 90 days")
        if withdraw_order_id is not None and window >= MAX_ORDER_ID_WINDOW_MS:
            raise ValueError("with withdraw_order_id the window must be shorter than 7 days")
    params: list[tuple[str, ParamValue]] = []
    if coin is not None:
        params.append(("coin", coin))
    if withdraw_order_id is not None:
        params.append(("withdrawOrderId", check_withdraw_order_id(withdraw_order_id)))
    if status is not None:
        params.append(("status", status))
    if id_list is not None:
        ids = list(id_list)
        if not ids or len(ids) > MAX_ID_LIST:
            raise ValueError(f"id_list must hold 1 to {MAX_ID_LIST} ids")
        if any(not i or "," in i for i in ids):
            raise ValueError("id_list entries must be non-empty and contain no comma")
        params.append(("idList", ",".join(ids)))
    if start_time_ms is not None:
        params.append(("startTime", start_time_ms))
    if end_time_ms is not None:
        params.append(("endTime", end_time_ms))
    params.append(("offset", offset))
    params.append(("limit", limit))
    return params


MAX_QUESTIONNAIRE_CHARS = 16_384  # ours: a questionnaire is a few hundred bytes


def questionnaire_text(questionnaire: Mapping[str, object]) -> str:
    """The questionnaire as compact JSON, the value of ``questionnaire``.

    ``encode_query`` then percent-encodes it (UTF-8), so it travels URL-encoded, as the
    travel-rule pages ask, and is signed as part of the query like every other value.
    Values must be strings, integers or booleans: a float would put binary noise into a
    document Binance checks field by field.

    Raises:
        ValueError: empty, a key that is not a non-empty string, or another value type.
    """
    if not isinstance(questionnaire, Mapping) or not questionnaire:
        raise ValueError("questionnaire must be a non-empty mapping")
    for key, value in questionnaire.items():
        if not isinstance(key, str) or not key:
            raise ValueError("questionnaire keys must be non-empty strings")
        if not isinstance(value, (str, int, bool)):  # bool is an int: allowed either way
            raise ValueError(
                f"questionnaire.{key} must be a string, an integer or a boolean, "
                f"not {type(value).__name__}"
            )
    text = json.dumps(dict(questionnaire), separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_QUESTIONNAIRE_CHARS:
        raise ValueError(f"questionnaire is longer than {MAX_QUESTIONNAIRE_CHARS} characters")
    return text


def local_withdraw_params(
    request: WithdrawRequest, questionnaire: Mapping[str, object]
) -> list[tuple[str, ParamValue]]:
    """``withdraw_params`` plus ``questionnaire`` (checked the same way, nothing else)."""
    return [*withdraw_params(request), ("questionnaire", questionnaire_text(questionnaire))]


def local_history_params(
    *,
    tr_ids: Sequence[int] | None,
    withdraw_order_id: str | None,
    coin: str | None,
    travel_rule_status: int | None,
    start_time_ms: int | None,
    end_time_ms: int | None,
    offset: int,
    limit: int,
    now_ms: int,
) -> list[tuple[str, ParamValue]]:
    """Parameters of the local-entity history, under the capital history's window rules
    (its page states the same 90-day and 7-day limits).

    Raises:
        ValueError: as ``history_params``, or a ``trId`` that is not a positive integer,
            or a ``travel_rule_status`` outside 0..2.
    """
    base = history_params(
        withdraw_order_id=withdraw_order_id,
        id_list=None,
        coin=coin,
        status=None,
        start_time_ms=start_time_ms,
        end_time_ms=end_time_ms,
        offset=offset,
        limit=limit,
        now_ms=now_ms,
    )
    extra: list[tuple[str, ParamValue]] = []
    if tr_ids is not None:
        ids = list(tr_ids)
        if not ids or len(ids) > MAX_ID_LIST:
            raise ValueError(f"tr_ids must hold 1 to {MAX_ID_LIST} ids")
        if any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in ids):
            raise ValueError("tr_ids must be positive integers")
        extra.append(("trId", ",".join(str(i) for i in ids)))
    if travel_rule_status is not None:
        if travel_rule_status not in (0, 1, 2):
            raise ValueError("travel_rule_status must be 0, 1 or 2")
        extra.append(("travelRuleStatus", travel_rule_status))
    return [*extra, *base]
