"""Approvals that prove who approved: ``operators`` and ``intent_approvals.signature``.

An operator is a name and an Ed25519 public key (base64 of its 32 bytes), added and
removed by an admin: rows are never deleted, ``removed_at`` is set once, and a name or
key never changes. An approval may carry the approver's signature (base64) over the
intent's canonical statement; approvals are append-only. While no operator exists,
approvals by name count (a setup without keys); once one does, only signed ones do.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")
MSG_OP_DELETE = "operators: an operator is never deleted; remove them (treasury operator remove)"
MSG_OP_FIXED = "operators: a name, key or who added it never changes; removal is set once"
MSG_APPROVAL = "intent_approvals: approvals are append-only"


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("removed_by", sa.String(128), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("removed_reason", sa.Text, nullable=True),
        sa.CheckConstraint("length(name) > 0", name="ck_operators_name_nonempty"),
        sa.CheckConstraint("length(public_key) = 44", name="ck_operators_key_base64_32"),
        sa.UniqueConstraint("public_key", name="uq_operators_public_key"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE intent_approvals ADD COLUMN signature TEXT")
        op.execute(f"""CREATE TRIGGER trg_operators_no_delete BEFORE DELETE ON operators
        BEGIN SELECT RAISE(ABORT, '{MSG_OP_DELETE}'); END""")
        op.execute(f"""CREATE TRIGGER trg_operators_fixed BEFORE UPDATE ON operators
        WHEN NEW.name IS NOT OLD.name OR NEW.public_key IS NOT OLD.public_key
          OR NEW.added_by IS NOT OLD.added_by OR NEW.added_at IS NOT OLD.added_at
          OR OLD.removed_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, '{MSG_OP_FIXED}'); END""")
        op.execute(f"""CREATE TRIGGER trg_approvals_no_update BEFORE UPDATE ON intent_approvals
        BEGIN SELECT RAISE(ABORT, '{MSG_APPROVAL}'); END""")
        op.execute(f"""CREATE TRIGGER trg_approvals_no_delete BEFORE DELETE ON intent_approvals
        BEGIN SELECT RAISE(ABORT, '{MSG_APPROVAL}'); END""")
        return
    op.execute("ALTER TABLE intent_approvals ADD COLUMN signature TEXT")
    op.execute(f"""
    CREATE FUNCTION treasury_operators_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{MSG_OP_DELETE}' USING ERRCODE = 'check_violation';
      END IF;
      IF NEW.name IS DISTINCT FROM OLD.name OR NEW.public_key IS DISTINCT FROM OLD.public_key
         OR NEW.added_by IS DISTINCT FROM OLD.added_by
         OR NEW.added_at IS DISTINCT FROM OLD.added_at OR OLD.removed_at IS NOT NULL THEN
        RAISE EXCEPTION '{MSG_OP_FIXED}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_operators_guard BEFORE UPDATE OR DELETE ON operators
    FOR EACH ROW EXECUTE FUNCTION treasury_operators_guard()""")
    op.execute(f"""
    CREATE FUNCTION treasury_approvals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '{MSG_APPROVAL}' USING ERRCODE = 'check_violation';
    END $$""")
    op.execute("""CREATE TRIGGER trg_approvals_append_only BEFORE UPDATE OR DELETE
    ON intent_approvals FOR EACH ROW EXECUTE FUNCTION treasury_approvals_append_only()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in (
            "trg_operators_no_delete",
            "trg_operators_fixed",
            "trg_approvals_no_update",
            "trg_approvals_no_delete",
        ):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("ALTER TABLE intent_approvals DROP COLUMN signature")
        op.drop_table("operators")
        return
    op.execute("DROP TRIGGER trg_approvals_append_only ON intent_approvals")
    op.execute("DROP FUNCTION treasury_approvals_append_only()")
    op.execute("DROP TRIGGER trg_operators_guard ON operators")
    op.execute("DROP FUNCTION treasury_operators_guard()")
    op.execute("ALTER TABLE intent_approvals DROP COLUMN signature")
    op.drop_table("operators")
