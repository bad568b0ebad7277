"""The console's passkey sign-in: ``console_challenges`` and ``console_passkey_sessions``.

* ``console_challenges``: a random challenge the sign-in page asks for
  (``POST /console/sign-in/options``) and the browser's passkey signs. It is single use
  (``used_at`` set once, whether the sign-in then succeeds or not) and expires at
  ``expires_at`` (2 minutes).
* ``console_passkey_sessions``: a session opened by a passkey: as ``console_sessions``
  (0017; the cookie's value is kept as its sha256 only, ``ended_at`` set once), with the
  passkey (``passkey_id``) and the challenge (``challenge_id``, unique: one session per
  challenge) it was opened with instead of a login link. Only such a session may act
  (approve, cancel, resolve, pause, resume).

Both are append-only whatever SQL is sent (triggers, both dialects, as 0017 does): a row
is never deleted; every column but ``used_at`` / ``ended_at`` is fixed; those go from NULL
to set once. Signing in is audited in ``service_events``.

ADD TABLES (and their triggers) only.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")
# table -> (the one column set once, the columns that never change, messages)
GUARDED = {
    "console_challenges": (
        "used_at",
        ("id", "challenge", "created_at", "expires_at"),
        "console_challenges: a sign-in challenge is never deleted (it expires)",
        "console_challenges: a sign-in challenge never changes; only used_at is set, once",
    ),
    "console_passkey_sessions": (
        "ended_at",
        (
            "session_sha256",
            "operator",
            "passkey_id",
            "challenge_id",
            "created_at",
            "expires_at",
        ),
        "console_passkey_sessions: a console session is never deleted (it expires or is ended)",
        "console_passkey_sessions: a console session never changes; only ended_at is set, once",
    ),
}


def upgrade() -> None:
    op.create_table(
        "console_challenges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("challenge", sa.String(64), nullable=False, unique=True),  # base64url
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("length(challenge) >= 43", name="ck_console_challenges_length"),
    )
    op.create_table(
        "console_passkey_sessions",
        sa.Column("session_sha256", sa.String(64), primary_key=True),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column(
            "passkey_id",
            sa.Integer,
            sa.ForeignKey("operator_passkeys.id", name="fk_console_passkey_sessions_passkey"),
            nullable=False,
        ),
        sa.Column(
            "challenge_id",
            sa.Integer,
            sa.ForeignKey("console_challenges.id", name="fk_console_passkey_sessions_challenge"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "length(session_sha256) = 64", name="ck_console_passkey_sessions_sha256_hex"
        ),
        sa.UniqueConstraint("challenge_id", name="uq_console_passkey_sessions_challenge_id"),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, (once, fixed, msg_delete, msg_fixed) in GUARDED.items():
        if sqlite:
            changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in fixed)
            op.execute(f"""CREATE TRIGGER trg_{table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, '{msg_delete}'); END""")
            op.execute(f"""CREATE TRIGGER trg_{table}_fixed BEFORE UPDATE ON {table}
            WHEN {changed} OR OLD.{once} IS NOT NULL OR NEW.{once} IS NULL
            BEGIN SELECT RAISE(ABORT, '{msg_fixed}'); END""")
            continue
        changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in fixed)
        op.execute(f"""
        CREATE FUNCTION treasury_{table}_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
            RAISE EXCEPTION '{msg_delete}' USING ERRCODE = 'check_violation';
          END IF;
          IF {changed} OR OLD.{once} IS NOT NULL OR NEW.{once} IS NULL THEN
            RAISE EXCEPTION '{msg_fixed}' USING ERRCODE = 'check_violation';
          END IF;
          RETURN NEW;
        END $$""")
        op.execute(f"""CREATE TRIGGER trg_{table}_guard BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION treasury_{table}_guard()""")
        op.execute(f"""CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION treasury_{table}_guard()""")


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in reversed(list(GUARDED)):
        if sqlite:
            op.execute(f"DROP TRIGGER trg_{table}_fixed")
            op.execute(f"DROP TRIGGER trg_{table}_no_delete")
        else:
            op.execute(f"DROP TRIGGER trg_{table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER trg_{table}_guard ON {table}")
            op.execute(f"DROP FUNCTION treasury_{table}_guard()")
        op.drop_table(table)
