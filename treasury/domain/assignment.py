"""Which live member of a fleet of ``treasury run`` processes should hold which account.

Pure: the same inputs give every member the same answer. The answer is only a wish:
the sender lease stays the one arbiter of who sends (a member that wants an account
still has to take its lease, and a member that no longer wants one releases it).

Rendezvous (highest-random-weight) hashing, with bounded loads and stickiness:

1. every member may hold at most ``ceil(accounts / members)`` accounts (the cap);
2. an account whose lease is held by a live member stays with it, up to the cap (the
   holder keeps the ones it weighs highest): a member that joins takes only the overflow,
   a member that leaves gives up only its own;
3. every other account goes, strongest preference first, to the member of highest
   weight that serves it and has room (if none has room: to the highest-weighted member
   that serves it).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping


def weight(account: str, member: str) -> int:
    """The rendezvous weight of ``(account, member)``: 64 bits of a SHA-256."""
    digest = hashlib.sha256(f"{account}\x00{member}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def ranked(account: str, members: Collection[str]) -> list[str]:
    """``members`` by their weight for ``account``, highest first (ties: by name)."""
    return sorted(members, key=lambda m: (-weight(account, m), m))


def assign(
    accounts: Mapping[str, Collection[str]],
    holders: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The member each account should be held by.

    Args:
        accounts: each account, with the live members that serve it (an account no live
            member serves is left out of the answer).
        holders: the account's current live lease holder, where there is one.
    """
    holders = holders or {}
    members = {m for served in accounts.values() for m in served}
    if not members:
        return {}
    servable = [a for a, served in accounts.items() if served]
    cap = math.ceil(len(servable) / len(members))
    load = dict.fromkeys(members, 0)
    result: dict[str, str] = {}
    # 2. the holders keep what they hold, up to the cap, highest weight first
    kept = sorted(
        (
            (-weight(a, holders[a]), a)
            for a in servable
            if holders.get(a) in accounts[a]  # a live member that serves it
        ),
    )
    for _neg, account in kept:
        holder = holders[account]
        if load[holder] < cap:
            result[account] = holder
            load[holder] += 1
    # 3. the rest, strongest first preference first
    rest = sorted(
        (a for a in servable if a not in result),
        key=lambda a: (-max(weight(a, m) for m in accounts[a]), a),
    )
    for account in rest:
        order = ranked(account, accounts[account])
        chosen = next((m for m in order if load[m] < cap), order[0])
        result[account] = chosen
        load[chosen] += 1
    return result
