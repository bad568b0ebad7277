"""The address book leaves a record: per-account entries and ``whitelist_events``.

* ``whitelist_entries`` gains ``account`` (the destination key becomes account, coin,
  network, address, tag), ``version`` (1 on insert; every UPDATE must add one),
  ``changed_by`` and ``change_reason`` (the actor and reason of the latest change, written
  in the same statement as the change).
* ``whitelist_events``: append-only, one row per change of an entry (``add``, ``disable``,
  ``enable``, ``edit``), written by triggers from the entry's own row, so a change made
  with raw SQL is recorded like one made by the treasury (an INSERT without an actor is
  recorded as by ``sql``).
* The database refuses: DELETE of an entry (disable it instead); an UPDATE without the
  version bump and a non-empty actor and reason; a change of an entry's destination
  (account, coin, network, address, tag) or of its ``created_at``; an INSERT whose
  ``created_at`` is not the database's clock (the daemon's cooling period runs from it);
  any UPDATE or DELETE of ``whitelist_events``.
* Every existing entry gets an ``add`` event by ``migration``.

SQLite: the table is rebuilt once here (the unique key changes), before its triggers
exist; a later migration must not rebuild it (a rebuild drops the triggers).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MSG_DELETE = "whitelist_entries: rows are never deleted; disable the entry instead"
MSG_UPDATE = (
    "whitelist_entries: every change needs version = version + 1 and a non-empty "
    "changed_by and change_reason (use treasury whitelist disable/enable)"
)
MSG_FIXED = (
    "whitelist_entries: account, coin, network, address, address_tag, tag_key and "
    "created_at are fixed; add a new entry and disable this one"
)
MSG_INSERT = (
    "whitelist_entries: a new entry starts at version 1 and its created_at is the "
    "database clock (leave created_at out of the INSERT)"
)
MSG_APPEND = "whitelist_events is append-only"
SQL_ACTOR = "sql"
SQL_REASON = "inserted by SQL without an actor or a reason"
MIGRATION_REASON = "on the address book before its changes were recorded (migration 0009)"
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
KINDS = "'add', 'disable', 'enable', 'edit'"
# how far an INSERT's created_at may be from the database's clock (seconds)
SKEW_S = 300


def _event_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("coin", sa.String(20), nullable=False),
        sa.Column("network", sa.String(32), nullable=False),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("address_tag", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column(
            "created_at", UTCDateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")
        ),
    ]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("whitelist_entries", recreate="always" if sqlite else "auto") as b:
        b.add_column(sa.Column("account", sa.String(64), nullable=False, server_default="default"))
        b.add_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
        b.add_column(sa.Column("changed_by", sa.String(128), nullable=True))
        b.add_column(sa.Column("change_reason", sa.Text, nullable=True))
        b.drop_constraint("uq_whitelist_destination", type_="unique")
        b.create_unique_constraint(
            "uq_whitelist_destination", ["account", "coin", "network", "address", "tag_key"]
        )
        b.create_check_constraint("account_nonempty", "length(account) > 0")
    op.create_table(
        "whitelist_events",
        *_event_columns(),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="kind_known"),
        sa.CheckConstraint("length(trim(actor)) > 0", name="actor_nonempty"),
        sa.CheckConstraint("length(trim(reason)) > 0", name="reason_nonempty"),
    )
    op.create_index("ix_whitelist_events_entry_id", "whitelist_events", ["entry_id"])
    op.create_index("ix_whitelist_events_account", "whitelist_events", ["account"])
    # every entry has a history: the ones already here were added before it was kept
    now = SQLITE_NOW if sqlite else "CURRENT_TIMESTAMP"
    op.execute(
        sa.text(
            "UPDATE whitelist_entries SET changed_by = 'migration', change_reason = :r"
        ).bindparams(r=MIGRATION_REASON)
    )
    op.execute(
        sa.text(
            "INSERT INTO whitelist_events (entry_id, account, coin, network, address, "
            "address_tag, kind, actor, reason, version, created_at) "
            "SELECT id, account, coin, network, address, address_tag, 'add', 'migration', "
            f":r, version, {now} FROM whitelist_entries ORDER BY id"
        ).bindparams(r=MIGRATION_REASON)
    )
    if sqlite:
        _sqlite_triggers_up()
    else:
        _postgres_triggers_up()


_EVENT_INSERT = """INSERT INTO whitelist_events (entry_id, account, coin, network, address,
      address_tag, kind, actor, reason, version, created_at)
    VALUES (NEW.id, NEW.account, NEW.coin, NEW.network, NEW.address, NEW.address_tag, {kind},
      {actor}, {reason}, NEW.version, {now})"""


def _sqlite_triggers_up() -> None:
    fixed = " OR ".join(
        f"NEW.{c} IS NOT OLD.{c}"
        for c in (
            "id",
            "account",
            "coin",
            "network",
            "address",
            "address_tag",
            "tag_key",
            "created_at",
        )
    )
    add_event = _EVENT_INSERT.format(
        kind="'add'",
        actor=f"COALESCE(NULLIF(trim(NEW.changed_by), ''), '{SQL_ACTOR}')",
        reason=f"COALESCE(NULLIF(trim(NEW.change_reason), ''), '{SQL_REASON}')",
        now=SQLITE_NOW,
    )
    change_event = _EVENT_INSERT.format(
        kind=(
            "CASE WHEN NEW.enabled = OLD.enabled THEN 'edit' "
            "WHEN NEW.enabled THEN 'enable' ELSE 'disable' END"
        ),
        actor="NEW.changed_by",
        reason="NEW.change_reason",
        now=SQLITE_NOW,
    )
    for ddl in (
        f"""CREATE TRIGGER trg_whitelist_insert_guard BEFORE INSERT ON whitelist_entries
        WHEN NEW.version IS NOT 1 OR julianday(NEW.created_at) IS NULL
          OR abs(julianday(NEW.created_at) - julianday('now')) * 86400 > {SKEW_S}
        BEGIN SELECT RAISE(ABORT, '{MSG_INSERT}'); END""",
        f"""CREATE TRIGGER trg_whitelist_added AFTER INSERT ON whitelist_entries
        BEGIN {add_event}; END""",
        f"""CREATE TRIGGER trg_whitelist_update_guard BEFORE UPDATE ON whitelist_entries
        WHEN NEW.version IS NOT OLD.version + 1
          OR NEW.changed_by IS NULL OR length(trim(NEW.changed_by)) = 0
          OR NEW.change_reason IS NULL OR length(trim(NEW.change_reason)) = 0
        BEGIN SELECT RAISE(ABORT, '{MSG_UPDATE}'); END""",
        f"""CREATE TRIGGER trg_whitelist_fixed BEFORE UPDATE ON whitelist_entries
        WHEN {fixed}
        BEGIN SELECT RAISE(ABORT, '{MSG_FIXED}'); END""",
        f"""CREATE TRIGGER trg_whitelist_changed AFTER UPDATE ON whitelist_entries
        BEGIN {change_event}; END""",
        f"""CREATE TRIGGER trg_whitelist_no_delete BEFORE DELETE ON whitelist_entries
        BEGIN SELECT RAISE(ABORT, '{MSG_DELETE}'); END""",
        f"""CREATE TRIGGER trg_whitelist_events_no_update BEFORE UPDATE ON whitelist_events
        BEGIN SELECT RAISE(ABORT, '{MSG_APPEND}'); END""",
        f"""CREATE TRIGGER trg_whitelist_events_no_delete BEFORE DELETE ON whitelist_events
        BEGIN SELECT RAISE(ABORT, '{MSG_APPEND}'); END""",
    ):
        op.execute(ddl)


def _postgres_triggers_up() -> None:
    fixed = " OR ".join(
        f"NEW.{c} IS DISTINCT FROM OLD.{c}"
        for c in (
            "id",
            "account",
            "coin",
            "network",
            "address",
            "address_tag",
            "tag_key",
            "created_at",
        )
    )
    add_event = _EVENT_INSERT.format(
        kind="'add'",
        actor=f"COALESCE(NULLIF(btrim(NEW.changed_by), ''), '{SQL_ACTOR}')",
        reason=f"COALESCE(NULLIF(btrim(NEW.change_reason), ''), '{SQL_REASON}')",
        now="clock_timestamp()",
    )
    change_event = _EVENT_INSERT.format(
        kind=(
            "CASE WHEN NEW.enabled = OLD.enabled THEN 'edit' "
            "WHEN NEW.enabled THEN 'enable' ELSE 'disable' END"
        ),
        actor="NEW.changed_by",
        reason="NEW.change_reason",
        now="clock_timestamp()",
    )
    op.execute(f"""
    CREATE FUNCTION treasury_whitelist_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.version IS DISTINCT FROM 1 OR NEW.created_at IS NULL
         OR abs(extract(epoch FROM (NEW.created_at - clock_timestamp()))) > {SKEW_S} THEN
        RAISE EXCEPTION '{MSG_INSERT}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_whitelist_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      {add_event};
      RETURN NULL;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_whitelist_update_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.version IS DISTINCT FROM OLD.version + 1
         OR NEW.changed_by IS NULL OR length(btrim(NEW.changed_by)) = 0
         OR NEW.change_reason IS NULL OR length(btrim(NEW.change_reason)) = 0 THEN
        RAISE EXCEPTION '{MSG_UPDATE}' USING ERRCODE = 'check_violation';
      END IF;
      IF {fixed} THEN
        RAISE EXCEPTION '{MSG_FIXED}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_whitelist_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      {change_event};
      RETURN NULL;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_whitelist_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '{MSG_DELETE}' USING ERRCODE = 'check_violation';
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_whitelist_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '{MSG_APPEND}' USING ERRCODE = 'check_violation';
    END $$""")
    for trigger, when, table, fn in (
        ("trg_whitelist_insert_guard", "BEFORE INSERT", "whitelist_entries", "insert_guard"),
        ("trg_whitelist_added", "AFTER INSERT", "whitelist_entries", "added"),
        ("trg_whitelist_update_guard", "BEFORE UPDATE", "whitelist_entries", "update_guard"),
        ("trg_whitelist_changed", "AFTER UPDATE", "whitelist_entries", "changed"),
        ("trg_whitelist_no_delete", "BEFORE DELETE", "whitelist_entries", "no_delete"),
        (
            "trg_whitelist_events_append_only",
            "BEFORE UPDATE OR DELETE",
            "whitelist_events",
            "events_append_only",
        ),
    ):
        op.execute(
            f"CREATE TRIGGER {trigger} {when} ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION treasury_whitelist_{fn}()"
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for trigger in (
            "trg_whitelist_insert_guard",
            "trg_whitelist_added",
            "trg_whitelist_update_guard",
            "trg_whitelist_fixed",
            "trg_whitelist_changed",
            "trg_whitelist_no_delete",
            "trg_whitelist_events_no_update",
            "trg_whitelist_events_no_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    else:
        for trigger, table in (
            ("trg_whitelist_insert_guard", "whitelist_entries"),
            ("trg_whitelist_added", "whitelist_entries"),
            ("trg_whitelist_update_guard", "whitelist_entries"),
            ("trg_whitelist_changed", "whitelist_entries"),
            ("trg_whitelist_no_delete", "whitelist_entries"),
            ("trg_whitelist_events_append_only", "whitelist_events"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for fn in (
            "insert_guard",
            "added",
            "update_guard",
            "changed",
            "no_delete",
            "events_append_only",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS treasury_whitelist_{fn}()")
    op.drop_index("ix_whitelist_events_account", table_name="whitelist_events")
    op.drop_index("ix_whitelist_events_entry_id", table_name="whitelist_events")
    op.drop_table("whitelist_events")
    # one account's book again: where accounts listed the same destination, keep the oldest
    op.execute(
        "DELETE FROM whitelist_entries WHERE id NOT IN (SELECT min(id) FROM whitelist_entries "
        "GROUP BY coin, network, address, tag_key)"
    )
    with op.batch_alter_table("whitelist_entries", recreate="always" if sqlite else "auto") as b:
        b.drop_constraint("account_nonempty", type_="check")
        b.drop_constraint("uq_whitelist_destination", type_="unique")
        b.create_unique_constraint(
            "uq_whitelist_destination", ["coin", "network", "address", "tag_key"]
        )
        b.drop_column("change_reason")
        b.drop_column("changed_by")
        b.drop_column("version")
        b.drop_column("account")
