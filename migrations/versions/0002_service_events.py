"""Service events: the audit trail of facts that belong to no single intent.

Unexpected withdrawals seen on the exchange, whitelist drift, pause and resume.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column(
            "created_at", UTCDateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")
        ),
    )
    op.create_index("ix_service_events_kind_subject", "service_events", ["kind", "subject"])


def downgrade() -> None:
    op.drop_index("ix_service_events_kind_subject", table_name="service_events")
    op.drop_table("service_events")
