"""The travel-rule (local-entity) endpoints of the client, on the wire (respx)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
import respx

from treasury.adapters.binance import BinanceClient
from treasury.domain.exchange import TravelRuleStatus, WithdrawRequest
from treasury.ports.exchange import NotSent, OutcomeUnknown, Reason, Rejected

LOCAL_APPLY = "/sapi/v1/localentity/withdraw/apply"
LOCAL_HISTORY = "/sapi/v2/localentity/withdraw/history"
REQUIREMENTS = "/sapi/v1/localentity/questionnaire-requirements"
QUESTIONNAIRE = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "kanjiName": "山田太郎",
    "latinName": "Taro Yamada & Co",
    "isAttested": True,
}
ACCEPTED = httpx.Response(200, json={"trId": 123456, "accpted": True, "info": "ok"})
TS = 1_700_000_000_000


async def test_the_questionnaire_is_compact_json_url_encoded_inside_the_signed_query(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    route = router.post(LOCAL_APPLY).mock(return_value=ACCEPTED)
    accepted = await client.withdraw_local_entity(make_request(), QUESTIONNAIRE, timestamp_ms=TS)
    assert accepted.tr_id == 123456 and accepted.id is None and accepted.timestamp_ms == TS
    sent = route.calls.last.request
    payload, signature = wire.split_signature(sent)
    assert signature == wire.hmac_of(payload)
    compact = json.dumps(QUESTIONNAIRE, separators=(",", ":"), ensure_ascii=False)
    assert f"&questionnaire={quote(compact, safe='')}&" in payload
    assert "%7B%22isAddressOwner%22%3A2%2C" in payload  # {"isAddressOwner":2, encoded
    assert wire.params(sent)["questionnaire"] == compact
    assert payload.startswith("coin=USDT&network=ETH&") and "withdrawOrderId=intent-42_a" in payload
    assert sent.content == b"" and sent.method == "POST"


@pytest.mark.parametrize("key", ["accpted", "accepted"])
async def test_both_spellings_of_accepted_are_read(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    key: str,
) -> None:
    router.post(LOCAL_APPLY).mock(
        return_value=httpx.Response(200, json={"trId": 7, key: True, "info": ""})
    )
    assert (await client.withdraw_local_entity(make_request(), QUESTIONNAIRE)).tr_id == 7


async def test_a_refused_questionnaire_is_a_permanent_travel_rule_rejection(
    router: respx.MockRouter, client: BinanceClient, make_request: Callable[..., WithdrawRequest]
) -> None:
    router.post(LOCAL_APPLY).mock(
        return_value=httpx.Response(
            200, json={"accepted": False, "info": "Questionnaire must not be blank"}
        )
    )
    with pytest.raises(Rejected) as caught:
        await client.withdraw_local_entity(make_request(), QUESTIONNAIRE)
    assert caught.value.permanent and caught.value.reason is Reason.TRAVEL_RULE
    assert "Questionnaire must not be blank" in str(caught.value)
    assert "Taro" not in str(caught.value)  # the questionnaire never reaches the message


@pytest.mark.parametrize(
    "body",
    [
        {"accepted": True, "info": "no trId"},
        {"trId": 5, "info": "no flag"},
        {"trId": "5", "accepted": True},
        {"trId": 0, "accepted": True},
    ],
)
async def test_an_unusable_success_body_is_an_unknown_outcome(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    body: dict[str, object],
) -> None:
    router.post(LOCAL_APPLY).mock(return_value=httpx.Response(200, json=body))
    with pytest.raises(OutcomeUnknown) as caught:
        await client.withdraw_local_entity(make_request(), QUESTIONNAIRE, timestamp_ms=TS)
    assert caught.value.withdraw_order_id == "intent-42_a" and caught.value.timestamp_ms == TS


@pytest.mark.parametrize(
    ("response", "error", "reason"),
    [
        (httpx.Response(503, json={"code": -1001, "msg": "x"}), OutcomeUnknown, None),
        (httpx.Response(429, json={"code": -1003, "msg": "x"}), NotSent, Reason.RATE_LIMITED),
        (httpx.Response(400, json={"code": -4026, "msg": "x"}), Rejected, Reason.BALANCE),
        (httpx.Response(400, json={"code": -4104, "msg": "x"}), Rejected, Reason.TRAVEL_RULE),
        (httpx.Response(400, json={"code": -9999, "msg": "x"}), OutcomeUnknown, None),
    ],
)
async def test_errors_are_classified_as_for_withdraw(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    response: httpx.Response,
    error: type[Exception],
    reason: Reason | None,
) -> None:
    route = router.post(LOCAL_APPLY).mock(return_value=response)
    with pytest.raises(error) as caught:
        await client.withdraw_local_entity(make_request(), QUESTIONNAIRE, timestamp_ms=TS)
    assert route.call_count == 1  # never retried
    if reason is not None:
        assert getattr(caught.value, "reason", None) is reason


async def test_a_lost_connection_is_an_unknown_outcome(
    router: respx.MockRouter, client: BinanceClient, make_request: Callable[..., WithdrawRequest]
) -> None:
    router.post(LOCAL_APPLY).mock(side_effect=httpx.ReadError("reset"))
    with pytest.raises(OutcomeUnknown):
        await client.withdraw_local_entity(make_request(), QUESTIONNAIRE, timestamp_ms=TS)


@pytest.mark.parametrize(
    "questionnaire",
    [{}, {"a": 1.5}, {"a": Decimal("1")}, {"a": None}, {"": 1}, {"a": [1]}],
)
async def test_a_malformed_questionnaire_is_refused_before_sending(
    router: respx.MockRouter,
    client: BinanceClient,
    make_request: Callable[..., WithdrawRequest],
    questionnaire: dict[str, object],
) -> None:
    route = router.post(LOCAL_APPLY).mock(return_value=ACCEPTED)
    with pytest.raises(ValueError, match="questionnaire"):
        await client.withdraw_local_entity(make_request(), questionnaire)
    assert route.call_count == 0


async def test_the_apply_weighs_600_on_its_own_uid_pool(
    router: respx.MockRouter, client: BinanceClient, make_request: Callable[..., WithdrawRequest]
) -> None:
    router.post(LOCAL_APPLY).mock(return_value=ACCEPTED)
    await client.withdraw_local_entity(make_request(), QUESTIONNAIRE, timestamp_ms=TS)
    assert client.rate_limiter.used_weight()[f"sapi-uid:{LOCAL_APPLY}"] == 600


async def test_both_applies_share_the_one_per_second_pace(
    router: respx.MockRouter,
    make_client: Callable[..., BinanceClient],
    make_request: Callable[..., WithdrawRequest],
    wire: Any,
) -> None:
    """The pace is per account, whichever endpoint: a local apply right after a capital
    one waits for the next slot."""
    clock = {"now": 1000.0}

    def monotonic() -> float:
        return clock["now"]

    async def sleep(seconds: float) -> None:
        clock["now"] += seconds
        await anyio.lowlevel.checkpoint()

    client = make_client(withdraw_rate=1.0, monotonic=monotonic, sleep=sleep)
    router.post(wire.apply_path).mock(return_value=httpx.Response(200, json={"id": "abc"}))
    router.post(LOCAL_APPLY).mock(return_value=ACCEPTED)
    await client.withdraw(make_request(), timestamp_ms=TS)
    before = clock["now"]
    await client.withdraw_local_entity(make_request(), QUESTIONNAIRE, timestamp_ms=TS)
    assert clock["now"] - before >= 1.0


@pytest.mark.parametrize(("code", "expected"), [("JP", "JP"), ("NIL", None), ("nil", None)])
async def test_requirement_is_the_country_code_or_none(
    router: respx.MockRouter, client: BinanceClient, code: str, expected: str | None
) -> None:
    router.get(REQUIREMENTS).mock(
        return_value=httpx.Response(200, json={"questionnaireCountryCode": code})
    )
    assert await client.travel_rule_requirement() == expected


async def test_a_requirement_without_its_field_is_invalid(
    router: respx.MockRouter, client: BinanceClient
) -> None:
    router.get(REQUIREMENTS).mock(return_value=httpx.Response(200, json={"entity": "JP"}))
    with pytest.raises(NotSent, match="questionnaireCountryCode"):
        await client.travel_rule_requirement()


async def test_history_is_signed_filtered_and_parsed_to_decimals(
    router: respx.MockRouter, client: BinanceClient, wire: Any
) -> None:
    row = {
        "id": "b6ae22b3aa844210a7041aee7589627c",
        "trId": 1234456,
        "amount": "8.91000000",
        "transactionFee": "0.004",
        "coin": "USDT",
        "withdrawalStatus": 6,
        "travelRuleStatus": 0,
        "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
        "txId": "0xb5ef",
        "applyTime": "2019-10-12 11:12:02",
        "network": "ETH",
        "transferType": 0,
        "withdrawOrderId": "WITHDRAWtest123",
        "info": "",
        "confirmNo": 3,
        "walletType": 1,
        "txKey": "",
        "questionnaire": {"isAddressOwner": 1},
        "completeTime": "2023-03-23 16:52:41",
    }
    numeric = {"trId": 99, "amount": 0.1, "coin": "BTC", "travelRuleStatus": 1, "address": "x"}
    route = router.get(LOCAL_HISTORY).mock(return_value=httpx.Response(200, json=[row]))
    [record] = await client.local_entity_history(tr_ids=[1234456, 7], travel_rule_status=0)
    params = wire.params(route.calls.last.request)
    assert params["trId"] == "1234456,7" and params["travelRuleStatus"] == "0"
    payload, signature = wire.split_signature(route.calls.last.request)
    assert signature == wire.hmac_of(payload)
    assert record.amount == Decimal("8.91000000") and record.fee == Decimal("0.004")
    assert (record.tr_id, record.withdrawal_status) == (1234456, 6)
    assert record.travel_rule_status == TravelRuleStatus.COMPLETED
    assert record.questionnaire is not None and "questionnaire" not in repr(record)
    route.mock(return_value=httpx.Response(200, json=[numeric]))
    [record] = await client.local_entity_history()
    assert record.amount == Decimal("0.1")  # a JSON number is read exactly, never as a float
    route.mock(return_value=httpx.Response(200, json=[numeric | {"amount": "1,5"}]))
    with pytest.raises(NotSent, match=r"\[0\]\.amount"):
        await client.local_entity_history()


async def test_history_without_api_only_fields_keeps_them_none(
    router: respx.MockRouter, client: BinanceClient
) -> None:
    row = {"trId": 5, "amount": "1", "coin": "BTC", "travelRuleStatus": 2, "address": "a"}
    router.get(LOCAL_HISTORY).mock(return_value=httpx.Response(200, json=[row]))
    [record] = await client.local_entity_history()
    assert record.id is None and record.fee is None and record.withdrawal_status is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tr_ids": []}, "tr_ids"),
        ({"tr_ids": [0]}, "tr_ids"),
        ({"travel_rule_status": 3}, "travel_rule_status"),
        ({"limit": 1001}, "limit"),
    ],
)
async def test_history_filters_breaking_the_rules_are_refused(
    client: BinanceClient, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await client.local_entity_history(**kwargs)


async def test_lists_parse(router: respx.MockRouter, client: BinanceClient, wire: Any) -> None:
    router.get("/sapi/v1/localentity/vasp").mock(
        return_value=httpx.Response(
            200,
            json=[
                {"vaspName": "Binance", "vaspCode": "BINANCE", "identifier": "BINANCE"},
                {"vaspName": "HashKeyGlobal", "vaspCode": "NVBH3Z_nNEHjvqbUfkaL"},
            ],
        )
    )
    country = {
        "countryCode": "au",
        "countryName": "Australia",
        "blockType": "supported",
        "depositAllowed": True,
        "withdrawalAllowed": True,
        "hasRegionRestrictions": True,
    }
    router.get("/sapi/v1/localentity/country/list").mock(
        return_value=httpx.Response(200, json={"countries": [country], "lastUpdated": 1})
    )
    region = {
        "regionName": "New South Wales",
        "blockType": "supported",
        "depositAllowed": True,
        "withdrawalAllowed": False,
    }
    regions = router.get("/sapi/v1/localentity/region/list").mock(
        return_value=httpx.Response(200, json={"countryCode": "au", "regions": [region]})
    )
    vasps = await client.vasps()
    assert [v.identifier for v in vasps] == ["BINANCE", None]
    [au] = await client.countries()
    assert au.code == "au" and au.has_region_restrictions
    [nsw] = await client.regions("AU")
    assert nsw.name == "New South Wales" and not nsw.withdrawal_allowed
    assert wire.params(regions.calls.last.request)["countryCode"] == "au"
