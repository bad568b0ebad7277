"""One withdrawal policy, in the ledger: versions applied, approved, and read by everyone.

The policy is a list of versions in ``policy_versions``; the one in force is the newest
activated version. The daemon, every standby, ``treasury check`` and ``treasury approve``
read that same version, so no two of them decide under different rules (a policy read
from each process's own file could differ, or be missing in the CLI's environment).

A change (``apply``) is validated, diffed against the version in force and refused when it
changes nothing. While the version in force says ``policy_changes_need_approval = true``
the new version waits (``pending``) until someone other than its applier approves it.
``TREASURY_POLICY_FILE`` only seeds an empty ledger (``adopt_file``); once a policy is in
the ledger, a file that differs is reported, never applied silently.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import structlog

from treasury.domain import approval_proof as proof
from treasury.domain import policy as p
from treasury.domain.decisions import Hold, Verdict
from treasury.domain.intent import Intent
from treasury.domain.policy_text import PolicyError, canonical, diff, digest, parse_policy
from treasury.ports.store import (
    ConcurrentChange,
    Ledger,
    OperatorRegistry,
    PolicyStore,
    PolicyVersion,
)
from treasury.services.admin import Refused

log = structlog.get_logger("treasury.policy")
REREAD_S = 2.0  # how stale the daemon's idea of the version in force may be


@dataclass(frozen=True)
class PolicySnapshot:
    """The policy of one version, as every decision under it reads it.

    ``policy`` is ``None`` when the stored text cannot be parsed (written by raw SQL):
    then every intent is held, because a policy nobody can read must not open the gates.
    """

    version: int
    policy: p.Policy | None
    problem: str = ""

    @classmethod
    def of(cls, row: PolicyVersion) -> PolicySnapshot:
        try:
            return cls(row.version, parse_policy(row.document, source=f"policy v{row.version}"))
        except PolicyError as exc:
            return cls(row.version, None, str(exc))

    @property
    def label(self) -> str:
        return f"policy v{self.version}"

    def decide(
        self, intent: Intent, coin_used: Decimal, dest_used: Decimal, approvals: int
    ) -> Verdict:
        if self.policy is None:
            return Hold(
                f"the {self.label} in force cannot be read ({self.problem}); apply a new one"
            )
        return p.decide(
            coin=intent.coin,
            amount=intent.amount,
            policy=self.policy,
            usage=p.Usage(coin_24h=coin_used, destination_24h=dest_used),
            approvals=approvals,
        )

    def approvals_needed(self, intent: Intent) -> int:
        """Approvals ``intent`` needs under this version (0 for an unreadable policy: it
        holds every intent anyway)."""
        if self.policy is None:
            return 0
        return p.approvals_needed(intent.amount, self.policy.for_coin(intent.coin))

    @property
    def approval_expiry_hours(self) -> int | None:
        return None if self.policy is None else self.policy.approval_expiry_hours

    @property
    def address_book_approvals_required(self) -> int:
        """Second persons an entry added by hand needs (0 for an unreadable policy: it
        holds every intent anyway)."""
        return 0 if self.policy is None else self.policy.address_book_approvals_required


@dataclass(frozen=True)
class InForce:
    """The version in force, and the newer activated versions passed over because their
    approval does not prove who approved (version, why)."""

    row: PolicyVersion | None
    passed_over: tuple[tuple[int, str], ...] = ()


async def read_in_force(
    store: PolicyStore, operators: OperatorRegistry | None, *, newest: int | None = None
) -> InForce:
    """The newest activated version whose approval proves who approved
    (``approval_proof.policy_approval_problem``), from ``newest`` (the newest activated
    version, read if not given) down. The database checks who may activate a version but
    cannot check a signature, so every reader does: a version activated by a raw UPDATE
    with a forged or by-name approval, once operators are registered, is not in force
    for anyone. Without ``operators`` approvals are not checked (tests of other things)."""
    if newest is None:
        newest = await store.current_version()
    people = [] if operators is None else await operators.all()
    passed: list[tuple[int, str]] = []
    for version in range(newest or 0, 0, -1):
        row = await store.get(version)
        if row.activated_at is None:
            continue
        problem = (
            None
            if operators is None
            else proof.policy_approval_problem(
                version=row.version,
                sha256=row.sha256,
                applied_by=row.applied_by,
                approved_by=row.approved_by,
                signature=row.approval_signature,
                activated_at=row.activated_at,
                operators=people,
            )
        )
        if problem is None:
            return InForce(row, tuple(passed))
        passed.append((version, problem))
    return InForce(None, tuple(passed))


async def in_force_version(ledger: Ledger) -> PolicyVersion | None:
    """The version in force, read once, as every reader must read it (``read_in_force``:
    not merely the newest activated row); ``None`` while the ledger holds no policy."""
    return (await read_in_force(ledger.policies, ledger.operators)).row


async def in_force(ledger: Ledger) -> PolicySnapshot | None:
    """The snapshot of the version in force, read once (a command's reading: the daemon
    keeps a ``PolicySource``)."""
    row = await in_force_version(ledger)
    return None if row is None else PolicySnapshot.of(row)


class PolicySource:
    """The version in force, re-read from the ledger at most every ``reread_s``.

    The poll is one indexed query (the newest activated version); the document is read
    and parsed only when that number changes. ``reread_now`` (SIGHUP) makes the next call
    ask the ledger at once."""

    def __init__(
        self,
        store: PolicyStore,
        *,
        operators: OperatorRegistry | None = None,
        reread_s: float = REREAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.operators = operators
        self.reread_s = reread_s
        self._clock = clock
        self._snapshot: PolicySnapshot | None = None
        self._newest: int | None = None
        self._next = -math.inf

    async def current(self) -> PolicySnapshot | None:
        now = self._clock()
        if now < self._next:
            return self._snapshot
        newest = await self.store.current_version()
        if newest != self._newest:
            known = None if self._snapshot is None else self._snapshot.version
            reading = await read_in_force(self.store, self.operators, newest=newest)
            for version, problem in reading.passed_over:
                log.error("policy.approval_invalid", version=version, problem=problem)
            self._newest = newest
            self._snapshot = None if reading.row is None else PolicySnapshot.of(reading.row)
            if self._snapshot is not None:
                log.info("policy.in_force", version=self._snapshot.version, previous=known)
                if self._snapshot.policy is None:
                    log.error("policy.unreadable", error=self._snapshot.problem)
        self._next = now + self.reread_s
        return self._snapshot

    def reread_now(self) -> None:
        self._next = -math.inf


# ---- changes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """A new version as it would be written, and what it changes from the one in force."""

    policy: p.Policy
    document: str
    sha256: str
    current: PolicyVersion | None
    latest: int | None  # the newest version (perhaps pending), which the write must follow
    changes: list[str]

    @property
    def needs_approval(self) -> bool:
        """The version in force says a change waits for a second person."""
        return self.current is not None and self.current.changes_need_approval


async def propose(ledger: Ledger, text: str, *, source: str) -> Proposal:
    """Parse ``text`` and compare it with the version in force.

    Raises:
        PolicyError: the text is not a valid policy (the message names the key path).
        Refused: it changes nothing, or repeats the pending version.
    """
    policy = parse_policy(text, source=source)
    document = canonical(policy)
    current = await in_force_version(ledger)
    newest = await ledger.policies.history(limit=1)
    latest = newest[0] if newest else None
    if current is not None and current.document == document:
        raise Refused(f"{source} is the policy in force (v{current.version}): nothing to apply")
    if latest is not None and latest.status == "pending" and latest.document == document:
        raise Refused(
            f"{source} is the same as version {latest.version}, pending: approve it with "
            f"treasury policy approve {latest.version} --as NAME"
        )
    old = None if current is None else parse_policy(current.document, source="in force")
    return Proposal(
        policy=policy,
        document=document,
        sha256=digest(document),
        current=current,
        latest=None if latest is None else latest.version,
        changes=diff(old, policy),
    )


async def apply(ledger: Ledger, proposal: Proposal, *, actor: str, reason: str) -> PolicyVersion:
    """Write ``proposal`` as the next version: in force at once, or pending when the
    version in force needs a second person. Audited (``policy_applied``) in the same
    transaction.

    Raises:
        Refused: no reason given, or the policy changed since ``propose`` (look again).
    """
    reason = reason.strip()
    if not reason:
        raise Refused("--reason: say why the policy changes (it is recorded)")
    pending = proposal.needs_approval
    since = "nothing" if proposal.current is None else f"v{proposal.current.version}"
    state = "pending a second person's approval" if pending else "in force"
    audit = f"{state}; {reason}; changes from {since}: " + "; ".join(proposal.changes)
    try:
        return await ledger.policies.add(
            proposal.document,
            sha256=proposal.sha256,
            changes_need_approval=proposal.policy.policy_changes_need_approval,
            applied_by=actor,
            reason=reason,
            activate=not pending,
            after=proposal.latest,
            audit=audit,
        )
    except ConcurrentChange as exc:
        raise Refused(f"{exc}: nothing was written") from None


async def apply_text(
    ledger: Ledger, text: str, *, actor: str, reason: str, source: str = "<policy>"
) -> PolicyVersion:
    """``propose`` then ``apply``, with no one to show the diff to (scripts, tests)."""
    return await apply(
        ledger, await propose(ledger, text, source=source), actor=actor, reason=reason
    )


async def approve(
    ledger: Ledger, version: int, *, actor: str, signature: str | None = None
) -> PolicyVersion:
    """Put the pending ``version`` in force, as a second person. Audited
    (``policy_approved``). Once operators are registered the approval must be ``actor``'s
    signature over ``approval_proof.policy_statement`` of the version: every reader
    checks it, so one that does not prove who approved would put nothing in force.

    Raises:
        Refused: it is not the newest pending version, ``actor`` applied it, or the
            approval does not prove who approved.
        NotFound: there is no such version.
    """
    row = await ledger.policies.get(version)
    if row.status != "pending":
        raise Refused(
            f"policy version {version} is {row.status}: only the newest version, while "
            "pending, can be approved"
        )
    if _person(row.applied_by) == _person(actor):
        raise Refused(
            f"{_person_shown(actor)} applied policy version {version} and cannot approve it too"
        )
    problem = proof.policy_approval_problem(
        version=row.version,
        sha256=row.sha256,
        applied_by=row.applied_by,
        approved_by=actor,
        signature=signature,
        activated_at=None,
        operators=await ledger.operators.all(),
    )
    if problem is not None:
        raise Refused(
            f"policy version {version} not approved: {problem} (operators are registered, "
            "so approvals are signed: treasury policy approve VERSION --key FILE)"
        )
    try:
        return await ledger.policies.activate(
            version,
            signature=signature,
            approved_by=actor,
            audit=f"approved by {_person_shown(actor)}; in force from now (applied by "
            f"{row.applied_by}: {row.reason})",
        )
    except ConcurrentChange as exc:
        raise Refused(f"{exc}: nothing was written") from None


def _person(actor: str) -> str:
    return _person_shown(actor).casefold()


def _person_shown(actor: str) -> str:
    return actor.strip().removeprefix("cli:")


# ---- the file setting ---------------------------------------------------------------------


async def adopt_file(ledger: Ledger, text: str, *, path: str) -> str | None:
    """``TREASURY_POLICY_FILE`` at start: the first version of an empty ledger, applied by
    ``file:<path>``; else a warning when it differs from the version in force (the
    ledger's version stays: a change goes through ``treasury policy apply``).

    Raises:
        PolicyError: the ledger has no policy and the file is not a valid one (start-up
            stops: a typo must not leave the gates open).
    """
    if await ledger.policies.current() is None and not await ledger.policies.history(limit=1):
        policy = parse_policy(text, source=path)
        proposal = Proposal(
            policy=policy,
            document=canonical(policy),
            sha256=digest(canonical(policy)),
            current=None,
            latest=None,
            changes=diff(None, policy),
        )
        try:
            row = await apply(
                ledger,
                proposal,
                actor=f"file:{path}",
                reason="loaded from TREASURY_POLICY_FILE: the ledger had no policy",
            )
            log.info("policy.adopted_file", path=path, version=row.version)
            return None
        except Refused:  # another process seeded it first: compare with theirs
            pass
    return await file_drift(ledger, text, path=path)


async def file_drift(ledger: Ledger, text: str, *, path: str) -> str | None:
    """Why the file at ``path`` is not the policy in force, or ``None`` if it is."""
    current = await in_force_version(ledger)
    if current is None:
        return f"TREASURY_POLICY_FILE {path} is not in the ledger yet: `treasury run` loads it"
    try:
        policy = parse_policy(text, source=path)
    except PolicyError as exc:
        return (
            f"TREASURY_POLICY_FILE is not a valid policy ({exc}); the ledger's "
            f"v{current.version} stays in force"
        )
    if canonical(policy) == current.document:
        return None
    in_force = PolicySnapshot.of(current).policy
    changes = "; ".join(diff(in_force, policy))
    return (
        f"TREASURY_POLICY_FILE {path} differs from the policy in force (v{current.version}): "
        f"{changes}. The ledger's version stays in force: to change it, run `treasury policy "
        f"apply {path} --as NAME --reason TEXT`"
    )
