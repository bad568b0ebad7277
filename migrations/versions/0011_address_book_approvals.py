"""A second person approves an address-book entry: ``whitelist_approvals``.

One row per approval of one *version* of an entry (``entry_id``, ``entry_version``):
who approved (``approver``), their Ed25519 signature over the entry's canonical statement
(``signature``; NULL for an approval by name, which counts only while no operator is
registered), why (``reason``) and when (``created_at``, the database's clock). Approvals are append-only: UPDATE and DELETE
are refused, so an approval cannot be moved to another entry or version, nor withdrawn
silently (disable the entry instead). There is no unique key on the approver: the
daemon counts one person once, and a forged row slipped in under an operator's name
must not keep that operator from filing their real approval.

A new table, not new columns: ``whitelist_entries`` must not be rebuilt on SQLite
(migration 0009: a rebuild drops its triggers).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

MSG_APPEND = "whitelist_approvals is append-only (disable the entry to stop its use)"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # SQLite's CURRENT_TIMESTAMP has whole seconds: in milliseconds, as whitelist_events
    # has them, so the history interleaves approvals and changes in their order
    now = "(strftime('%Y-%m-%d %H:%M:%f', 'now'))" if sqlite else "CURRENT_TIMESTAMP"
    op.create_table(
        "whitelist_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "entry_id",
            sa.Integer,
            sa.ForeignKey(
                "whitelist_entries.id", name="fk_whitelist_approvals_entry_id_whitelist_entries"
            ),
            nullable=False,
        ),
        sa.Column("entry_version", sa.Integer, nullable=False),
        sa.Column("approver", sa.String(128), nullable=False),
        sa.Column("signature", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.text(now)),
        sa.CheckConstraint("length(trim(approver)) > 0", name="approver_nonempty"),
        sa.CheckConstraint("entry_version >= 1", name="version_positive"),
    )
    op.create_index("ix_whitelist_approvals_entry_id", "whitelist_approvals", ["entry_id"])
    if sqlite:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER trg_whitelist_approvals_no_{verb.lower()}
            BEFORE {verb} ON whitelist_approvals
            BEGIN SELECT RAISE(ABORT, '{MSG_APPEND}'); END""")
        return
    op.execute(f"""
    CREATE FUNCTION treasury_whitelist_approvals_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '{MSG_APPEND}' USING ERRCODE = 'check_violation';
    END $$""")
    op.execute("""CREATE TRIGGER trg_whitelist_approvals_append_only BEFORE UPDATE OR DELETE
    ON whitelist_approvals FOR EACH ROW
    EXECUTE FUNCTION treasury_whitelist_approvals_append_only()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_whitelist_approvals_no_{verb}")
    else:
        op.execute(
            "DROP TRIGGER IF EXISTS trg_whitelist_approvals_append_only ON whitelist_approvals"
        )
        op.execute("DROP FUNCTION IF EXISTS treasury_whitelist_approvals_append_only()")
    op.drop_index("ix_whitelist_approvals_entry_id", table_name="whitelist_approvals")
    op.drop_table("whitelist_approvals")
