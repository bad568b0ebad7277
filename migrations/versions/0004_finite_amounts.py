"""PostgreSQL: amounts must be finite.

PostgreSQL's NUMERIC admits 'NaN' and 'Infinity', and 'NaN' > 0 is true there, so the
first CHECK let them in. Everything finite is below 'Infinity'; NaN is not.
SQLite needs nothing: its CHECK admits only decimal digits.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_check_constraint("amount_finite", "withdrawal_intents", "amount < 'Infinity'")
    op.create_check_constraint(
        "fee_finite", "withdrawal_intents", "fee IS NULL OR fee < 'Infinity'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_constraint("fee_finite", "withdrawal_intents", type_="check")
    op.drop_constraint("amount_finite", "withdrawal_intents", type_="check")
