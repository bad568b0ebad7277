"""``fleet_members``: the live ``treasury run`` processes sharing the accounts.

Each process heartbeats one row (``worker_id``, the accounts it can serve, and
``expires_at`` by the database's clock); every process reads the live rows and decides,
by rendezvous hashing, which accounts it should hold (README: "Many accounts, several
daemons"). The sender lease stays the only arbiter of who sends: a row here is a wish.
A process deletes its row when it stops, and expired rows of others.

ADD TABLES only.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_members",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("accounts", sa.Text, nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fleet_members")
