"""``withdrawal_intents.exchange_tr_id``: the travel-rule record id of a withdrawal sent
through ``localentity/withdraw/apply``.

Binance's answer to a local-entity apply carries ``trId``, the id of the travel-rule record,
and not the withdrawal's own ``id`` (the local-entity history shows both). The worker
writes ``exchange_tr_id`` with ``submitted``; ``exchange_withdraw_id`` stays NULL until a
history shows the withdrawal's id, and the settlement poll fills it then. NULL for every
withdrawal sent through ``capital/withdraw/apply``.

ADD COLUMN only: ``withdrawal_intents`` is never rebuilt (its triggers, 0007 to 0013).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-15
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE withdrawal_intents ADD COLUMN exchange_tr_id BIGINT")


def downgrade() -> None:
    op.execute("ALTER TABLE withdrawal_intents DROP COLUMN exchange_tr_id")
