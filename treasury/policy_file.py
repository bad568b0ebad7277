"""Read the withdrawal policy from a TOML file (``TREASURY_POLICY_FILE``).

The file is only a way to bring a policy into the ledger: the daemon adopts it as the
first version when the ledger has none, and ``treasury policy apply FILE`` makes it a new
version. Parsing, the canonical text and the diff are pure (``treasury.domain.policy_text``);
this module adds the file and its errors (not found, not UTF-8, unreadable).
"""

from __future__ import annotations

from pathlib import Path

from treasury.domain.policy import Policy
from treasury.domain.policy_text import AMOUNT_KEYS, PolicyError, parse_policy

__all__ = ["AMOUNT_KEYS", "PolicyError", "load_policy", "parse_policy", "read_policy_text"]


def read_policy_text(path: Path) -> str:
    """The text of the policy file at ``path``.

    Raises:
        PolicyError: the file cannot be read or is not UTF-8 text.
    """
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(str(path), None, "policy file not found") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise PolicyError(str(path), None, f"cannot read policy file: {exc.strerror}") from None


def load_policy(path: Path) -> Policy:
    """Read and parse the policy file at ``path``.

    Raises:
        PolicyError: the file cannot be read, is not valid TOML or breaks a rule.
    """
    return parse_policy(read_policy_text(path), source=str(path))
