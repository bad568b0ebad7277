"""``api_tokens``: the HTTP API's clients (``treasury api``), one bearer token each.

A token is stored as its sha256 only (``token_sha256``); the token itself is printed once
by ``treasury token create`` and never kept. ``scopes`` is a comma-separated subset of
``enqueue,read,cancel``; ``accounts`` limits the accounts a client sees and enqueues for
(NULL: every account). A revoked token keeps its row (``revoked_*`` set once): names are
never reused, so an intent's ``requested_by`` (``api:<name>``) names one client forever.
Creation and revocation are audited in ``service_events`` (kinds ``api_token_created``,
``api_token_revoked``), in the same transaction.

ADD TABLE only.

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


def downgrade() -> None:
    op.drop_table("api_tokens")
