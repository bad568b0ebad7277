"""The travel rule's answers: ``whitelist_entries.travel_rule_profile`` and
``withdrawal_intents.questionnaire``.

* ``whitelist_entries.travel_rule_profile``: NULL, or the canonical JSON of the entry's
  travel-rule profile (``{"entity": "JP", "questionnaire": {...}}``, see
  ``treasury.domain.travel_rule``). Setting or replacing it is an UPDATE like any other
  change of an entry (migration 0009): version + 1, an actor and a reason, an ``edit``
  event in ``whitelist_events``; the new version needs approving again where the policy
  asks for second persons (migration 0011). The event holds no personal data: the
  treasury writes the profile's sha256 into the reason, never its contents.
* ``withdrawal_intents.questionnaire``: NULL, or an intent's own questionnaire (JSON),
  which replaces its entry's profile. Fixed once the intent is inserted (a trigger, like
  the wallet's in 0007): what was asked for is what is sent.

Both are ADD COLUMN: ``whitelist_entries`` must never be rebuilt on SQLite (0009: a
rebuild drops its triggers), nor ``withdrawal_intents``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

MSG_QUESTIONNAIRE = "withdrawal_intents: questionnaire is fixed once the intent is inserted"


def upgrade() -> None:
    op.execute("ALTER TABLE whitelist_entries ADD COLUMN travel_rule_profile TEXT")
    op.execute("ALTER TABLE withdrawal_intents ADD COLUMN questionnaire TEXT")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"""CREATE TRIGGER trg_intents_questionnaire_fixed
        BEFORE UPDATE OF questionnaire ON withdrawal_intents
        WHEN NEW.questionnaire IS NOT OLD.questionnaire
        BEGIN SELECT RAISE(ABORT, '{MSG_QUESTIONNAIRE}'); END""")
        return
    op.execute(f"""
    CREATE FUNCTION treasury_intents_questionnaire_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.questionnaire IS DISTINCT FROM OLD.questionnaire THEN
        RAISE EXCEPTION '{MSG_QUESTIONNAIRE}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_intents_questionnaire_fixed
    BEFORE UPDATE OF questionnaire ON withdrawal_intents
    FOR EACH ROW EXECUTE FUNCTION treasury_intents_questionnaire_guard()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER trg_intents_questionnaire_fixed")
    else:
        op.execute("DROP TRIGGER trg_intents_questionnaire_fixed ON withdrawal_intents")
        op.execute("DROP FUNCTION treasury_intents_questionnaire_guard()")
    op.execute("ALTER TABLE withdrawal_intents DROP COLUMN questionnaire")
    # SQLite's DROP COLUMN edits the table in place (no rebuild): the triggers stay
    op.execute("ALTER TABLE whitelist_entries DROP COLUMN travel_rule_profile")
