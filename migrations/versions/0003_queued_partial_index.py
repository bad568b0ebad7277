"""A partial index on queued intents, so claims stay flat as the table grows.

With statistics (ANALYZE), SQLite preferred scanning the whole table for the claim
query; an index holding only queued rows is small and always the better plan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WHERE = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_index(
        "ix_withdrawal_intents_queued",
        "withdrawal_intents",
        ["account", "id"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_withdrawal_intents_queued", table_name="withdrawal_intents")
