"""``api_tokens``: the HTTP API's clients (``treasury api``), one bearer token each.

A token is stored as its sha256 only (``token_sha256``); the token itself is printed once
by ``treasury token create`` and never kept. ``scopes`` is a comma-separated subset of
``enqueue,read,cancel``; ``accounts`` limits the accounts a client sees and enqueues for
(NULL: every account). A revoked token keeps its row (``revoked_*`` set once): names are
never reused, so an intent's ``requested_by`` (``api:<name>``) names one client forever.
Creation and revocation are audited in ``service_events`` (kinds ``api_token_created``,
``api_token_revoked``), in the same transaction.

The database keeps that true whatever SQL is sent (triggers, both dialects, as 0008 does
for ``operators``): a row is never deleted; ``name``, ``token_sha256``, ``scopes``,
``accounts``, ``created_by`` and ``created_at`` never change; the one update a row takes
is its revocation, ``revoked_at`` and ``revoked_by`` (and ``revoked_reason``) going from
NULL to set, once, never back nor changed afterwards.

ADD TABLE (and its triggers) only.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

MSG_DELETE = "api_tokens: an API client is never deleted; revoke it (treasury token revoke)"
MSG_FIXED = (
    "api_tokens: the name, token, scopes, accounts and creation of a client never change; "
    "only a revocation is set, once"
)
# SQLite: every column but the revocation compared with IS NOT (NULL-safe)
FIXED = ("name", "token_sha256", "scopes", "accounts", "created_by", "created_at")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("accounts", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column(
            "created_at", UTCDateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")
        ),
        sa.Column("revoked_by", sa.String(128), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.Text, nullable=True),
    )
    if op.get_bind().dialect.name == "sqlite":
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FIXED)
        op.execute(f"""CREATE TRIGGER trg_api_tokens_no_delete BEFORE DELETE ON api_tokens
        BEGIN SELECT RAISE(ABORT, '{MSG_DELETE}'); END""")
        op.execute(f"""CREATE TRIGGER trg_api_tokens_fixed BEFORE UPDATE ON api_tokens
        WHEN {changed}
          OR OLD.revoked_at IS NOT NULL OR OLD.revoked_by IS NOT NULL
          OR OLD.revoked_reason IS NOT NULL
          OR NEW.revoked_at IS NULL OR NEW.revoked_by IS NULL
        BEGIN SELECT RAISE(ABORT, '{MSG_FIXED}'); END""")
        return
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FIXED)
    op.execute(f"""
    CREATE FUNCTION treasury_api_tokens_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION '{MSG_DELETE}' USING ERRCODE = 'check_violation';
      END IF;
      IF {changed}
         OR OLD.revoked_at IS NOT NULL OR OLD.revoked_by IS NOT NULL
         OR OLD.revoked_reason IS NOT NULL
         OR NEW.revoked_at IS NULL OR NEW.revoked_by IS NULL THEN
        RAISE EXCEPTION '{MSG_FIXED}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_api_tokens_guard BEFORE UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION treasury_api_tokens_guard()""")
    # TRUNCATE skips row triggers: refuse it too
    op.execute("""CREATE TRIGGER trg_api_tokens_no_truncate BEFORE TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION treasury_api_tokens_guard()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER trg_api_tokens_fixed")
        op.execute("DROP TRIGGER trg_api_tokens_no_delete")
        op.drop_table("api_tokens")
        return
    op.execute("DROP TRIGGER trg_api_tokens_no_truncate ON api_tokens")
    op.execute("DROP TRIGGER trg_api_tokens_guard ON api_tokens")
    op.execute("DROP FUNCTION treasury_api_tokens_guard()")
    op.drop_table("api_tokens")
