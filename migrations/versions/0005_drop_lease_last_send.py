"""Drop sender_leases.last_send_ms: written on every send, never read (the send pace is
seeded from the intents' indexed send timestamps), so it only cost an UPDATE per send.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sender_leases") as batch:
        batch.drop_column("last_send_ms")


def downgrade() -> None:
    with op.batch_alter_table("sender_leases") as batch:
        batch.add_column(sa.Column("last_send_ms", sa.BigInteger, nullable=True))
