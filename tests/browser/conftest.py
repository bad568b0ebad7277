"""Fixtures of the browser suite (helpers in ``browsing.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browsing import new_browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole module."""
    driver = new_browser()
    try:
        yield driver
    finally:
        driver.quit()
