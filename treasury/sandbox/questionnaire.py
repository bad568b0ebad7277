"""The withdraw questionnaires of two travel-rule local entities, checked as Binance's page
"Withdraw Questionnaire Contents (for existing local entities)" tables them (reference §11).

Two entities, deliberately different:

* **Japan** (``JP``): ``isAddressOwner`` 1 self / 2 other; for another beneficiary
  ``bnfType`` 0/1 and ``kanjiName``, ``kanaName``, ``latinName``; ``country`` and ``city``
  always; ``sendTo`` **1 a VASP / 2 an unhosted wallet**; for a VASP ``vasp`` (an
  ``identifier`` of the VASP list) and ``vaspCountry``; ``vaspRegion`` when ``vaspCountry``
  is ``cn`` (``notNortheasternProvinces`` or ``other``) or ``ua`` (``other``);
  ``txnPurpose`` 1..7, where 3 (cross-border trade) is refused for Binance Japan;
  ``isAttested`` true.
* **EU** (Poland ``PL``, France ``FR``: one questionnaire): ``isAddressOwner`` 1/2; for
  another beneficiary ``bnfType`` 0 (``bnfFirstName``, ``bnfLastName``, ``country``) or 1
  (``bnfCorpName``, ``bnfCorpCountry``); ``sendTo`` **1 a private wallet / 2 another VASP**
  (the reverse of Japan's); for a VASP ``vasp`` (an identifier, or ``others`` with
  ``vaspName``); ``declaration`` true. No kana/kanji, no city, no purpose.

Choices where Binance is silent, each the stricter one ([INFERENCE]): integer fields
must be JSON integers (not ``"1"``), booleans JSON booleans; country codes two lower-case
letters; a field the entity does not define is refused (it is most likely a questionnaire
meant for another entity); ``isAttested``/``declaration`` false is refused. Messages name
the field. ``questionnaire-requirements`` answers the account's country code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

# The account's entity (questionnaire-requirements' questionnaireCountryCode) → questionnaire
ENTITY_OF_COUNTRY: Mapping[str, str] = {"JP": "JP", "PL": "EU", "FR": "EU"}
LOCAL_ENTITIES = tuple(ENTITY_OF_COUNTRY)

BLANK = "Questionnaire must not be blank"  # Binance's text (travel-rule withdraw page)
NOT_VALID = "Questionnaire format not valid."  # Binance's text (same page)

_COUNTRY = re.compile(r"[a-z]{2}")
_OTHERS = "others"
_MAX_TEXT = 200  # [INFERENCE] names and cities; Binance publishes no length


class QuestionnaireRefused(ValueError):
    """The questionnaire does not pass; ``info`` is the text Binance's answer carries."""

    def __init__(self, info: str) -> None:
        super().__init__(info)
        self.info = info


@dataclass(frozen=True)
class _Doc:
    """One parsed questionnaire, read field by field with the field's name in each error."""

    data: Mapping[str, object]

    def bad(self, field: str, problem: str) -> QuestionnaireRefused:
        return QuestionnaireRefused(f"{NOT_VALID} {field}: {problem}")

    def has(self, field: str) -> bool:
        return self.data.get(field) is not None

    def integer(self, field: str, allowed: Collection[int]) -> int:
        value = self.data.get(field)
        if value is None:
            raise self.bad(field, "is required")
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise self.bad(field, f"must be one of {sorted(allowed)}")
        return value

    def text(self, field: str) -> str:
        value = self.data.get(field)
        if value is None or value == "":
            raise self.bad(field, "is required")
        if not isinstance(value, str) or not value.strip():
            raise self.bad(field, "must be a non-empty string")
        if len(value) > _MAX_TEXT:
            raise self.bad(field, f"is longer than {_MAX_TEXT} characters")
        return value

    def country(self, field: str) -> str:
        value = self.text(field)
        if not _COUNTRY.fullmatch(value):
            raise self.bad(field, "must be an ISO 3166 two-letter code in lower case")
        return value

    def attested(self, field: str) -> None:
        value = self.data.get(field)
        if value is None:
            raise self.bad(field, "is required")
        if value is not True:
            raise self.bad(field, "must be true")

    def vasp(self, field: str, identifiers: Collection[str], *, others: bool) -> str:
        value = self.text(field)
        if value == _OTHERS and others:
            return value
        if value not in identifiers:
            raise self.bad(field, "is not an identifier of the VASP list")
        return value


def _japan(q: _Doc, identifiers: Collection[str]) -> set[str]:
    owner = q.integer("isAddressOwner", (1, 2))
    used = {"isAddressOwner", "country", "city", "sendTo", "txnPurpose", "isAttested"}
    if owner == 2:
        q.integer("bnfType", (0, 1))
        for name in ("kanjiName", "kanaName", "latinName"):
            q.text(name)
        used |= {"bnfType", "kanjiName", "kanaName", "latinName"}
    q.country("country")
    q.text("city")
    if q.integer("sendTo", (1, 2)) == 1:  # 1: a crypto-asset service provider
        q.vasp("vasp", identifiers, others=False)
        vasp_country = q.country("vaspCountry")
        used |= {"vasp", "vaspCountry"}
        if vasp_country == "cn":
            if q.text("vaspRegion") not in ("notNortheasternProvinces", "other"):
                raise q.bad("vaspRegion", "must be notNortheasternProvinces or other for cn")
            used.add("vaspRegion")
        elif vasp_country == "ua":
            if q.text("vaspRegion") != "other":
                raise q.bad("vaspRegion", "must be other for ua")
            used.add("vaspRegion")
    if q.integer("txnPurpose", range(1, 8)) == 3:
        raise q.bad("txnPurpose", "3 (cross border trade) is prohibited for Binance Japan")
    q.attested("isAttested")
    return used


def _eu(q: _Doc, identifiers: Collection[str]) -> set[str]:
    owner = q.integer("isAddressOwner", (1, 2))
    used = {"isAddressOwner", "sendTo", "declaration"}
    if owner == 2:
        if q.integer("bnfType", (0, 1)) == 0:
            q.text("bnfFirstName")
            q.text("bnfLastName")
            q.country("country")
            used |= {"bnfType", "bnfFirstName", "bnfLastName", "country"}
        else:
            q.text("bnfCorpName")
            q.country("bnfCorpCountry")
            used |= {"bnfType", "bnfCorpName", "bnfCorpCountry"}
    if q.integer("sendTo", (1, 2)) == 2:  # 2: another VASP (1 is a private wallet)
        used.add("vasp")
        if q.vasp("vasp", identifiers, others=True) == _OTHERS:
            q.text("vaspName")
            used.add("vaspName")
    q.attested("declaration")
    return used


_RULES: Mapping[str, Callable[[_Doc, Collection[str]], set[str]]] = {"JP": _japan, "EU": _eu}


def check(country_code: str, raw: str | None, vasp_identifiers: Collection[str]) -> str:
    """Check the ``questionnaire`` parameter of an account under ``country_code``.

    Returns:
        The questionnaire as received (the history echoes it).

    Raises:
        QuestionnaireRefused: blank, not a JSON object, or a field that breaks the rules.
    """
    if raw is None or not raw.strip():
        raise QuestionnaireRefused(BLANK)
    try:
        data = json.loads(raw)
    except ValueError:
        raise QuestionnaireRefused(NOT_VALID) from None
    if not isinstance(data, dict):
        raise QuestionnaireRefused(NOT_VALID)
    doc = _Doc(data)
    used = _RULES[ENTITY_OF_COUNTRY[country_code]](doc, vasp_identifiers)
    extra = sorted(k for k in data if k not in used and data[k] is not None)
    if extra:
        raise doc.bad(extra[0], f"is not a field of the {country_code} questionnaire")
    return raw
