"""The transactional outbox and webhook subscriptions: ``outbox``,
``webhook_subscriptions``, ``webhook_deliveries``, ``webhook_events``.

* ``outbox``: what is to be told outside, written in the transaction of the fact it
  tells. A status event (``intent_events.kind = 'status'``, the creation event too)
  writes its ``intent.status`` row by a trigger on INSERT into ``intent_events``, so
  whoever changes a status (the worker, the CLI, raw SQL with its event first, 0010)
  writes it too, and a change that rolls back takes its row with it. The daemon's alerts
  write ``alert`` rows in their own short transaction. ``fanned_at`` is set once the row
  has its deliveries (the only UPDATE the table sees).
* ``webhook_subscriptions``: a receiver's URL and topics; never its signing secret (it is
  derived from ``TREASURY_WEBHOOK_KEY``). A subscription sees outbox rows with an id above
  ``from_outbox_id`` (the newest id when it was added). Removed by ``disabled_*``, never
  deleted. ``builtin = 'alerts'`` marks the configured alert channel's own subscription
  (its URL is a secret setting and not stored: ``url`` is a placeholder).
* ``webhook_deliveries``: one per (subscription, outbox row), ``delivery_id`` fixed at
  fan-out (``<outbox id>.<subscription id>``); every attempt updates it.
* ``webhook_events``: append-only, adding and removing a subscription.

On PostgreSQL the outbox trigger is ``SECURITY DEFINER`` (its search_path fixed to the
tables' schema, then ``pg_temp`` last, so no session's temporary table can stand in):
it writes ``outbox`` as the tables' owner, so no role needs INSERT there to change a
status (a bot's enqueue writes its creation event) and a bot cannot forge a row.

ADD tables and triggers only: ``intent_events`` and ``withdrawal_intents`` are not rebuilt.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")
MSG_APPEND = "webhook_events is append-only"

# The event's fields, then the intent's (fixed since insert: 0001's trg_intents_fixed)
SQLITE_PAYLOAD = """json_object(
  'intent_id', NEW.intent_id, 'event_id', NEW.id,
  'from_status', NEW.from_status, 'to_status', NEW.to_status,
  'reason', NEW.reason, 'actor', NEW.actor,
  'version', COALESCE(NEW.intent_version, i.version),
  'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.created_at),
  'coin', i.coin, 'network', i.network, 'amount', CAST(i.amount AS TEXT),
  'account', i.account, 'request_id', i.request_id, 'requested_by', i.requested_by)"""
PG_PAYLOAD = """json_build_object(
  'intent_id', NEW.intent_id, 'event_id', NEW.id,
  'from_status', NEW.from_status, 'to_status', NEW.to_status,
  'reason', NEW.reason, 'actor', NEW.actor,
  'version', COALESCE(NEW.intent_version, i.version),
  'created_at', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
  'coin', i.coin, 'network', i.network, 'amount', trim_scale(i.amount)::text,
  'account', i.account, 'request_id', i.request_id, 'requested_by', i.requested_by)::text"""


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("intent_id", sa.Integer, nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("fanned_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("topic IN ('intent.status', 'alert')", name="topic_known"),
    )
    op.create_index(
        "ix_outbox_unfanned",
        "outbox",
        ["id"],
        sqlite_where=sa.text("fanned_at IS NULL"),
        postgresql_where=sa.text("fanned_at IS NULL"),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.String(128), nullable=False),  # comma-separated topics
        sa.Column("from_outbox_id", sa.Integer, nullable=False, server_default="0"),
        sa.Column("builtin", sa.String(16), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.Column("disabled_by", sa.String(128), nullable=True),
        sa.Column("disabled_reason", sa.Text, nullable=True),
    )
    # one alert channel subscription in force (two daemons starting at once add one)
    op.create_index(
        "ix_webhook_subscriptions_builtin",
        "webhook_subscriptions",
        ["builtin"],
        unique=True,
        sqlite_where=sa.text("builtin IS NOT NULL AND disabled_at IS NULL"),
        postgresql_where=sa.text("builtin IS NOT NULL AND disabled_at IS NULL"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column(
            "subscription_id",
            sa.Integer,
            sa.ForeignKey(
                "webhook_subscriptions.id",
                name="fk_webhook_deliveries_subscription_id_webhook_subscriptions",
            ),
            nullable=False,
        ),
        sa.Column(
            "outbox_id",
            sa.Integer,
            sa.ForeignKey("outbox.id", name="fk_webhook_deliveries_outbox_id_outbox"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("delivery_id", name="uq_webhook_deliveries_delivery_id"),
        sa.UniqueConstraint(
            "subscription_id", "outbox_id", name="uq_webhook_deliveries_subscription_id_outbox_id"
        ),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),  # added | removed
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    )
    op.create_index("ix_webhook_events_subscription_id", "webhook_events", ["subscription_id"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"""CREATE TRIGGER trg_events_outbox AFTER INSERT ON intent_events
        WHEN NEW.kind = 'status'
        BEGIN
          INSERT INTO outbox (topic, intent_id, payload, created_at)
          SELECT 'intent.status', NEW.intent_id, {SQLITE_PAYLOAD}, NEW.created_at
          FROM withdrawal_intents i WHERE i.id = NEW.intent_id;
        END""")
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER trg_webhook_events_no_{verb.lower()}
            BEFORE {verb} ON webhook_events
            BEGIN SELECT RAISE(ABORT, '{MSG_APPEND}'); END""")
        return
    # the schema the tables are in, then pg_temp *last*: left implicit, pg_temp comes
    # first, and a session's temporary ``outbox`` would take the row instead
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    path = '"' + str(schema).replace('"', '""') + '", pg_temp'
    op.execute(f"""
    CREATE FUNCTION treasury_events_outbox() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = {path} AS $$
    BEGIN
      INSERT INTO outbox (topic, intent_id, payload, created_at)
      SELECT 'intent.status', NEW.intent_id, {PG_PAYLOAD}, NEW.created_at
      FROM withdrawal_intents i WHERE i.id = NEW.intent_id;
      RETURN NULL;
    END $$""")
    op.execute("REVOKE ALL ON FUNCTION treasury_events_outbox() FROM PUBLIC")
    op.execute("""CREATE TRIGGER trg_events_outbox AFTER INSERT ON intent_events
    FOR EACH ROW WHEN (NEW.kind = 'status') EXECUTE FUNCTION treasury_events_outbox()""")
    op.execute(f"""
    CREATE FUNCTION treasury_webhook_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '{MSG_APPEND}' USING ERRCODE = 'check_violation';
    END $$""")
    op.execute("""CREATE TRIGGER trg_webhook_events_append_only
    BEFORE UPDATE OR DELETE ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION treasury_webhook_events_append_only()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER trg_events_outbox")
        op.execute("DROP TRIGGER trg_webhook_events_no_update")
        op.execute("DROP TRIGGER trg_webhook_events_no_delete")
    else:
        op.execute("DROP TRIGGER trg_events_outbox ON intent_events")
        op.execute("DROP FUNCTION treasury_events_outbox()")
        op.execute("DROP TRIGGER trg_webhook_events_append_only ON webhook_events")
        op.execute("DROP FUNCTION treasury_webhook_events_append_only()")
    op.drop_index("ix_webhook_events_subscription_id", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_subscriptions_builtin", table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
    op.drop_index("ix_outbox_unfanned", table_name="outbox")
    op.drop_table("outbox")
