"""Initial ledger: intents, events, whitelist, approvals, service state, sender leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import Amount, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = (
    "'queued', 'awaiting_approval', 'submitting', 'submitted', 'completed', 'failed', "
    "'rejected', 'cancelled', 'needs_attention'"
)
NOW = sa.text("CURRENT_TIMESTAMP")

MSG_INSERT = (
    "withdrawal_intents: a new intent must start as queued, without withdraw_order_id, "
    "exchange_withdraw_id or send data"
)
MSG_STATUS = (
    "withdrawal_intents: change status with the treasury commands (cancel, resolve, approve), "
    "not with UPDATE"
)
MSG_FIXED = (
    "withdrawal_intents: coin, network, address, address_tag, amount and account are fixed; "
    "cancel the intent and enqueue a new one"
)
MSG_ORDER_ID = "withdrawal_intents: withdraw_order_id is fixed once set"
MSG_APPEND = "intent_events is append-only"


def _amount_checks(column: str, *, positive: bool) -> list[sa.CheckConstraint]:
    sign = ">" if positive else ">="
    name = f"{column}_positive_exact" if positive else f"{column}_exact"
    if op.get_bind().dialect.name == "sqlite":
        expr = (
            f"typeof({column}) = 'text' AND {column} GLOB '[0-9]*' "
            f"AND {column} NOT GLOB '*[^0-9.]*' AND {column} NOT GLOB '*.*.*' "
            f"AND {column} NOT GLOB '*.' "
            f"AND (instr({column}, '.') = 0 OR length({column}) - instr({column}, '.') <= 18) "
            f"AND CAST({column} AS REAL) {sign} 0"
        )
    else:
        expr = f"{column} {sign} 0 AND scale({column}) <= 18"
    if not positive:
        expr = f"{column} IS NULL OR ({expr})"
    return [sa.CheckConstraint(expr, name=name)]


def upgrade() -> None:
    op.create_table(
        "withdrawal_intents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("coin", sa.String(20), nullable=False),
        sa.Column("network", sa.String(32), nullable=False),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("address_tag", sa.String(128), nullable=True),
        sa.Column("amount", Amount(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("account", sa.String(64), nullable=False, server_default="default"),
        sa.Column("requested_by", sa.String(128), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("status", sa.String(32), nullable=False, server_default="queued"),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("withdraw_order_id", sa.String(64), nullable=True),
        sa.Column("exchange_withdraw_id", sa.String(64), nullable=True),
        sa.Column("tx_id", sa.String(256), nullable=True),
        sa.Column("fee", Amount(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("enqueued_via", sa.String(128), nullable=True),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("held_since", UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("send_timestamp_ms", sa.BigInteger, nullable=True),
        sa.Column("send_recv_window_ms", sa.Integer, nullable=True),
        sa.Column("send_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("absent_checks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_checked_at", UTCDateTime(), nullable=True),
        sa.Column("submitted_at", UTCDateTime(), nullable=True),
        sa.Column("settled_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("length(coin) > 0 AND coin = upper(coin)", name="coin_upper_nonempty"),
        sa.CheckConstraint("length(network) > 0", name="network_nonempty"),
        sa.CheckConstraint("length(address) > 0", name="address_nonempty"),
        sa.CheckConstraint(
            "address_tag IS NULL OR length(address_tag) > 0",
            name="tag_null_or_set",
        ),
        sa.CheckConstraint("length(account) > 0", name="account_nonempty"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="status_known"),
        *[
            sa.CheckConstraint(c.sqltext, name=c.name)
            for c in _amount_checks("amount", positive=True) + _amount_checks("fee", positive=False)
        ],
        sa.UniqueConstraint("request_id", name="uq_withdrawal_intents_request_id"),
        sa.UniqueConstraint("withdraw_order_id", name="uq_withdrawal_intents_withdraw_order_id"),
    )
    op.create_index(
        "ix_withdrawal_intents_status_account_not_before",
        "withdrawal_intents",
        ["status", "account", "not_before"],
    )
    op.create_index(
        "ix_withdrawal_intents_account_send_timestamp_ms",
        "withdrawal_intents",
        ["account", "send_timestamp_ms"],
    )
    op.create_index("ix_withdrawal_intents_created_at", "withdrawal_intents", ["created_at"])

    op.create_table(
        "intent_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "intent_id",
            sa.Integer,
            sa.ForeignKey(
                "withdrawal_intents.id", name="fk_intent_events_intent_id_withdrawal_intents"
            ),
            nullable=False,
        ),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False, server_default="status"),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.CheckConstraint(f"to_status IN ({STATUSES})", name="to_status_known"),
        sa.CheckConstraint(
            f"from_status IS NULL OR from_status IN ({STATUSES})",
            name="from_status_known",
        ),
    )
    op.create_index("ix_intent_events_intent_id", "intent_events", ["intent_id"])

    op.create_table(
        "whitelist_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("coin", sa.String(20), nullable=False),
        sa.Column("network", sa.String(32), nullable=False),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("address_tag", sa.String(128), nullable=True),
        sa.Column("label", sa.String(256), nullable=False, server_default=""),
        sa.Column("source", sa.String(16), nullable=False, server_default="manual"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("usable_from", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.Column("tag_key", sa.String(128), nullable=False, server_default=""),
        sa.CheckConstraint("source IN ('exchange', 'manual')", name="source_known"),
        sa.CheckConstraint(
            "length(coin) > 0 AND length(network) > 0",
            name="coin_network_nonempty",
        ),
        sa.CheckConstraint("length(address) > 0", name="address_nonempty"),
        sa.UniqueConstraint(
            "coin", "network", "address", "tag_key", name="uq_whitelist_destination"
        ),
    )

    op.create_table(
        "intent_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "intent_id",
            sa.Integer,
            sa.ForeignKey(
                "withdrawal_intents.id", name="fk_intent_approvals_intent_id_withdrawal_intents"
            ),
            nullable=False,
        ),
        sa.Column("approver", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
        sa.UniqueConstraint("intent_id", "approver", name="uq_approval_once"),
    )
    op.create_index("ix_intent_approvals_intent_id", "intent_approvals", ["intent_id"])

    op.create_table(
        "service_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False, server_default="service"),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=NOW),
    )
    op.create_table(
        "sender_leases",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("last_send_ms", sa.BigInteger, nullable=True),
    )
    # The namespace makes withdrawOrderIds unique across ledgers sharing one account.
    op.execute(
        sa.text(
            "INSERT INTO service_state (key, value, updated_by) VALUES ('namespace', :v, 'migration')"
        ).bindparams(v=secrets.token_hex(4))
    )
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_triggers_up()
    else:
        _postgres_triggers_up()


FIXED_COLUMNS = "coin, network, address, address_tag, amount, account"


def _sqlite_triggers_up() -> None:
    for ddl in (
        f"""CREATE TRIGGER trg_intents_insert_guard BEFORE INSERT ON withdrawal_intents
        WHEN NEW.status <> 'queued' OR NEW.withdraw_order_id IS NOT NULL
          OR NEW.exchange_withdraw_id IS NOT NULL OR NEW.send_count <> 0
          OR NEW.send_timestamp_ms IS NOT NULL
        BEGIN SELECT RAISE(ABORT, '{MSG_INSERT}'); END""",
        """CREATE TRIGGER trg_intents_created AFTER INSERT ON withdrawal_intents
        BEGIN
          INSERT INTO intent_events (intent_id, from_status, to_status, reason, actor, kind, created_at)
          VALUES (NEW.id, NULL, NEW.status, 'enqueued', COALESCE(NEW.enqueued_via, 'sql'),
                  'status', NEW.created_at);
        END""",
        f"""CREATE TRIGGER trg_intents_status_guard BEFORE UPDATE OF status ON withdrawal_intents
        WHEN NEW.status IS NOT OLD.status AND NEW.version = OLD.version
        BEGIN SELECT RAISE(ABORT, '{MSG_STATUS}'); END""",
        f"""CREATE TRIGGER trg_intents_fixed BEFORE UPDATE OF {FIXED_COLUMNS} ON withdrawal_intents
        WHEN NEW.coin IS NOT OLD.coin OR NEW.network IS NOT OLD.network
          OR NEW.address IS NOT OLD.address OR NEW.address_tag IS NOT OLD.address_tag
          OR NEW.amount IS NOT OLD.amount OR NEW.account IS NOT OLD.account
        BEGIN SELECT RAISE(ABORT, '{MSG_FIXED}'); END""",
        f"""CREATE TRIGGER trg_intents_order_id_fixed BEFORE UPDATE OF withdraw_order_id
        ON withdrawal_intents
        WHEN OLD.withdraw_order_id IS NOT NULL AND NEW.withdraw_order_id IS NOT OLD.withdraw_order_id
        BEGIN SELECT RAISE(ABORT, '{MSG_ORDER_ID}'); END""",
        f"""CREATE TRIGGER trg_events_no_update BEFORE UPDATE ON intent_events
        BEGIN SELECT RAISE(ABORT, '{MSG_APPEND}'); END""",
        f"""CREATE TRIGGER trg_events_no_delete BEFORE DELETE ON intent_events
        BEGIN SELECT RAISE(ABORT, '{MSG_APPEND}'); END""",
    ):
        op.execute(ddl)


def _postgres_triggers_up() -> None:
    op.execute(f"""
    CREATE FUNCTION treasury_intents_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status <> 'queued' OR NEW.withdraw_order_id IS NOT NULL
         OR NEW.exchange_withdraw_id IS NOT NULL OR NEW.send_count <> 0
         OR NEW.send_timestamp_ms IS NOT NULL THEN
        RAISE EXCEPTION '{MSG_INSERT}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""
    CREATE FUNCTION treasury_intents_created() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO intent_events (intent_id, from_status, to_status, reason, actor, kind, created_at)
      VALUES (NEW.id, NULL, NEW.status, 'enqueued', COALESCE(NEW.enqueued_via, 'sql'),
              'status', NEW.created_at);
      RETURN NULL;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_intents_update_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status IS DISTINCT FROM OLD.status AND NEW.version = OLD.version THEN
        RAISE EXCEPTION '{MSG_STATUS}' USING ERRCODE = 'check_violation';
      END IF;
      IF NEW.coin IS DISTINCT FROM OLD.coin OR NEW.network IS DISTINCT FROM OLD.network
         OR NEW.address IS DISTINCT FROM OLD.address
         OR NEW.address_tag IS DISTINCT FROM OLD.address_tag
         OR NEW.amount IS DISTINCT FROM OLD.amount OR NEW.account IS DISTINCT FROM OLD.account THEN
        RAISE EXCEPTION '{MSG_FIXED}' USING ERRCODE = 'check_violation';
      END IF;
      IF OLD.withdraw_order_id IS NOT NULL
         AND NEW.withdraw_order_id IS DISTINCT FROM OLD.withdraw_order_id THEN
        RAISE EXCEPTION '{MSG_ORDER_ID}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '{MSG_APPEND}' USING ERRCODE = 'check_violation';
    END $$""")
    op.execute("""
    CREATE FUNCTION treasury_intents_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('treasury_intents', NEW.account);
      RETURN NULL;
    END $$""")
    op.execute("""CREATE TRIGGER trg_intents_insert_guard BEFORE INSERT ON withdrawal_intents
        FOR EACH ROW EXECUTE FUNCTION treasury_intents_insert_guard()""")
    op.execute("""CREATE TRIGGER trg_intents_created AFTER INSERT ON withdrawal_intents
        FOR EACH ROW EXECUTE FUNCTION treasury_intents_created()""")
    op.execute("""CREATE TRIGGER trg_intents_update_guard BEFORE UPDATE ON withdrawal_intents
        FOR EACH ROW EXECUTE FUNCTION treasury_intents_update_guard()""")
    op.execute("""CREATE TRIGGER trg_events_append_only BEFORE UPDATE OR DELETE ON intent_events
        FOR EACH ROW EXECUTE FUNCTION treasury_events_append_only()""")
    op.execute("""CREATE TRIGGER trg_intents_notify AFTER INSERT OR UPDATE OF status
        ON withdrawal_intents FOR EACH ROW WHEN (NEW.status = 'queued')
        EXECUTE FUNCTION treasury_intents_notify()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in (
            ("trg_intents_insert_guard", "withdrawal_intents"),
            ("trg_intents_created", "withdrawal_intents"),
            ("trg_intents_update_guard", "withdrawal_intents"),
            ("trg_intents_notify", "withdrawal_intents"),
            ("trg_events_append_only", "intent_events"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for fn in (
            "treasury_intents_insert_guard",
            "treasury_intents_created",
            "treasury_intents_update_guard",
            "treasury_events_append_only",
            "treasury_intents_notify",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {fn}()")
    else:
        for trigger in (
            "trg_intents_insert_guard",
            "trg_intents_created",
            "trg_intents_status_guard",
            "trg_intents_fixed",
            "trg_intents_order_id_fixed",
            "trg_events_no_update",
            "trg_events_no_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_table("sender_leases")
    op.drop_table("service_state")
    op.drop_index("ix_intent_approvals_intent_id", table_name="intent_approvals")
    op.drop_table("intent_approvals")
    op.drop_table("whitelist_entries")
    op.drop_index("ix_intent_events_intent_id", table_name="intent_events")
    op.drop_table("intent_events")
    op.drop_index("ix_withdrawal_intents_created_at", table_name="withdrawal_intents")
    op.drop_index(
        "ix_withdrawal_intents_account_send_timestamp_ms", table_name="withdrawal_intents"
    )
    op.drop_index(
        "ix_withdrawal_intents_status_account_not_before", table_name="withdrawal_intents"
    )
    op.drop_table("withdrawal_intents")
