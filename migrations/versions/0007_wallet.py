"""The wallet a withdrawal debits: ``withdrawal_intents.wallet``.

``spot`` or ``funding``; NULL on a queued intent means "the account's default wallet"
(``TREASURY_WALLET``, or ``TREASURY_ACCOUNT_<NAME>_WALLET``), which the worker writes into
the row when it commits to send, so the record always says which wallet a send debited.
Once set it never changes (a trigger, like the order id's). Rows sent before this
revision keep NULL: they were sent without ``walletType`` (the wallet chosen in the
account's settings on Binance).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MSG_WALLET = "withdrawal_intents: wallet is fixed once set"
CHECK = "wallet IS NULL OR wallet IN ('spot', 'funding')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # ADD COLUMN, not a table rebuild: a rebuild would drop the intents' triggers
        op.execute(
            "ALTER TABLE withdrawal_intents ADD COLUMN wallet VARCHAR(16) "
            f"CONSTRAINT ck_withdrawal_intents_wallet_known CHECK ({CHECK})"
        )
        op.execute(f"""CREATE TRIGGER trg_intents_wallet_fixed BEFORE UPDATE OF wallet
        ON withdrawal_intents
        WHEN OLD.wallet IS NOT NULL AND NEW.wallet IS NOT OLD.wallet
        BEGIN SELECT RAISE(ABORT, '{MSG_WALLET}'); END""")
        return
    op.execute("ALTER TABLE withdrawal_intents ADD COLUMN wallet VARCHAR(16)")
    op.create_check_constraint("wallet_known", "withdrawal_intents", CHECK)
    op.execute(f"""
    CREATE FUNCTION treasury_intents_wallet_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF OLD.wallet IS NOT NULL AND NEW.wallet IS DISTINCT FROM OLD.wallet THEN
        RAISE EXCEPTION '{MSG_WALLET}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_intents_wallet_fixed BEFORE UPDATE OF wallet
    ON withdrawal_intents FOR EACH ROW EXECUTE FUNCTION treasury_intents_wallet_guard()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER trg_intents_wallet_fixed")
        op.execute("ALTER TABLE withdrawal_intents DROP COLUMN wallet")
        return
    op.execute("DROP TRIGGER trg_intents_wallet_fixed ON withdrawal_intents")
    op.execute("DROP FUNCTION treasury_intents_wallet_guard()")
    op.drop_constraint("wallet_known", "withdrawal_intents", type_="check")
    op.execute("ALTER TABLE withdrawal_intents DROP COLUMN wallet")
