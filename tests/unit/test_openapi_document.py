"""``docs/openapi.json`` is the app's own OpenAPI document: a route or model changed
without regenerating it fails here (regenerate: see the README, HTTP API for bots)."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import MagicMock

from treasury.http.app import Deps, create_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_the_apps_document() -> None:
    app = create_app(Deps(ledger=MagicMock(), cooling_s=0))
    assert json.loads(DOC.read_text()) == app.openapi(), (
        "docs/openapi.json drifted from the app: regenerate it"
    )


def test_the_document_says_amounts_are_strings() -> None:
    doc = json.loads(DOC.read_text())
    assert doc["openapi"].startswith("3.1")
    amount = doc["components"]["schemas"]["IntentCreate"]["properties"]["amount"]
    assert amount["type"] == "string"
