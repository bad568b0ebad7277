"""The operator console's sign-in (``treasury api``, ``/console``): ``console_logins`` and
``console_sessions``.

* ``console_logins``: a single-use login link made by ``treasury console login`` for one
  registered operator. The link's token is kept as its sha256 only (``token_sha256``);
  it expires at ``expires_at`` and is spent by setting ``used_at``, once.
* ``console_sessions``: one per sign-in; the session cookie's value is kept as its sha256
  only (``session_sha256``). It lasts until ``expires_at`` or until signed out
  (``ended_at``, set once).

Both are append-only whatever SQL is sent (triggers, both dialects, as 0008 and 0015 do):
a row is never deleted; every column but ``used_at`` (logins) and ``ended_at``
(sessions) is fixed; those go from NULL to set once, never back nor changed afterwards.
Creating a link, signing in and signing out are audited in ``service_events``.

ADD TABLES (and their triggers) only.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")
# table -> (the one column set once, the columns that never change, messages)
GUARDED = {
    "console_logins": (
        "used_at",
        ("id", "token_sha256", "operator", "created_by", "created_at", "expires_at"),
        "console_logins: a login link is never deleted (it expires)",
        "console_logins: a login link never changes; only used_at is set, once",
    ),
    "console_sessions": (
        "ended_at",
        ("session_sha256", "operator", "login_id", "created_at", "expires_at"),
        "console_sessions: a console session is never deleted (it expires or is ended)",
        "console_sessions: a console session never changes; only ended_at is set, once",
    ),
}


def upgrade() -> None:
    op.create_table(
        "console_logins",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("length(token_sha256) = 64", name="ck_console_logins_sha256_hex"),
        sa.CheckConstraint(
            "length(trim(operator)) > 0", name="ck_console_logins_operator_nonempty"
        ),
    )
    op.create_table(
        "console_sessions",
        sa.Column("session_sha256", sa.String(64), primary_key=True),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("login_id", sa.Integer, sa.ForeignKey("console_logins.id"), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("length(session_sha256) = 64", name="ck_console_sessions_sha256_hex"),
        sa.UniqueConstraint("login_id", name="uq_console_sessions_login_id"),
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
