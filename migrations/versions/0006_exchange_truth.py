"""The exchange as the record of truth: what it reported, and what the ledger lacks.

* ``withdrawal_intents.exchange_amount``: the ``amount`` the exchange's history shows for
  the intent's withdrawal (Binance most likely reports it net of ``transactionFee``; the
  intent's ``amount`` stays what was requested).
* ``service_state.key`` widened to 128 characters for per-account keys (the automatic
  per-account pause, the sweep watermark).
* ``unmatched_withdrawals``: withdrawals in this ledger's ``withdrawOrderId`` namespace
  that the ledger cannot account for (a restore from backup, a failover to a lagging
  replica, a record that contradicts its intent). One row per exchange withdrawal; an
  order id found here is never sent again, and finding a new row pauses the account.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import Amount, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _exact(column: str, *, nullable: bool) -> str:
    """The exactness CHECK of an amount column (>= 0), as the initial migration writes it."""
    if op.get_bind().dialect.name == "sqlite":
        expr = (
            f"typeof({column}) = 'text' AND {column} GLOB '[0-9]*' "
            f"AND {column} NOT GLOB '*[^0-9.]*' AND {column} NOT GLOB '*.*.*' "
            f"AND {column} NOT GLOB '*.' "
            f"AND (instr({column}, '.') = 0 OR length({column}) - instr({column}, '.') <= 18) "
            f"AND CAST({column} AS REAL) >= 0"
        )
    else:
        expr = f"{column} >= 0 AND scale({column}) <= 18 AND {column} < 'Infinity'"
    return f"{column} IS NULL OR ({expr})" if nullable else expr


def upgrade() -> None:
    # room for per-account keys ("paused:<account>", "sweep_watermark:<account>")
    with op.batch_alter_table("service_state") as batch:
        batch.alter_column(
            "key", type_=sa.String(128), existing_type=sa.String(64), existing_nullable=False
        )
    # ADD COLUMN, not a table rebuild: a rebuild on SQLite would drop the intents' triggers
    check = _exact("exchange_amount", nullable=True)
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE withdrawal_intents ADD COLUMN exchange_amount DECIMAL_BLOB "
            f"CONSTRAINT ck_withdrawal_intents_exchange_amount_exact CHECK ({check})"
        )
    else:
        op.add_column("withdrawal_intents", sa.Column("exchange_amount", Amount(), nullable=True))
        op.create_check_constraint("exchange_amount_exact", "withdrawal_intents", check)
    op.create_table(
        "unmatched_withdrawals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("exchange_withdraw_id", sa.String(64), nullable=False),
        sa.Column("withdraw_order_id", sa.String(64), nullable=False),
        sa.Column("intent_id", sa.Integer, nullable=True),
        sa.Column("coin", sa.String(20), nullable=False),
        sa.Column("network", sa.String(32), nullable=True),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("address_tag", sa.String(128), nullable=True),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("fee", Amount(), nullable=True),
        sa.Column("exchange_status", sa.Integer, nullable=False),
        sa.Column("apply_time", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("found_by", sa.String(128), nullable=False),
        sa.Column(
            "created_at", UTCDateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")
        ),
        sa.CheckConstraint(_exact("amount", nullable=False), name="amount_exact"),
        sa.CheckConstraint(_exact("fee", nullable=True), name="fee_exact"),
        sa.UniqueConstraint(
            "account",
            "exchange_withdraw_id",
            name="uq_unmatched_withdrawals_account_exchange_withdraw_id",
        ),
    )
    op.create_index(
        "ix_unmatched_withdrawals_withdraw_order_id", "unmatched_withdrawals", ["withdraw_order_id"]
    )
    op.create_index("ix_unmatched_withdrawals_intent_id", "unmatched_withdrawals", ["intent_id"])


def downgrade() -> None:
    op.execute("DELETE FROM service_state WHERE length(key) > 64")
    with op.batch_alter_table("service_state") as batch:
        batch.alter_column(
            "key", type_=sa.String(64), existing_type=sa.String(128), existing_nullable=False
        )
    op.drop_index("ix_unmatched_withdrawals_intent_id", table_name="unmatched_withdrawals")
    op.drop_index("ix_unmatched_withdrawals_withdraw_order_id", table_name="unmatched_withdrawals")
    op.drop_table("unmatched_withdrawals")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("exchange_amount_exact", "withdrawal_intents", type_="check")
        op.drop_column("withdrawal_intents", "exchange_amount")
    else:
        # SQLite: DROP COLUMN keeps the triggers (a batch rebuild would lose them)
        op.execute("ALTER TABLE withdrawal_intents DROP COLUMN exchange_amount")
