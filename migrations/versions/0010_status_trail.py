"""A status change brings its event (``intent_events.intent_version``); an intent's
``created_at`` is the database's clock.

Since 0001 the database refuses a status change without a version bump. That stopped a
careless ``UPDATE … SET status = 'completed'`` but not a deliberate one: with
``version = version + 1`` it went through and left no event, so the trail no longer told
the intent's story.

Now each status event names the version of the intent it produced (``intent_version``),
and the database refuses an UPDATE that changes an intent's status unless an event for
exactly that change (same intent, from the old status, to the new one, for the new
version) is already in the table, written earlier in the same transaction. The treasury
writes the event first, then the row. A raw status change is still possible for whoever
holds the database owner's credential, but only by writing its event, which is
append-only: the change is on the record with the actor and reason its writer claimed.

Existing events keep ``intent_version`` NULL (notes and the enqueue event have none).

And an intent's ``created_at`` is the database's clock, give or take five minutes (the
treasury writes its own clock; the INSERT may leave it out): it starts the approval
window and the unserved-intent alerts, so a writer must not be able to date it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MSG_NO_EVENT = (
    "withdrawal_intents: a status change needs its event first: INSERT INTO intent_events "
    "(intent_id, from_status, to_status, reason, actor, intent_version) with the new "
    "version, in the same transaction (or use treasury cancel / resolve / resend)"
)
MSG_CREATED = (
    "withdrawal_intents: created_at is set by the database clock (leave it out of the INSERT)"
)
# how far an INSERT's created_at may be from the database's clock (seconds), as in 0009
SKEW_S = 300
EVENT_EXISTS = """EXISTS (SELECT 1 FROM intent_events e
            WHERE e.intent_id = NEW.id AND e.intent_version = NEW.version
              AND e.to_status = NEW.status AND e.from_status = OLD.status)"""


def upgrade() -> None:
    # ADD COLUMN on both databases (a SQLite table rebuild would drop the events' triggers)
    op.add_column("intent_events", sa.Column("intent_version", sa.Integer, nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"""CREATE TRIGGER trg_intents_status_event BEFORE UPDATE OF status
        ON withdrawal_intents
        WHEN NEW.status IS NOT OLD.status AND NOT {EVENT_EXISTS}
        BEGIN SELECT RAISE(ABORT, '{MSG_NO_EVENT}'); END""")
        op.execute(f"""CREATE TRIGGER trg_intents_created_now BEFORE INSERT ON withdrawal_intents
        WHEN julianday(NEW.created_at) IS NULL
          OR abs(julianday(NEW.created_at) - julianday('now')) * 86400 > {SKEW_S}
        BEGIN SELECT RAISE(ABORT, '{MSG_CREATED}'); END""")
        return
    op.execute(f"""
    CREATE FUNCTION treasury_intents_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status IS DISTINCT FROM OLD.status AND NOT {EVENT_EXISTS} THEN
        RAISE EXCEPTION '{MSG_NO_EVENT}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_intents_status_event BEFORE UPDATE OF status
    ON withdrawal_intents FOR EACH ROW EXECUTE FUNCTION treasury_intents_status_event()""")
    op.execute(f"""
    CREATE FUNCTION treasury_intents_created_now() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.created_at IS NULL
         OR abs(extract(epoch FROM (NEW.created_at - clock_timestamp()))) > {SKEW_S} THEN
        RAISE EXCEPTION '{MSG_CREATED}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_intents_created_now BEFORE INSERT ON withdrawal_intents
    FOR EACH ROW EXECUTE FUNCTION treasury_intents_created_now()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER trg_intents_status_event")
        op.execute("DROP TRIGGER trg_intents_created_now")
    else:
        for name in ("status_event", "created_now"):
            op.execute(f"DROP TRIGGER trg_intents_{name} ON withdrawal_intents")
            op.execute(f"DROP FUNCTION treasury_intents_{name}()")
    # SQLite's DROP COLUMN (3.35+) keeps the table's other triggers
    op.drop_column("intent_events", "intent_version")
