"""Fixtures of the end-to-end suite: which database a test runs on.

These tests start real processes (the sandbox exchange and ``treasury run``) and are
all marked ``slow``; ``pytest -m "not slow"`` leaves them out.
"""

from __future__ import annotations

import os

import pytest
from harness import postgres_base_url, postgres_reachable


def need_postgres() -> None:
    if postgres_reachable():
        return
    msg = (
        f"PostgreSQL not reachable at {postgres_base_url()}; set TREASURY_TEST_POSTGRES_URL "
        "to run the PostgreSQL end-to-end tests"
    )
    if os.environ.get("TREASURY_REQUIRE_POSTGRES") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The database kind: each test using it runs once on SQLite, once on PostgreSQL."""
    if request.param == "postgres":
        need_postgres()
    return str(request.param)


@pytest.fixture
def postgres() -> str:
    need_postgres()
    return "postgres"
