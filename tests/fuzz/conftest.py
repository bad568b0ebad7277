"""Fixtures for the fuzz suite: the in-process sandbox + worker stack of the integration tests.

Loaded from tests/integration/conftest.py by path (the test folders are not packages), so
the fuzz suite runs the very same stack as the integration tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_treasury_integration_fixtures", _PATH)
assert _spec is not None and _spec.loader is not None
_integration = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
if not hasattr(_integration, "stack_factory"):
    _spec.loader.exec_module(_integration)

stack_factory = _integration.stack_factory
