"""The travel rule: the questionnaire a withdrawal from an account under a Binance local
entity carries (``POST /sapi/v1/localentity/withdraw/apply``), checked before any call.

Each modelled entity's questionnaire is data (``SCHEMAS``): its fields in the order the
exchange documents them, their type, allowed values, and when each is required. A field
that is required only under a condition (``when``) is also *allowed* only then: a
first-party questionnaire carrying a beneficiary's names is refused, so no personal data
travels where the exchange does not ask for it.

Where the answers come from (``questionnaire_for``): an intent's own questionnaire, when
it has one, *replaces* the profile of its address-book entry entirely (no merge: what is
sent is exactly one document an operator or a bot wrote, validated as a whole); without
one, the entry's profile is the questionnaire. A profile records the entity it was written
for, so an account moved to another entity cannot send answers to the wrong form.

Names, cities and VASP identifiers are personal or identifying: ``redacted`` keeps only
the coded answers (who owns the address, individual or business, where it goes, the
purpose, the attestation, country codes) for logs, and masks everything else.

Sources: Binance, "Withdraw Questionnaire Contents (for existing local entities)",
sections Japan and EU (Poland, France). The appendix's name restrictions were not
available when this was written; ``LATIN_NAME`` is this service's conservative reading
(Latin letters and the punctuation of names, no digits), refused locally rather than by
the exchange.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from treasury.domain.errors import InvalidField


class Entity(StrEnum):
    """A Binance local entity whose withdrawal questionnaire is modelled here."""

    JP = "JP"  # Binance Japan
    EU = "EU"  # the EU entities (Poland, France): one questionnaire for all


# What Binance's questionnaire-requirements answers (the questionnaire's country code)
# for the entities modelled here: Poland and France share the EU questionnaire.
EXCHANGE_CODES: Mapping[str, Entity] = {"JP": Entity.JP, "PL": Entity.EU, "FR": Entity.EU}


def entity_of_exchange_code(code: str) -> Entity | None:
    """The modelled entity whose questionnaire an account the exchange reports under
    ``code`` needs; ``None`` for an entity not modelled here."""
    return EXCHANGE_CODES.get(code.strip().upper())


def travel_rule_mismatch(detected: str | None, configured: str | None) -> str | None:
    """Why the setting and the exchange disagree about an account's local entity, or
    ``None`` when they agree (or the setting is absent: the exchange's answer stands).
    A profile is checked against the configured entity's questionnaire: a wrong one
    would have been checked against the wrong form."""
    if configured is None:
        return None
    if detected is None:
        return (
            f"the setting says local entity {configured}, but the exchange needs no "
            "questionnaire for this account"
        )
    entity = entity_of_exchange_code(detected)
    if entity is None or entity.value != configured:
        expected = "an entity not modelled here" if entity is None else entity.value
        return (
            f"the exchange says the account is under {detected} ({expected}), but the "
            f"setting says {configured}: fix TREASURY_LOCAL_ENTITY (or the account's "
            "_LOCAL_ENTITY variable)"
        )
    return None


def parse_entity(value: object, *, field_name: str = "local_entity") -> Entity:
    """``JP`` or ``EU`` (any case).

    Raises:
        InvalidField: ``field_name``, naming the entities that are modelled.
    """
    text = str(value).strip().upper() if isinstance(value, str) else ""
    try:
        return Entity(text)
    except ValueError:
        known = ", ".join(e.value for e in Entity)
        raise InvalidField(
            field_name, f"{value!r} is not a modelled local entity (use one of: {known})"
        ) from None


Kind = Literal["int", "str", "bool"]
Format = Literal["text", "country", "latin_name"]


@dataclass(frozen=True)
class Field:
    """One answer of a questionnaire."""

    name: str
    kind: Kind
    # the values an int answer may take, with what each means (for errors and the README)
    choices: Mapping[int, str] | None = None
    # required, and allowed, only when the answer named here has one of these values
    when: tuple[str, frozenset[object]] | None = None
    format: Format = "text"
    personal: bool = False  # masked by ``redacted``
    must_be_true: bool = False  # an attestation: false is never accepted
    # values the exchange is documented to reject, and why (refused here, at no call)
    refused: Mapping[object, str] = field(default_factory=dict)
    # allowed values, per value of another answer (vaspRegion by vaspCountry)
    values_by: tuple[str, Mapping[str, frozenset[str]]] | None = None


# the regions the exchange accepts for a VASP in these countries (Japan's note 3)
_JP_REGIONS = ("vaspCountry", {"cn": frozenset({"notNortheasternProvinces", "other"}),
                               "ua": frozenset({"other"})})  # fmt: skip

SCHEMAS: Mapping[Entity, tuple[Field, ...]] = {
    Entity.JP: (
        Field("isAddressOwner", "int", {1: "send to myself", 2: "send to another beneficiary"}),
        Field(
            "bnfType",
            "int",
            {0: "individual", 1: "corporate/entity"},
            when=("isAddressOwner", frozenset({2})),
        ),
        Field("kanjiName", "str", when=("isAddressOwner", frozenset({2})), personal=True),
        Field("kanaName", "str", when=("isAddressOwner", frozenset({2})), personal=True),
        Field(
            "latinName",
            "str",
            when=("isAddressOwner", frozenset({2})),
            format="latin_name",
            personal=True,
        ),
        Field("country", "str", format="country"),
        Field("city", "str", personal=True),
        Field("sendTo", "int", {1: "crypto-asset service provider", 2: "unhosted wallet"}),
        Field("vasp", "str", when=("sendTo", frozenset({1})), personal=True),
        Field("vaspCountry", "str", when=("sendTo", frozenset({1})), format="country"),
        Field(
            "vaspRegion",
            "str",
            when=("vaspCountry", frozenset({"cn", "ua"})),
            values_by=_JP_REGIONS,
        ),
        Field(
            "txnPurpose",
            "int",
            {
                1: "purchase of goods within Japan",
                2: "inheritance, gift or living expenses",
                3: "cross-border trade",
                4: "investment",
                5: "use of services provided by the beneficiary VASP",
                6: "loan repayment",
                7: "gifts and donations",
            },
            refused={
                3: "Binance Japan rejects payments for import or intermediate trade "
                "(cross-border trade, 3)"
            },
        ),
        Field("isAttested", "bool", must_be_true=True),
    ),
    Entity.EU: (
        Field("isAddressOwner", "int", {1: "send to myself", 2: "send to another beneficiary"}),
        Field(
            "bnfType",
            "int",
            {0: "individual", 1: "corporate/entity"},
            when=("isAddressOwner", frozenset({2})),
        ),
        Field(
            "bnfFirstName",
            "str",
            when=("bnfType", frozenset({0})),
            format="latin_name",
            personal=True,
        ),
        Field(
            "bnfLastName",
            "str",
            when=("bnfType", frozenset({0})),
            format="latin_name",
            personal=True,
        ),
        Field("country", "str", when=("bnfType", frozenset({0})), format="country"),
        Field("bnfCorpName", "str", when=("bnfType", frozenset({1})), personal=True),
        Field("bnfCorpCountry", "str", when=("bnfType", frozenset({1})), format="country"),
        Field("sendTo", "int", {1: "private wallet", 2: "another VASP"}),
        Field("vasp", "str", when=("sendTo", frozenset({2})), personal=True),
        Field("vaspName", "str", when=("vasp", frozenset({"others"})), personal=True),
        Field("declaration", "bool", must_be_true=True),
    ),
}

MAX_TEXT = 256
COUNTRY = re.compile(r"[a-z]{2}")
# Latin letters (accented ones too), and the space, hyphen, apostrophe, period and comma
# names are written with; a letter first; no digits, no other symbol
LATIN_NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[ '\-.,])*")
MASK = "<redacted>"


def _shown(value: object) -> str:
    """A value for an error message: never a personal field's value (the caller decides)."""
    return json.dumps(value, ensure_ascii=False)


def _is_latin(text: str) -> bool:
    return all(
        not c.isalpha() or unicodedata.name(c, "").startswith("LATIN ") for c in text
    ) and bool(LATIN_NAME.fullmatch(text))


def _check_type(path: str, spec: Field, value: object) -> object:
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidField(path, "must be true or false (a JSON boolean)")
        if spec.must_be_true and value is not True:
            raise InvalidField(path, "must be true: the exchange refuses any withdrawal without it")
        return value
    if spec.kind == "int":
        # JSON true/false are ints to Python; "1" is text: both are refused
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidField(path, "must be a whole number (a JSON number, not text)")
        if spec.choices is not None and value not in spec.choices:
            allowed = ", ".join(f"{k} ({v})" for k, v in spec.choices.items())
            raise InvalidField(path, f"{value} is not one of: {allowed}")
        return value
    if not isinstance(value, str):
        raise InvalidField(path, "must be text (a JSON string)")
    text = value.strip()
    what = "it" if spec.personal else _shown(value)
    if not text:
        raise InvalidField(path, "must not be empty")
    if len(text) > MAX_TEXT:
        raise InvalidField(path, f"is longer than {MAX_TEXT} characters")
    if not text.isprintable():
        raise InvalidField(path, "must contain printable characters only")
    if spec.format == "country":
        if not COUNTRY.fullmatch(text):
            raise InvalidField(
                path, f"{what} is not an ISO 3166 two-letter country code in lower case (e.g. jp)"
            )
    elif spec.format == "latin_name":
        if not _is_latin(text):
            raise InvalidField(
                path,
                "must be written in Latin letters (spaces, hyphens, apostrophes, periods "
                "and commas allowed; no digits or other symbols)",
            )
        if "  " in text:
            raise InvalidField(path, "must not contain consecutive spaces")
    return text


def validate_questionnaire(
    entity: Entity, answers: object, *, where: str = "questionnaire"
) -> dict[str, Any]:
    """The answers, checked against ``entity``'s questionnaire and normalized (strings
    stripped; keys in the documented order).

    Raises:
        InvalidField: the first problem, named by its path (``questionnaire.latinName``):
            not an object, an unknown field, a field missing where it is required or given
            where it does not apply, a wrong type, a value outside the allowed ones, a
            country code not in lower-case ISO 3166 form, an attestation that is not true,
            a name breaking the name rule. A personal value is never quoted.
    """
    if not isinstance(answers, Mapping):
        raise InvalidField(where, "must be a JSON object of the questionnaire's answers")
    schema = SCHEMAS[entity]
    names = {f.name for f in schema}
    unknown = sorted(str(k) for k in answers if k not in names)
    if unknown:
        raise InvalidField(
            f"{where}.{unknown[0]}",
            f"is not a field of the {entity.value} questionnaire "
            f"(its fields: {', '.join(f.name for f in schema)})",
        )
    result: dict[str, Any] = {}
    for spec in schema:
        path = f"{where}.{spec.name}"
        present = spec.name in answers and answers[spec.name] is not None
        if spec.when is not None:
            key, values = spec.when
            applies = result.get(key) in values
            condition = f"{key} is {' or '.join(_shown(v) for v in sorted(values, key=str))}"
            if not applies:
                if present:
                    raise InvalidField(path, f"is used only when {condition} (remove it)")
                continue
            if not present:
                raise InvalidField(path, f"missing (required when {condition})")
        elif not present:
            raise InvalidField(path, "missing (required)")
        value = _check_type(path, spec, answers[spec.name])
        if value in spec.refused:
            raise InvalidField(path, spec.refused[value])
        if spec.values_by is not None:
            key, by = spec.values_by
            allowed = by.get(str(result.get(key)))
            if allowed is not None and value not in allowed:
                raise InvalidField(
                    path,
                    f"{_shown(value)} is not accepted when {key} is {_shown(result.get(key))} "
                    f"(use one of: {', '.join(sorted(allowed))})",
                )
        result[spec.name] = value
    return result


# ---- the profile of an address-book entry -------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What an address-book entry carries for the travel rule: the entity it was written
    for and the questionnaire's answers for that destination (validated)."""

    entity: Entity
    answers: Mapping[str, Any]

    def to_json(self) -> str:
        """Canonical JSON, as stored in ``whitelist_entries.travel_rule_profile``."""
        return canonical({"entity": self.entity.value, "questionnaire": dict(self.answers)})

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: names a version of the profile in the audit
        trail without copying a word of it."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def make_profile(entity: Entity, answers: object, *, where: str = "travel_rule_profile") -> Profile:
    """A profile for ``entity`` from an operator's answers (a file's JSON object: the
    answers themselves, or ``{"entity": ..., "questionnaire": {...}}`` as stored).

    Raises:
        InvalidField: as ``validate_questionnaire``, or an ``entity`` that is not the one
            the account is under.
    """
    if isinstance(answers, Mapping) and "questionnaire" in answers:
        written_for = parse_entity(answers.get("entity"), field_name=f"{where}.entity")
        if written_for is not entity:
            raise InvalidField(
                f"{where}.entity",
                f"the profile is for {written_for.value}, the account is under {entity.value}",
            )
        extra = sorted(str(k) for k in answers if k not in ("entity", "questionnaire"))
        if extra:
            raise InvalidField(f"{where}.{extra[0]}", "unknown field (entity, questionnaire)")
        answers = answers["questionnaire"]
        where = f"{where}.questionnaire"
    return Profile(entity, validate_questionnaire(entity, answers, where=where))


def profile_from_json(text: str) -> Profile:
    """The stored profile (``Profile.to_json``) read back, validated again: a row
    changed by raw SQL cannot slip an unchecked answer through.

    Raises:
        InvalidField: ``travel_rule_profile``, not JSON or not a valid profile.
    """
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidField("travel_rule_profile", "is not JSON") from None
    if not isinstance(data, Mapping) or "questionnaire" not in data:
        raise InvalidField("travel_rule_profile", "must hold an entity and a questionnaire")
    entity = parse_entity(data.get("entity"), field_name="travel_rule_profile.entity")
    return make_profile(entity, data)


def questionnaire_for(
    entity: Entity, profile: Profile | None, override: object = None
) -> dict[str, Any]:
    """The questionnaire to send for one withdrawal from an account under ``entity``.

    ``override`` (the intent's own questionnaire) *replaces* the entry's profile entirely
    and is validated the same way; without it, the profile is used, and it must have been
    written for ``entity``.

    Raises:
        InvalidField: ``questionnaire`` missing (no override and no profile), a profile
            for another entity, or any problem ``validate_questionnaire`` names.
    """
    if override is not None:
        return validate_questionnaire(entity, override, where="questionnaire")
    if profile is None:
        raise InvalidField(
            "questionnaire",
            f"missing: the account is under the {entity.value} local entity; give the "
            "address-book entry a travel-rule profile (treasury whitelist profile) or the "
            "intent a questionnaire of its own",
        )
    if profile.entity is not entity:
        raise InvalidField(
            "travel_rule_profile.entity",
            f"the entry's profile is for {profile.entity.value}, the account is under "
            f"{entity.value}: write the profile again for {entity.value}",
        )
    return validate_questionnaire(entity, profile.answers, where="travel_rule_profile")


def profile_change_note(profile: Profile | None) -> str:
    """What the audit trail says of a profile change, appended to the operator's reason:
    the entity and the sha256 of the canonical JSON, never a word of the answers."""
    if profile is None:
        return "travel-rule profile removed"
    return f"travel-rule profile {profile.entity.value} sha256:{profile.fingerprint}"


MAX_QUESTIONNAIRE = 16384  # characters of canonical JSON: far above any modelled form


def intent_questionnaire(value: object, entity: Entity | None) -> str | None:
    """An intent's own questionnaire as stored (canonical JSON), from a mapping or JSON
    text: validated against ``entity``'s form when the account's entity is known, else
    only required to be a JSON object (the worker validates it before any call).

    Raises:
        InvalidField: ``questionnaire``, or the path of the answer at fault.
    """
    if value is None:
        return None
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidField("questionnaire", "is not JSON") from None
    if entity is not None:
        answers: Mapping[str, Any] = validate_questionnaire(entity, value)
    elif isinstance(value, Mapping):
        answers = value
    else:
        raise InvalidField("questionnaire", "must be a JSON object of the questionnaire's answers")
    try:
        text = canonical(dict(answers))
    except (TypeError, ValueError):
        raise InvalidField("questionnaire", "holds a value JSON cannot carry") from None
    if len(text) > MAX_QUESTIONNAIRE:
        raise InvalidField("questionnaire", f"is longer than {MAX_QUESTIONNAIRE} characters")
    return text


def questionnaire_of(
    entity: Entity, profile_json: str | None, questionnaire_json: str | None
) -> dict[str, Any]:
    """``questionnaire_for`` over what the ledger holds: the entry's
    ``travel_rule_profile`` and the intent's ``questionnaire`` (both JSON or NULL). What
    the worker calls before ``localentity/withdraw/apply``: an error costs no call.

    Raises:
        InvalidField: as ``questionnaire_for``; a stored value that is not JSON.
    """
    override: object = None
    if questionnaire_json is not None:
        try:
            override = json.loads(questionnaire_json)
        except ValueError:
            raise InvalidField("questionnaire", "is not JSON") from None
    profile = None if profile_json is None else profile_from_json(profile_json)
    return questionnaire_for(entity, profile, override)


# ---- logs ------------------------------------------------------------------------------

# the answers every modelled questionnaire codes (numbers, booleans, country codes): safe
# to log. Anything else (names, cities, VASP identifiers, an unknown key) is masked.
_CODED: frozenset[str] = frozenset(
    spec.name for schema in SCHEMAS.values() for spec in schema if not spec.personal
)


def redacted(questionnaire: object) -> dict[str, Any] | str:
    """``questionnaire`` (answers, or a stored profile) for a log line: the coded answers
    as they are, every other value replaced by ``<redacted>``. Anything that is not an
    object is masked whole."""
    if isinstance(questionnaire, Profile):
        return {
            "entity": questionnaire.entity.value,
            "questionnaire": redacted(questionnaire.answers),
        }
    if isinstance(questionnaire, str):
        try:
            questionnaire = json.loads(questionnaire)
        except ValueError:
            return MASK
    if not isinstance(questionnaire, Mapping):
        return MASK
    if set(questionnaire) <= {"entity", "questionnaire"} and "questionnaire" in questionnaire:
        entity = questionnaire.get("entity")
        return {
            "entity": entity if isinstance(entity, str) and entity in Entity.__members__ else MASK,
            "questionnaire": redacted(questionnaire["questionnaire"]),
        }
    return {
        str(k): v
        if str(k) in _CODED and (v is None or isinstance(v, bool | int) or _short_code(v))
        else MASK
        for k, v in questionnaire.items()
    }


def _short_code(value: object) -> bool:
    """A country code or a region keyword, not free text."""
    return isinstance(value, str) and bool(re.fullmatch(r"[A-Za-z]{2,24}", value))


def personal_values(questionnaire: Mapping[str, Any]) -> list[str]:
    """The answers ``redacted`` would mask, as text, longest first: what must be cut out of
    any message that might quote them (an exchange's refusal, for one)."""
    shown = redacted(questionnaire)
    if not isinstance(shown, Mapping):
        return []
    values = {
        str(v)
        for k, v in questionnaire.items()
        if shown.get(str(k)) == MASK and v is not None and len(str(v)) >= 2
    }
    return sorted(values, key=len, reverse=True)
