"""The travel-rule questionnaires: every rule refuses with the field named, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from treasury.domain.errors import InvalidField
from treasury.domain.travel_rule import (
    MASK,
    Entity,
    make_profile,
    parse_entity,
    profile_from_json,
    questionnaire_for,
    redacted,
    validate_questionnaire,
)

JP_SELF: dict[str, Any] = {
    "isAddressOwner": 1,
    "country": "jp",
    "city": "Sapporo",
    "sendTo": 2,
    "txnPurpose": 4,
    "isAttested": True,
}
JP_OTHER: dict[str, Any] = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "kanjiName": "山田花子",
    "kanaName": "ヤマダハナコ",
    "latinName": "Hanako Yamada",
    "country": "jp",
    "city": "Kobe",
    "sendTo": 1,
    "vasp": "BINANCE",
    "vaspCountry": "jp",
    "txnPurpose": 5,
    "isAttested": True,
}
EU_SELF: dict[str, Any] = {"isAddressOwner": 1, "sendTo": 1, "declaration": True}
EU_PERSON: dict[str, Any] = {
    "isAddressOwner": 2,
    "bnfType": 0,
    "bnfFirstName": "Zofia",
    "bnfLastName": "Kowalska-Nowak",
    "country": "pl",
    "sendTo": 2,
    "vasp": "others",
    "vaspName": "Some Exchange",
    "declaration": True,
}
EU_CORP: dict[str, Any] = {
    "isAddressOwner": 2,
    "bnfType": 1,
    "bnfCorpName": "Exemple SAS",
    "bnfCorpCountry": "fr",
    "sendTo": 1,
    "declaration": True,
}


def refused(entity: Entity, answers: object) -> InvalidField:
    with pytest.raises(InvalidField) as info:
        validate_questionnaire(entity, answers)
    return info.value


@pytest.mark.parametrize(
    ("entity", "answers"),
    [
        (Entity.JP, JP_SELF),
        (Entity.JP, JP_OTHER),
        (Entity.EU, EU_SELF),
        (Entity.EU, EU_PERSON),
        (Entity.EU, EU_CORP),
    ],
)
def test_complete_questionnaires_pass_unchanged(entity: Entity, answers: dict[str, Any]) -> None:
    assert validate_questionnaire(entity, answers) == answers


def test_strings_are_stripped_and_keys_put_in_the_documented_order() -> None:
    shuffled = dict(reversed(list(JP_SELF.items()))) | {"city": "  Sapporo "}
    result = validate_questionnaire(Entity.JP, shuffled)
    assert result == JP_SELF
    assert list(result) == list(JP_SELF)


def test_not_an_object() -> None:
    assert refused(Entity.JP, [1, 2]).field == "questionnaire"


def test_unknown_field_is_named() -> None:
    err = refused(Entity.EU, EU_SELF | {"latinName": "X"})
    assert err.field == "questionnaire.latinName"
    assert "not a field of the EU questionnaire" in err.problem


@pytest.mark.parametrize("missing", ["isAddressOwner", "country", "city", "sendTo", "txnPurpose"])
def test_jp_missing_required(missing: str) -> None:
    answers = {k: v for k, v in JP_SELF.items() if k != missing}
    err = refused(Entity.JP, answers)
    assert (err.field, err.problem) == (f"questionnaire.{missing}", "missing (required)")


@pytest.mark.parametrize("missing", ["bnfType", "kanjiName", "kanaName", "latinName"])
def test_jp_third_party_needs_the_beneficiary(missing: str) -> None:
    answers = {k: v for k, v in JP_OTHER.items() if k != missing}
    err = refused(Entity.JP, answers)
    assert err.field == f"questionnaire.{missing}"
    assert err.problem == "missing (required when isAddressOwner is 2)"


@pytest.mark.parametrize("missing", ["vasp", "vaspCountry"])
def test_jp_vasp_needed_when_sending_to_a_provider(missing: str) -> None:
    answers = {k: v for k, v in JP_OTHER.items() if k != missing}
    err = refused(Entity.JP, answers)
    assert (err.field, err.problem) == (
        f"questionnaire.{missing}",
        "missing (required when sendTo is 1)",
    )


def test_a_field_that_does_not_apply_is_refused_not_sent() -> None:
    err = refused(Entity.JP, JP_SELF | {"latinName": "Hanako Yamada"})
    assert err.field == "questionnaire.latinName"
    assert "used only when isAddressOwner is 2" in err.problem
    err = refused(Entity.EU, EU_CORP | {"bnfFirstName": "Zofia"})
    assert err.field == "questionnaire.bnfFirstName"


def test_jp_region_required_and_restricted_for_cn_and_ua() -> None:
    to_cn = JP_OTHER | {"vaspCountry": "cn"}
    assert refused(Entity.JP, to_cn).field == "questionnaire.vaspRegion"
    ok = validate_questionnaire(Entity.JP, to_cn | {"vaspRegion": "notNortheasternProvinces"})
    assert ok["vaspRegion"] == "notNortheasternProvinces"
    err = refused(Entity.JP, to_cn | {"vaspRegion": "jilin"})
    assert err.field == "questionnaire.vaspRegion" and "notNortheasternProvinces" in err.problem
    err = refused(Entity.JP, JP_OTHER | {"vaspCountry": "ua", "vaspRegion": "crimea"})
    assert err.field == "questionnaire.vaspRegion"
    assert validate_questionnaire(
        Entity.JP, JP_OTHER | {"vaspCountry": "ua", "vaspRegion": "other"}
    )


def test_jp_cross_border_trade_is_refused_locally() -> None:
    err = refused(Entity.JP, JP_SELF | {"txnPurpose": 3})
    assert err.field == "questionnaire.txnPurpose" and "cross-border trade" in err.problem


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("isAddressOwner", "1", "whole number"),
        ("isAddressOwner", True, "whole number"),
        ("isAddressOwner", 3, "not one of"),
        ("sendTo", 0, "not one of"),
        ("txnPurpose", 8, "not one of"),
        ("txnPurpose", 2.5, "whole number"),
        ("city", 7, "text"),
        ("city", "   ", "empty"),
        ("city", "x" * 257, "longer than"),
        ("city", "Kobe\n", "Kobe"),  # stripped: accepted (checked below)
        ("isAttested", "true", "true or false"),
        ("isAttested", False, "must be true"),
        ("country", "JP", "lower case"),
        ("country", "jpn", "lower case"),
        ("country", "j1", "lower case"),
    ],
)
def test_jp_types_values_and_formats(key: str, value: object, problem: str) -> None:
    answers = JP_SELF | {key: value}
    if key == "city" and value == "Kobe\n":
        assert validate_questionnaire(Entity.JP, answers)["city"] == "Kobe"
        return
    err = refused(Entity.JP, answers)
    assert err.field == f"questionnaire.{key}"
    assert problem in err.problem


@pytest.mark.parametrize(
    "name",
    ["Hanako 2", "山田 Hanako", "Hanako_Yamada", "Hanako@Yamada", "-Hanako", "Hanako  Yamada"],
)
def test_latin_name_rule(name: str) -> None:
    err = refused(Entity.JP, JP_OTHER | {"latinName": name})
    assert err.field == "questionnaire.latinName"


@pytest.mark.parametrize("name", ["Zoë O'Brien-Łukasiewicz", "J. R. Smith, Jr."])
def test_latin_names_with_accents_and_punctuation_pass(name: str) -> None:
    assert validate_questionnaire(Entity.EU, EU_PERSON | {"bnfLastName": name})


def test_eu_conditions() -> None:
    person = {k: v for k, v in EU_PERSON.items() if k != "bnfLastName"}
    assert refused(Entity.EU, person).problem == "missing (required when bnfType is 0)"
    corp = {k: v for k, v in EU_CORP.items() if k != "bnfCorpCountry"}
    err = refused(Entity.EU, corp)
    assert (err.field, err.problem) == (
        "questionnaire.bnfCorpCountry",
        "missing (required when bnfType is 1)",
    )
    no_name = {k: v for k, v in EU_PERSON.items() if k != "vaspName"}
    assert refused(Entity.EU, no_name).problem == 'missing (required when vasp is "others")'
    assert refused(Entity.EU, EU_SELF | {"sendTo": 2}).field == "questionnaire.vasp"
    assert refused(Entity.EU, EU_SELF | {"declaration": False}).field == "questionnaire.declaration"
    err = refused(Entity.EU, EU_CORP | {"bnfCorpCountry": "FR"})
    assert err.field == "questionnaire.bnfCorpCountry"


def test_a_personal_value_is_never_quoted_in_an_error() -> None:
    err = refused(Entity.JP, JP_OTHER | {"latinName": "Hanako 9 Secretname"})
    assert "Secretname" not in str(err)


def test_parse_entity() -> None:
    assert parse_entity("jp") is Entity.JP
    assert parse_entity(" EU ") is Entity.EU
    with pytest.raises(InvalidField, match="local_entity: 'KZ' is not a modelled"):
        parse_entity("KZ")


def test_profile_round_trip_and_fingerprint() -> None:
    profile = make_profile(Entity.JP, JP_OTHER)
    again = profile_from_json(profile.to_json())
    assert again == profile
    assert again.fingerprint == profile.fingerprint
    assert len(profile.fingerprint) == 64
    assert json.loads(profile.to_json()) == {"entity": "JP", "questionnaire": JP_OTHER}
    # the stored form may be given back as a file
    assert make_profile(Entity.JP, json.loads(profile.to_json())) == profile
    other = make_profile(Entity.JP, JP_OTHER | {"city": "Osaka"})
    assert other.fingerprint != profile.fingerprint


def test_profile_errors_name_the_profile_path() -> None:
    with pytest.raises(InvalidField) as info:
        make_profile(Entity.EU, EU_PERSON | {"country": "Poland"})
    assert info.value.field == "travel_rule_profile.country"
    with pytest.raises(InvalidField) as info:
        make_profile(Entity.EU, {"entity": "JP", "questionnaire": JP_SELF})
    assert info.value.field == "travel_rule_profile.entity"
    with pytest.raises(InvalidField, match="travel_rule_profile: is not JSON"):
        profile_from_json("{nope")


def test_questionnaire_for_override_replaces_the_profile() -> None:
    profile = make_profile(Entity.EU, EU_PERSON)
    assert questionnaire_for(Entity.EU, profile) == EU_PERSON
    assert questionnaire_for(Entity.EU, profile, EU_SELF) == EU_SELF
    assert questionnaire_for(Entity.EU, None, EU_CORP) == EU_CORP
    with pytest.raises(InvalidField) as info:  # no merge: an incomplete override fails
        questionnaire_for(Entity.EU, profile, {"sendTo": 1})
    assert info.value.field == "questionnaire.isAddressOwner"


def test_questionnaire_for_refuses_missing_or_foreign_profile() -> None:
    with pytest.raises(InvalidField) as info:
        questionnaire_for(Entity.JP, None)
    assert info.value.field == "questionnaire" and "missing" in info.value.problem
    with pytest.raises(InvalidField) as info:
        questionnaire_for(Entity.JP, make_profile(Entity.EU, EU_SELF))
    assert info.value.field == "travel_rule_profile.entity"


def test_redacted_keeps_codes_and_masks_the_rest() -> None:
    shown = redacted(JP_OTHER)
    assert shown == {
        "isAddressOwner": 2,
        "bnfType": 0,
        "kanjiName": MASK,
        "kanaName": MASK,
        "latinName": MASK,
        "country": "jp",
        "city": MASK,
        "sendTo": 1,
        "vasp": MASK,
        "vaspCountry": "jp",
        "txnPurpose": 5,
        "isAttested": True,
    }
    eu = redacted(EU_PERSON)
    assert isinstance(eu, dict)
    assert {eu["bnfFirstName"], eu["bnfLastName"], eu["vasp"], eu["vaspName"]} == {MASK}
    # an unknown key, free text under a coded key, a non-object: masked
    assert redacted({"nickname": "Hana", "country": "Hanako Yamada"}) == {
        "nickname": MASK,
        "country": MASK,
    }
    assert redacted("not json") == MASK
    assert redacted(["Hanako"]) == MASK


def test_redacted_profile_in_every_form() -> None:
    profile = make_profile(Entity.JP, JP_OTHER)
    for form in (profile, profile.to_json(), json.loads(profile.to_json())):
        text = json.dumps(redacted(form), ensure_ascii=False)
        for personal in ("Hanako", "山田", "ヤマダ", "Kobe", "BINANCE"):
            assert personal not in text
        assert '"entity": "JP"' in text


def test_every_example_profile_in_the_readme_is_valid() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Accounts under a Binance local entity (travel rule)")[1]
    section = section.split("\n## ")[0]
    blocks = [b.split("```")[0] for b in section.split("```json\n")[1:]]
    assert len(blocks) == 5
    entities = []
    for block in blocks:
        answers = json.loads(block)
        entity = Entity.JP if "isAttested" in answers else Entity.EU
        assert validate_questionnaire(entity, answers) == answers
        entities.append((entity, answers["isAddressOwner"]))
    # each entity, first and third party
    assert {(Entity.JP, 1), (Entity.JP, 2), (Entity.EU, 1), (Entity.EU, 2)} <= set(entities)


def test_intent_questionnaire_is_checked_when_the_entity_is_known() -> None:
    from decimal import Decimal

    from treasury.domain.travel_rule import intent_questionnaire, questionnaire_of
    from treasury.domain.validation import validate_new_intent

    assert intent_questionnaire(None, Entity.EU) is None
    stored = intent_questionnaire(json.dumps(EU_SELF), Entity.EU)
    assert stored is not None and json.loads(stored) == EU_SELF
    with pytest.raises(InvalidField, match=r"questionnaire\.declaration"):
        intent_questionnaire(EU_SELF | {"declaration": False}, Entity.EU)
    # entity unknown: only an object is required; the worker checks it before any call
    loose = intent_questionnaire({"anything": 1}, None)
    assert loose == '{"anything":1}'
    with pytest.raises(InvalidField) as info:
        questionnaire_of(Entity.EU, None, loose)
    assert info.value.field == "questionnaire.anything"
    for bad, problem in (
        ("{", "is not JSON"),
        ("[1]", "JSON object"),
        ({"a": Decimal("1")}, "JSON cannot carry"),
        ({"a": "x" * 20000}, "longer than"),
    ):
        with pytest.raises(InvalidField, match=problem):
            intent_questionnaire(bad, None)
    new = validate_new_intent(
        coin="USDT",
        network="TRX",
        address="T1",
        amount="1",
        questionnaire=JP_SELF,
        local_entity=Entity.JP,
    )
    assert new.questionnaire is not None and json.loads(new.questionnaire) == JP_SELF
    with pytest.raises(InvalidField, match=r"questionnaire\.txnPurpose"):
        validate_new_intent(
            coin="USDT",
            network="TRX",
            address="T1",
            amount="1",
            questionnaire=JP_SELF | {"txnPurpose": 3},
            local_entity=Entity.JP,
        )


async def test_the_in_memory_store_keeps_questionnaire_and_profile_like_sql() -> None:
    from treasury.domain.validation import validate_new_intent
    from treasury.ports.store import ConcurrentChange
    from treasury.testing import MemoryLedger

    ledger = MemoryLedger()
    new = validate_new_intent(
        coin="USDT", network="TRX", address="T1", amount="1", questionnaire=EU_SELF
    )
    intent, _ = await ledger.intents.enqueue(new, actor="t")
    assert intent.questionnaire == new.questionnaire
    entry = await ledger.whitelist.add(
        account="default",
        coin="USDT",
        network="TRX",
        address="T1",
        address_tag=None,
        actor="a",
        reason="r",
    )
    profile = make_profile(Entity.EU, EU_SELF).to_json()
    changed = await ledger.whitelist.set_profile(
        entry.id, profile, version=1, actor="b", reason="why"
    )
    assert (changed.version, changed.travel_rule_profile) == (2, profile)
    with pytest.raises(ConcurrentChange):
        await ledger.whitelist.set_profile(entry.id, None, version=1, actor="b", reason="why")
    history = await ledger.whitelist.history(entry_id=entry.id)
    assert [(e.kind, e.version) for e in history] == [("add", 1), ("edit", 2)]


def test_no_repr_of_an_intent_or_entry_carries_the_answers() -> None:
    from treasury.domain.validation import validate_new_intent

    new = validate_new_intent(
        coin="USDT", network="TRX", address="T1", amount="1", questionnaire=JP_OTHER
    )
    assert "Hanako" not in repr(new) and "questionnaire" not in repr(new)


def test_the_cli_json_encoder_redacts_a_whole_dataclass() -> None:
    from treasury.cli.output import to_json
    from treasury.domain.validation import validate_new_intent

    new = validate_new_intent(
        coin="USDT", network="TRX", address="T1", amount="1", questionnaire=JP_OTHER
    )
    text = to_json(new)
    assert "Hanako" not in text and '"txnPurpose": 5' in text
