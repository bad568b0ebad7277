"""The operator console's store: single-use login links, sessions, and the reads its pages
make that no other store offers (held intents, approvals, leases, recent alerts, the
activity of the last 24 h).

Secrets (a link's token, a session's cookie value) are made here with ``secrets`` and
returned once; the rows keep their sha256. Making a link, signing in and signing out write
their ``service_events`` row in the same transaction (kinds ``console_login_created``,
``console_signed_in``, ``console_signed_out``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, func, insert, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from treasury.adapters.db.engine import connection, transaction
from treasury.adapters.db.passkeys import PasskeyRepository
from treasury.adapters.db.tables import (
    console_challenges,
    console_logins,
    console_passkey_sessions,
    console_sessions,
    intent_approvals,
    operator_passkeys,
    operators,
    outbox,
    sender_leases,
    service_events,
    service_state,
    whitelist_events,
    withdrawal_intents,
)
from treasury.domain import webauthn as wa
from treasury.domain.console import SESSION_TTL, SETTLE_BUCKETS, Activity, chart_start, sha256_hex
from treasury.ports.clock import utcnow
from treasury.ports.store import NotFound

L, S, T = console_logins, console_sessions, withdrawal_intents
C, PS, P = console_challenges, console_passkey_sessions, operator_passkeys
CHALLENGE_TTL = timedelta(minutes=2)


class LoginRefused(Exception):
    """A login link that cannot be used: unknown, used, expired, or its operator removed."""


@dataclass(frozen=True)
class Login:
    id: int
    operator: str
    expires_at: datetime


class SignInRefused(Exception):
    """A passkey sign-in that is refused; the message names why (never key material)."""


@dataclass(frozen=True)
class PasskeySignIn:
    """What ``navigator.credentials.get`` returned for a sign-in challenge."""

    challenge_id: int
    credential_id: bytes
    client_data_json: bytes
    authenticator_data: bytes
    signature: bytes = field(repr=False)


@dataclass(frozen=True)
class Session:
    operator: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    passkey_id: int | None = None  # opened with this passkey; None: with a login link

    @property
    def opened_with(self) -> str:
        """``passkey`` or ``link``: only a passkey session may act."""
        return "link" if self.passkey_id is None else "passkey"

    def live(self, now: datetime) -> bool:
        return self.ended_at is None and now < self.expires_at


class ConsoleStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # ---- sign-in ---------------------------------------------------------------

    async def create_login(self, operator: str, *, ttl: timedelta, actor: str) -> tuple[str, Login]:
        """A link's token (shown once) for a registered, current operator.

        Raises:
            NotFound: no such operator, or removed.
        """
        token = secrets.token_urlsafe(32)
        now = utcnow()
        async with transaction(self.engine) as conn:
            known = await conn.scalar(
                select(operators.c.name).where(
                    operators.c.name == operator, operators.c.removed_at.is_(None)
                )
            )
            if known is None:
                raise NotFound(
                    f"operator {operator!r} (not registered, or removed): see "
                    "`treasury operator list`"
                )
            login_id = await conn.scalar(
                insert(L)
                .values(
                    token_sha256=sha256_hex(token),
                    operator=operator,
                    created_by=actor,
                    created_at=now,
                    expires_at=now + ttl,
                )
                .returning(L.c.id)
            )
            await conn.execute(
                insert(service_events).values(
                    kind="console_login_created",
                    subject=operator,
                    detail=f"login link {login_id}, valid until {now + ttl:%Y-%m-%d %H:%M:%S} UTC",
                    actor=actor,
                    created_at=now,
                )
            )
        assert login_id is not None
        return token, Login(id=int(login_id), operator=operator, expires_at=now + ttl)

    async def peek_login(self, token: str, *, now: datetime) -> Login:
        """The link's operator if it could be used now (nothing is spent).

        Raises:
            LoginRefused: why it cannot.
        """
        async with connection(self.engine) as conn:
            row = (
                await conn.execute(select(L).where(L.c.token_sha256 == sha256_hex(token)))
            ).first()
        return _usable(row, now)

    async def sign_in(self, token: str, *, now: datetime) -> tuple[str, Session]:
        """Spend the link (once, whoever asks at the same time) and open a session; the
        session's secret (the cookie's value) is returned once.

        Raises:
            LoginRefused: unknown, used, expired, or its operator removed meanwhile.
        """
        secret = secrets.token_urlsafe(32)
        async with transaction(self.engine) as conn:
            row = (
                await conn.execute(
                    select(L).where(L.c.token_sha256 == sha256_hex(token)).with_for_update()
                )
            ).first()
            login = _usable(row, now)
            removed = await conn.scalar(
                select(operators.c.name).where(
                    operators.c.name == login.operator, operators.c.removed_at.is_(None)
                )
            )
            if removed is None:
                raise LoginRefused(f"operator {login.operator} is no longer registered")
            spent = await conn.execute(
                update(L).where(L.c.id == login.id, L.c.used_at.is_(None)).values(used_at=now)
            )
            if not spent.rowcount:
                raise LoginRefused("this login link was used already")
            session = Session(
                operator=login.operator, created_at=now, expires_at=now + SESSION_TTL, ended_at=None
            )
            await conn.execute(
                insert(S).values(
                    session_sha256=sha256_hex(secret),
                    operator=login.operator,
                    login_id=login.id,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
            await conn.execute(
                insert(service_events).values(
                    kind="console_signed_in",
                    subject=login.operator,
                    detail=f"with login link {login.id}; session until "
                    f"{session.expires_at:%Y-%m-%d %H:%M:%S} UTC",
                    actor=f"console:{login.operator}",
                    created_at=now,
                )
            )
        return secret, session

    async def session(self, secret: str) -> Session | None:
        digest = sha256_hex(secret)
        async with connection(self.engine) as conn:
            row = (await conn.execute(select(S).where(S.c.session_sha256 == digest))).first()
            passkey = None
            if row is None:
                passkey = (
                    await conn.execute(select(PS).where(PS.c.session_sha256 == digest))
                ).first()
        found = row or passkey
        if found is None:
            return None
        return Session(
            operator=found.operator,
            created_at=found.created_at,
            expires_at=found.expires_at,
            ended_at=found.ended_at,
            passkey_id=None if passkey is None else passkey.passkey_id,
        )

    async def sign_out(self, secret: str, *, now: datetime) -> bool:
        """End the session; False if it had ended already (or never was)."""
        digest = sha256_hex(secret)
        async with transaction(self.engine) as conn:
            for table in (S, PS):
                row = (
                    await conn.execute(
                        select(table.c.operator).where(
                            table.c.session_sha256 == digest, table.c.ended_at.is_(None)
                        )
                    )
                ).first()
                if row is None:
                    continue
                await conn.execute(
                    update(table)
                    .where(table.c.session_sha256 == digest, table.c.ended_at.is_(None))
                    .values(ended_at=now)
                )
                await conn.execute(
                    insert(service_events).values(
                        kind="console_signed_out",
                        subject=row.operator,
                        detail="signed out",
                        actor=f"console:{row.operator}",
                        created_at=now,
                    )
                )
                return True
        return False

    # ---- passkey sign-in ---------------------------------------------------------

    async def issue_challenge(self, *, now: datetime) -> tuple[int, bytes]:
        """A random, single-use sign-in challenge valid for ``CHALLENGE_TTL``: (id, raw)."""
        raw = secrets.token_bytes(32)
        async with transaction(self.engine) as conn:
            challenge_id = await conn.scalar(
                insert(C)
                .values(challenge=wa.b64url(raw), created_at=now, expires_at=now + CHALLENGE_TTL)
                .returning(C.c.id)
            )
        assert challenge_id is not None
        return int(challenge_id), raw

    async def spend_challenge(self, challenge_id: int, *, now: datetime) -> bytes:
        """Spend the challenge (once, whoever asks at the same time, whether the sign-in
        then succeeds or not) and return it.

        Raises:
            SignInRefused: unknown, used, or expired.
        """
        async with transaction(self.engine) as conn:
            row = (
                await conn.execute(select(C).where(C.c.id == challenge_id).with_for_update())
            ).first()
            if row is None:
                raise SignInRefused("unknown sign-in challenge: reload the page and try again")
            if row.used_at is not None:
                raise SignInRefused(
                    "this sign-in challenge was used already (a replay?): reload the page"
                )
            if now >= row.expires_at:
                raise SignInRefused("the sign-in challenge expired: reload the page")
            spent = await conn.execute(
                update(C).where(C.c.id == challenge_id, C.c.used_at.is_(None)).values(used_at=now)
            )
            if not spent.rowcount:
                raise SignInRefused("this sign-in challenge was used already: reload the page")
        return wa.from_b64url(row.challenge, "challenge")

    async def passkey_sign_in(
        self,
        assertion: PasskeySignIn,
        *,
        challenge: bytes,
        origin: str,
        rp_id: str,
        now: datetime,
    ) -> tuple[str, Session]:
        """Open a session with a passkey: the assertion of a current passkey of a current
        operator verifies over ``challenge`` (spent before, ``spend_challenge``) for
        ``origin`` and ``rp_id``, and its sign count grows (it is then recorded), in one
        transaction with the session and its ``console_signed_in`` event. The session's
        secret (the cookie's value) is returned once.

        Raises:
            SignInRefused: why (unknown or removed passkey, a check that failed, a sign
                count that did not grow).
        """
        secret = secrets.token_urlsafe(32)
        cid = wa.b64url(assertion.credential_id)
        async with transaction(self.engine) as conn:
            row = (
                await conn.execute(
                    select(P)
                    .join(operators, operators.c.name == P.c.operator)
                    .where(
                        P.c.credential_id == cid,
                        P.c.removed_at.is_(None),
                        operators.c.removed_at.is_(None),
                    )
                    .with_for_update(of=P)
                )
            ).first()
            if row is None:
                raise SignInRefused(
                    "that passkey is not registered to a current operator (or was removed)"
                )
            credential = wa.Credential(
                credential_id=assertion.credential_id,
                public_key=base64.b64decode(row.public_key),
                alg=row.alg,
                sign_count=row.sign_count,
                rp_id=row.rp_id,
                origin=row.origin,
            )
            try:
                sign_count = wa.verify_assertion(
                    credential,
                    client_data_json=assertion.client_data_json,
                    authenticator_data=assertion.authenticator_data,
                    signature=assertion.signature,
                    expected_challenge=challenge,
                    origin=origin,
                    rp_id=rp_id,
                )
            except wa.WebAuthnError as exc:
                raise SignInRefused(f"passkey of {row.operator}: {exc.problem}") from None
            if not await PasskeyRepository.advance(conn, assertion.credential_id, sign_count):
                raise SignInRefused(
                    f"passkey of {row.operator}: sign count {sign_count} does not exceed the "
                    "one seen last (a replay, or a cloned authenticator)"
                )
            session = Session(
                operator=row.operator,
                created_at=now,
                expires_at=now + SESSION_TTL,
                ended_at=None,
                passkey_id=row.id,
            )
            await conn.execute(
                insert(PS).values(
                    session_sha256=sha256_hex(secret),
                    operator=row.operator,
                    passkey_id=row.id,
                    challenge_id=assertion.challenge_id,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
            await conn.execute(
                insert(service_events).values(
                    kind="console_signed_in",
                    subject=row.operator,
                    detail=f"with passkey {row.id}; session until "
                    f"{session.expires_at:%Y-%m-%d %H:%M:%S} UTC",
                    actor=f"console:{row.operator}",
                    created_at=now,
                )
            )
        return secret, session

    async def passkey_ids(self, operator: str) -> list[bytes]:
        """The operator's current passkeys' credential ids (an approval's allowCredentials)."""
        query = select(P.c.credential_id).where(P.c.operator == operator, P.c.removed_at.is_(None))
        async with connection(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [wa.from_b64url(r[0], "credential id") for r in rows]

    # ---- reads for the pages -----------------------------------------------------

    async def held(self, limit: int = 50) -> list[Any]:
        """Queued intents held back (``held_since`` set), oldest hold first."""
        query = (
            select(T.c.id, T.c.account, T.c.coin, T.c.amount, T.c.status_reason, T.c.held_since)
            .where(T.c.status == "queued", T.c.held_since.is_not(None))
            .order_by(T.c.held_since)
            .limit(limit)
        )
        async with connection(self.engine) as conn:
            return list((await conn.execute(query)).all())

    async def held_count(self) -> int:
        query = select(func.count()).where(T.c.status == "queued", T.c.held_since.is_not(None))
        async with connection(self.engine) as conn:
            return int(await conn.scalar(query) or 0)

    async def intent_approvals(self, intent_id: int) -> list[Any]:
        A = intent_approvals
        query = (
            select(A.c.approver, A.c.created_at, A.c.signature.is_not(None).label("signed"))
            .where(A.c.intent_id == intent_id)
            .order_by(A.c.id)
        )
        async with connection(self.engine) as conn:
            return list((await conn.execute(query)).all())

    async def leases(self) -> dict[str, Any]:
        async with connection(self.engine) as conn:
            rows = (await conn.execute(select(sender_leases))).all()
        return {r.account: r for r in rows}

    async def state_rows(self, prefix: str) -> dict[str, Any]:
        query = select(service_state).where(service_state.c.key.startswith(prefix))
        async with connection(self.engine) as conn:
            return {r.key: r for r in (await conn.execute(query)).all()}

    async def last_sync_change(self, account: str) -> datetime | None:
        E = whitelist_events
        query = select(func.max(E.c.created_at)).where(
            E.c.account == account, E.c.actor == f"sync:{account}"
        )
        async with connection(self.engine) as conn:
            value = await conn.scalar(query)
        return value if isinstance(value, datetime) else None

    async def accounts(self) -> list[str]:
        async with connection(self.engine) as conn:
            rows = (await conn.execute(select(T.c.account).distinct())).all()
        return sorted(r[0] for r in rows)

    async def alerts(self, limit: int = 30) -> list[Any]:
        query = (
            select(outbox.c.id, outbox.c.payload, outbox.c.created_at)
            .where(outbox.c.topic == "alert")
            .order_by(outbox.c.id.desc())
            .limit(limit)
        )
        async with connection(self.engine) as conn:
            return list((await conn.execute(query)).all())

    async def activity(self, now: datetime) -> Activity:
        """The chart's counts, aggregated by the database (one row, whatever the volume):
        sends (``submitted_at``) and settlements (``settled_at``) per hour since
        ``chart_start(now)``, and the settled ones by time to settle."""
        start = chart_start(now)
        edges = [start + timedelta(hours=h) for h in range(25)]
        pg = self.engine.dialect.name == "postgresql"
        took = literal_column(
            "extract(epoch from (settled_at - submitted_at))"
            if pg
            else "round((julianday(settled_at) - julianday(submitted_at)) * 86400, 3)",
            type_=Float(),
        )

        def count(condition: Any) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        columns = [
            count(and_(T.c.submitted_at >= edges[h], T.c.submitted_at < edges[h + 1]))
            for h in range(24)
        ]
        columns += [
            count(and_(T.c.settled_at >= edges[h], T.c.settled_at < edges[h + 1]))
            for h in range(24)
        ]
        lower = 0.0
        settled = and_(T.c.settled_at >= start, T.c.submitted_at.is_not(None))
        for _, upper in SETTLE_BUCKETS:
            bounded = took >= lower if upper == float("inf") else and_(took >= lower, took < upper)
            columns.append(count(and_(settled, bounded)))
            lower = upper
        query = select(*columns).where(or_(T.c.submitted_at >= start, T.c.settled_at >= start))
        async with connection(self.engine) as conn:
            row = (await conn.execute(query)).one()
        values = [int(v) for v in row]
        return Activity(
            start=start,
            sends=tuple(values[:24]),
            settlements=tuple(values[24:48]),
            settle_histogram=tuple(values[48:]),
        )


def _usable(row: Any, now: datetime) -> Login:
    if row is None:
        raise LoginRefused("this login link is not one treasury made (or was mistyped)")
    if row.used_at is not None:
        raise LoginRefused(f"this login link was used already ({row.used_at:%Y-%m-%d %H:%M} UTC)")
    if now >= row.expires_at:
        raise LoginRefused(f"this login link expired at {row.expires_at:%Y-%m-%d %H:%M} UTC")
    return Login(id=row.id, operator=row.operator, expires_at=row.expires_at)
