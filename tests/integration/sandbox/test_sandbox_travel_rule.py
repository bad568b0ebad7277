"""Accounts under a travel-rule local entity (Japan, EU): over real HTTP, signed by hand.

Account ``default`` is held under Binance Japan, ``treasury-sub`` under Poland (the EU
questionnaire), ``plain`` under none.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sandbox_testkit import BASE_CONFIG, START_MS, Client, default_accounts, error_code, usdt_trx

from treasury.sandbox import ManualClock, RunningSandbox, parse_config, running_sandbox

LOCAL_APPLY = "/sapi/v1/localentity/withdraw/apply"
HISTORY_V1 = "/sapi/v1/localentity/withdraw/history"
HISTORY_V2 = "/sapi/v2/localentity/withdraw/history"
REQUIREMENTS = "/sapi/v1/localentity/questionnaire-requirements"
FAULTS = "/_sandbox/faults"

JP_SELF: dict[str, object] = {
    "isAddressOwner": 1,
    "country": "jp",
    "city": "Tokyo",
    "sendTo": 2,
    "txnPurpose": 4,
    "isAttested": True,
}
JP_OTHER_VASP: dict[str, object] = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "kanjiName": "山田太郎",
    "kanaName": "ヤマダタロウ",
    "latinName": "Taro Yamada",
    "country": "jp",
    "city": "Osaka",
    "sendTo": 1,
    "vasp": "BINANCE",
    "vaspCountry": "jp",
    "txnPurpose": 5,
    "isAttested": True,
}
EU_SELF: dict[str, object] = {"isAddressOwner": 1, "sendTo": 1, "declaration": True}
EU_OTHER_PERSON_OTHERS_VASP: dict[str, object] = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "bnfFirstName": "Anna",
    "bnfLastName": "Nowak",
    "country": "pl",
    "sendTo": 2,
    "vasp": "others",
    "vaspName": "Some Exchange",
    "declaration": True,
}
EU_OTHER_CORP: dict[str, object] = {
    "isAddressOwner": 2,
    "bnfType": 1,
    "bnfCorpName": "Acme SAS",
    "bnfCorpCountry": "fr",
    "sendTo": 2,
    "vasp": "hashkeyglobal",
    "declaration": True,
}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    accounts = default_accounts()
    accounts[0]["local_entity"] = "JP"
    accounts[1]["local_entity"] = "PL"
    plain = copy.deepcopy(accounts[1])
    plain.pop("local_entity")
    plain["deposit_addresses"] = []
    plain.update(name="plain", api_key="plain-api-key", hmac_secret="plain-secret", uid=42424242)
    return {"accounts": [*accounts, plain]}


@pytest.fixture
def eu(http: httpx.AsyncClient, clock: ManualClock) -> Client:
    return Client(http, clock.now_ms, key="treasury-sub-api-key", secret="treasury-sub-api-secret")


@pytest.fixture
def plain(http: httpx.AsyncClient, clock: ManualClock) -> Client:
    return Client(http, clock.now_ms, key="plain-api-key", secret="plain-secret")


async def local_apply(
    client: Client, questionnaire: object, amount: str = "25", **params: object
) -> httpx.Response:
    text = questionnaire if isinstance(questionnaire, str) else json.dumps(questionnaire)
    return await client.post(LOCAL_APPLY, {**usdt_trx(amount, **params), "questionnaire": text})


async def local_history(client: Client, path: str = HISTORY_V2, **params: object) -> list[Any]:
    response = await client.get(path, params)
    assert response.status_code == 200, response.text
    rows: list[Any] = response.json()
    return rows


async def faults(http: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await http.post(FAULTS, json=body)
    assert response.status_code == 200, response.text


# -- detection and the capital endpoint ----------------------------------------------------


async def test_requirements_name_the_entity_or_nil(
    client: Client, eu: Client, plain: Client
) -> None:
    answers = [(await c.get(REQUIREMENTS)).json() for c in (client, eu, plain)]
    assert answers == [
        {"questionnaireCountryCode": "JP"},
        {"questionnaireCountryCode": "PL"},
        {"questionnaireCountryCode": "NIL"},
    ]


async def test_capital_apply_is_refused_with_4104_and_books_nothing(
    client: Client, plain: Client, sandbox: RunningSandbox
) -> None:
    response = await client.apply(**usdt_trx(withdrawOrderId="capital-jp"))
    assert response.status_code == 400
    assert error_code(response) == -4104
    assert "travel rule" in response.json()["msg"]
    assert sandbox.ledger().withdrawals == []
    [call] = sandbox.ledger().apply_calls_for("capital-jp")
    assert call.error_code == -4104 and call.endpoint == "capital"
    # an account under no local entity withdraws through capital apply as before
    assert (await plain.apply(**usdt_trx(withdrawOrderId="capital-plain"))).status_code == 200


# -- valid questionnaires: booked once, like a capital apply ----------------------------------


@pytest.mark.parametrize("questionnaire", [JP_SELF, JP_OTHER_VASP], ids=["self", "other-vasp"])
async def test_japan_accepts_a_valid_questionnaire_and_books_one_withdrawal(
    client: Client, sandbox: RunningSandbox, questionnaire: dict[str, object]
) -> None:
    before = await client.free("USDT")
    response = await local_apply(client, questionnaire, withdrawOrderId="jp-ok", walletType=0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] is True and isinstance(body["trId"], int) and body["info"]
    assert response.headers["X-SAPI-USED-UID-WEIGHT-1M"] == "600"
    [withdrawal] = sandbox.ledger().withdrawals
    assert withdrawal.tr_id == body["trId"] and withdrawal.withdraw_order_id == "jp-ok"
    assert await client.free("USDT") == before - Decimal(25)
    [call] = sandbox.ledger().apply_calls_for("jp-ok")
    assert call.endpoint == "localentity" and call.accepted


@pytest.mark.parametrize(
    "questionnaire",
    [EU_SELF, EU_OTHER_PERSON_OTHERS_VASP, EU_OTHER_CORP],
    ids=["self", "person-others", "corporate-vasp"],
)
async def test_eu_accepts_a_valid_questionnaire_and_books_one_withdrawal(
    eu: Client, sandbox: RunningSandbox, questionnaire: dict[str, object]
) -> None:
    response = await local_apply(eu, questionnaire, withdrawOrderId="eu-ok")
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] is True
    [withdrawal] = sandbox.ledger().withdrawals
    assert withdrawal.account == "treasury-sub" and withdrawal.tr_id == response.json()["trId"]


# -- invalid questionnaires: refused, naming the field, nothing booked -------------------------


def _without(base: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in base.items() if k != key}


JP_BAD: list[tuple[dict[str, object], str]] = [
    *[(_without(JP_SELF, k), k) for k in JP_SELF],
    *[
        (_without(JP_OTHER_VASP, k), k)
        for k in ("bnfType", "kanjiName", "kanaName", "latinName", "vasp", "vaspCountry")
    ],
    (JP_SELF | {"isAddressOwner": 3}, "isAddressOwner"),
    (JP_SELF | {"isAddressOwner": "1"}, "isAddressOwner"),
    (JP_SELF | {"country": "JP"}, "country"),
    (JP_SELF | {"sendTo": 0}, "sendTo"),
    (JP_SELF | {"txnPurpose": 8}, "txnPurpose"),
    (JP_SELF | {"txnPurpose": 3}, "txnPurpose"),
    (JP_SELF | {"isAttested": False}, "isAttested"),
    (JP_SELF | {"bnfFirstName": "Anna"}, "bnfFirstName"),
    (JP_OTHER_VASP | {"vasp": "NOT-A-VASP"}, "vasp"),
    (JP_OTHER_VASP | {"vaspCountry": "cn"}, "vaspRegion"),
    (JP_OTHER_VASP | {"vaspCountry": "ua", "vaspRegion": "crimea"}, "vaspRegion"),
]
EU_BAD: list[tuple[dict[str, object], str]] = [
    *[(_without(EU_SELF, k), k) for k in EU_SELF],
    *[(_without(EU_OTHER_PERSON_OTHERS_VASP, k), k) for k in EU_OTHER_PERSON_OTHERS_VASP],
    *[
        (_without(EU_OTHER_CORP, k), k)
        for k in ("bnfCorpName", "bnfCorpCountry", "vasp", "declaration")
    ],
    (EU_SELF | {"declaration": False}, "declaration"),
    (EU_SELF | {"kanjiName": "山田"}, "kanjiName"),
    (EU_OTHER_CORP | {"vasp": "BINANCE-OLD"}, "vasp"),
    (EU_OTHER_PERSON_OTHERS_VASP | {"bnfType": 2}, "bnfType"),
    (JP_SELF, "vasp"),  # Japan's sendTo 2 (unhosted) is the EU's "another VASP"
]


def _ids(cases: list[tuple[dict[str, object], str]]) -> list[str]:
    return [f"{i}-{field}" for i, (_, field) in enumerate(cases)]


@pytest.mark.parametrize(("questionnaire", "field"), JP_BAD, ids=_ids(JP_BAD))
async def test_japan_refuses_a_bad_questionnaire_naming_the_field(
    client: Client, sandbox: RunningSandbox, questionnaire: dict[str, object], field: str
) -> None:
    await _refused(client, sandbox, questionnaire, field)


@pytest.mark.parametrize(("questionnaire", "field"), EU_BAD, ids=_ids(EU_BAD))
async def test_eu_refuses_a_bad_questionnaire_naming_the_field(
    eu: Client, sandbox: RunningSandbox, questionnaire: dict[str, object], field: str
) -> None:
    await _refused(eu, sandbox, questionnaire, field)


@pytest.mark.parametrize(
    ("raw", "info"),
    [("", "Questionnaire must not be blank"), ("{not json", "Questionnaire format not valid.")],
)
async def test_blank_or_malformed_questionnaires_get_binances_texts(
    client: Client, sandbox: RunningSandbox, raw: str, info: str
) -> None:
    response = await local_apply(client, raw, withdrawOrderId="raw")
    assert response.status_code == 200
    assert response.json() == {"accepted": False, "info": info}
    assert sandbox.ledger().withdrawals == []


async def test_an_account_under_no_entity_is_refused_by_the_local_endpoint(
    plain: Client, sandbox: RunningSandbox
) -> None:
    response = await local_apply(plain, EU_SELF, withdrawOrderId="plain-local")
    assert response.json()["accepted"] is False
    assert sandbox.ledger().withdrawals == []


async def _refused(
    client: Client, sandbox: RunningSandbox, questionnaire: dict[str, object], field: str
) -> None:
    before = await client.free("USDT")
    response = await local_apply(client, questionnaire, withdrawOrderId="bad")
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] is False and "trId" not in body
    assert field in body["info"], body["info"]
    assert sandbox.ledger().withdrawals == []
    assert await client.free("USDT") == before
    [call] = sandbox.ledger().apply_calls_for("bad")
    assert call.refused == body["info"] and not call.accepted


async def test_the_usual_apply_checks_still_run(client: Client, sandbox: RunningSandbox) -> None:
    response = await local_apply(client, JP_SELF, amount="99999999", withdrawOrderId="too-much")
    assert response.status_code == 400
    assert error_code(response) in (-4023, -4026)
    assert sandbox.ledger().withdrawals == []


# -- histories ----------------------------------------------------------------------------


async def test_both_histories_show_it_and_the_local_one_mirrors_the_status(
    client: Client, clock: ManualClock
) -> None:
    tr_id = (await local_apply(client, JP_SELF, withdrawOrderId="h1")).json()["trId"]
    for path in (HISTORY_V1, HISTORY_V2):
        [row] = await local_history(client, path, trId=tr_id)
        assert row["trId"] == tr_id and row["withdrawOrderId"] == "h1"
        assert row["withdrawalStatus"] == 4 and row["travelRuleStatus"] == 0
        assert json.loads(row["questionnaire"]) == JP_SELF
        assert Decimal(row["amount"]) + Decimal(row["transactionFee"]) == Decimal(25)
    [capital] = await client.history(withdrawOrderId="h1")
    assert capital["status"] == 4
    clock.advance_s(5)
    [row] = await local_history(client, withdrawOrderId="h1")
    [capital] = await client.history(withdrawOrderId="h1")
    assert row["withdrawalStatus"] == capital["status"] == 6
    assert row["id"] == capital["id"] and row["txId"] == capital["txId"]
    assert await local_history(client, travelRuleStatus=1) == []


@pytest.mark.parametrize("only_in", ["capital", "localentity"])
async def test_a_withdrawal_may_show_in_only_one_history(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox, only_in: str
) -> None:
    await faults(http, {"history_only_in": {"history": only_in, "next": 1}})
    await local_apply(client, JP_SELF, withdrawOrderId="one-sided")
    in_capital = await client.history(withdrawOrderId="one-sided")
    in_local = await local_history(client, withdrawOrderId="one-sided")
    assert (len(in_capital), len(in_local)) == ((1, 0) if only_in == "capital" else (0, 1))
    [withdrawal] = sandbox.ledger().withdrawals
    assert withdrawal.only_in == only_in


async def test_a_failed_travel_rule_check_cancels_and_refunds(
    client: Client, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    before = await client.free("USDT")
    await faults(http, {"travel_rule": {"hold_s": 60, "then": "fail", "next": 1}})
    await local_apply(client, JP_SELF, withdrawOrderId="tr-fail")
    [row] = await local_history(client, withdrawOrderId="tr-fail")
    assert (row["travelRuleStatus"], row["withdrawalStatus"]) == (1, 2)
    assert await client.free("USDT") == before - Decimal(25)
    clock.advance_s(61)
    [row] = await local_history(client, withdrawOrderId="tr-fail")
    assert (row["travelRuleStatus"], row["withdrawalStatus"]) == (2, 1)
    assert row["txId"] == "" and "travel rule" in row["info"]
    assert await client.free("USDT") == before
    [capital] = await client.history(withdrawOrderId="tr-fail")
    assert capital["status"] == 1


async def test_a_passing_travel_rule_check_holds_then_proceeds(
    client: Client, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    await faults(http, {"travel_rule": {"hold_s": 30, "next": 1}})
    await local_apply(client, JP_SELF, withdrawOrderId="tr-hold")
    [row] = await local_history(client, travelRuleStatus=1)
    assert row["withdrawalStatus"] == 2
    clock.advance_s(40)
    [row] = await local_history(client, withdrawOrderId="tr-hold")
    assert (row["travelRuleStatus"], row["withdrawalStatus"]) == (0, 6)


# -- lists ----------------------------------------------------------------------------------


async def test_vasp_country_and_region_lists(client: Client) -> None:
    vasps = (await client.get("/sapi/v1/localentity/vasp")).json()
    assert {"vaspName": "Binance", "vaspCode": "BINANCE", "identifier": "BINANCE"} in vasps
    countries = (await client.get("/sapi/v1/localentity/country/list")).json()
    codes = {c["countryCode"] for c in countries["countries"]}
    assert {"jp", "pl", "fr"} <= codes and countries["lastUpdated"] > 0
    regions = (await client.get("/sapi/v1/localentity/region/list", {"countryCode": "au"})).json()
    assert regions["countryCode"] == "au" and regions["regions"][0]["regionName"]
    none = (await client.get("/sapi/v1/localentity/region/list", {"countryCode": "jp"})).json()
    assert none == {"countryCode": "jp", "regions": [], "lastUpdated": 0}
    missing = await client.get("/sapi/v1/localentity/region/list")
    assert error_code(missing) == -1102


# -- faults ----------------------------------------------------------------------------------


async def test_a_lost_answer_after_booking_is_still_booked_once(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await faults(http, {"drop_after_accept": 1})
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await local_apply(client, JP_SELF, withdrawOrderId="lost")
    assert len(sandbox.ledger().withdrawals_for("lost")) == 1
    [call] = sandbox.ledger().apply_calls_for("lost")
    assert call.fault == "drop_after_accept" and call.endpoint == "localentity"
    assert len(await local_history(client, withdrawOrderId="lost")) == 1
    assert len(await client.history(withdrawOrderId="lost")) == 1


async def test_a_5xx_before_processing_books_nothing(
    client: Client, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await faults(http, {"error_5xx_before": 1})
    response = await local_apply(client, JP_SELF, withdrawOrderId="early")
    assert response.status_code == 503
    assert sandbox.ledger().withdrawals == []
    [call] = sandbox.ledger().apply_calls_for("early")
    assert call.fault == "error_5xx_before" and call.endpoint == "localentity"


async def test_history_unavailable_covers_the_local_histories(
    client: Client, http: httpx.AsyncClient
) -> None:
    await faults(http, {"history_unavailable": True})
    for path in (HISTORY_V1, HISTORY_V2):
        response = await client.get(path)
        assert response.status_code == 503 and error_code(response) == -1001


# -- restart --------------------------------------------------------------------------------


async def test_the_travel_rule_outcome_survives_a_restart(
    tmp_path: Path, config_overrides: dict[str, Any]
) -> None:
    """The fault's decision is journaled with the withdrawal: the replay needs no fault."""
    state = tmp_path / "sandbox.jsonl"
    clock = ManualClock(START_MS)
    config = parse_config({**BASE_CONFIG, **config_overrides})
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        await faults(http, {"travel_rule": {"hold_s": 60, "then": "fail"}})
        client = Client(http, clock.now_ms)
        tr_id = (await local_apply(client, JP_SELF, withdrawOrderId="kept")).json()["trId"]
    async with (
        running_sandbox(config=config, clock=clock, state_path=state) as sb,
        httpx.AsyncClient(base_url=sb.url) as http,
    ):
        client = Client(http, clock.now_ms)
        clock.advance_s(61)
        [row] = await local_history(client, trId=tr_id)
        assert (row["travelRuleStatus"], row["withdrawalStatus"]) == (2, 1)
        assert json.loads(row["questionnaire"]) == JP_SELF
