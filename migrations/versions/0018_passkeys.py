"""Passkeys (WebAuthn): ``operator_invites`` and ``operator_passkeys``.

* ``operator_invites``: a single-use, expiring invitation for a registered operator to
  register a passkey (``treasury operator invite``). The token itself is shown once and
  kept as its sha256 only (``token_sha256``). The one update a row takes is its use,
  ``used_at`` going from NULL to set, once; nothing else ever changes, nothing is deleted.
* ``operator_passkeys``: an operator's WebAuthn credential: ``credential_id``
  (base64url, unique), ``public_key`` (base64 of its SubjectPublicKeyInfo DER), ``alg``
  (COSE: -7 ES256, -8 EdDSA), the last ``sign_count`` seen, the ``rp_id`` and ``origin``
  it was registered for, and the invite it was registered with (``invite_id``, unique:
  one passkey per invite). The database refuses a passkey whose invite is not an unused
  invite of the same operator; it never takes a DELETE; an UPDATE may only raise
  ``sign_count`` or set the removal (``removed_*``) once, after which the row is frozen.

A passkey approval is stored in the approval tables' ``signature`` column (0008, 0011) as
a JSON document (``treasury.domain.webauthn.PasskeyProof``): no column changes there.

ADD tables and triggers only.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

MSG_INV_DELETE = "operator_invites: an invite is never deleted (it expires)"
MSG_INV_FIXED = "operator_invites: only used_at is set, once"
MSG_PK_DELETE = (
    "operator_passkeys: a passkey is never deleted; remove it (treasury operator remove-passkey)"
)
MSG_PK_INVITE = "operator_passkeys: a passkey needs an unused invite of the same operator"
MSG_PK_FIXED = (
    "operator_passkeys: a credential never changes; sign_count only grows, a removal is "
    "set once and freezes the row"
)
INV_FIXED = ("id", "operator", "token_sha256", "created_by", "created_at", "expires_at")
PK_FIXED = (
    "id",
    "operator",
    "credential_id",
    "public_key",
    "alg",
    "rp_id",
    "origin",
    "invite_id",
    "created_at",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    now = sa.text("CURRENT_TIMESTAMP")
    op.create_table(
        "operator_invites",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "operator",
            sa.String(128),
            sa.ForeignKey("operators.name", name="fk_operator_invites_operator_operators"),
            nullable=False,
        ),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=now),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("length(token_sha256) = 64", name="ck_operator_invites_sha256"),
    )
    op.create_table(
        "operator_passkeys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "operator",
            sa.String(128),
            sa.ForeignKey("operators.name", name="fk_operator_passkeys_operator_operators"),
            nullable=False,
        ),
        sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("alg", sa.Integer, nullable=False),
        sa.Column("sign_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rp_id", sa.String(253), nullable=False),
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column(
            "invite_id",
            sa.Integer,
            sa.ForeignKey("operator_invites.id", name="fk_operator_passkeys_invite_id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=now),
        sa.Column("removed_by", sa.String(128), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("removed_reason", sa.Text, nullable=True),
        sa.CheckConstraint("alg IN (-7, -8)", name="ck_operator_passkeys_alg"),
        sa.CheckConstraint(
            "sign_count >= 0 AND sign_count < 4294967296", name="ck_operator_passkeys_count"
        ),
    )
    op.create_index("ix_operator_passkeys_operator", "operator_passkeys", ["operator"])
    if sqlite:
        inv_changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in INV_FIXED)
        pk_changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in PK_FIXED)
        op.execute(f"""CREATE TRIGGER trg_operator_invites_no_delete
        BEFORE DELETE ON operator_invites
        BEGIN SELECT RAISE(ABORT, '{MSG_INV_DELETE}'); END""")
        op.execute(f"""CREATE TRIGGER trg_operator_invites_fixed
        BEFORE UPDATE ON operator_invites
        WHEN {inv_changed} OR OLD.used_at IS NOT NULL OR NEW.used_at IS NULL
        BEGIN SELECT RAISE(ABORT, '{MSG_INV_FIXED}'); END""")
        op.execute(f"""CREATE TRIGGER trg_operator_passkeys_no_delete
        BEFORE DELETE ON operator_passkeys
        BEGIN SELECT RAISE(ABORT, '{MSG_PK_DELETE}'); END""")
        op.execute(f"""CREATE TRIGGER trg_operator_passkeys_invite
        BEFORE INSERT ON operator_passkeys
        WHEN NOT EXISTS (SELECT 1 FROM operator_invites i WHERE i.id = NEW.invite_id
                         AND i.operator = NEW.operator AND i.used_at IS NULL)
          OR NEW.removed_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, '{MSG_PK_INVITE}'); END""")
        op.execute(f"""CREATE TRIGGER trg_operator_passkeys_fixed
        BEFORE UPDATE ON operator_passkeys
        WHEN {pk_changed} OR OLD.removed_at IS NOT NULL
          OR NEW.sign_count < OLD.sign_count
          OR (NEW.removed_at IS NULL AND (NEW.removed_by IS NOT NULL
                                          OR NEW.removed_reason IS NOT NULL))
        BEGIN SELECT RAISE(ABORT, '{MSG_PK_FIXED}'); END""")
        return
    inv_changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in INV_FIXED)
    pk_changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in PK_FIXED)
    op.execute(f"""
    CREATE FUNCTION treasury_operator_invites_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION '{MSG_INV_DELETE}' USING ERRCODE = 'check_violation';
      END IF;
      IF {inv_changed} OR OLD.used_at IS NOT NULL OR NEW.used_at IS NULL THEN
        RAISE EXCEPTION '{MSG_INV_FIXED}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_operator_invites_guard
    BEFORE UPDATE OR DELETE ON operator_invites
    FOR EACH ROW EXECUTE FUNCTION treasury_operator_invites_guard()""")
    op.execute("""CREATE TRIGGER trg_operator_invites_no_truncate
    BEFORE TRUNCATE ON operator_invites
    FOR EACH STATEMENT EXECUTE FUNCTION treasury_operator_invites_guard()""")
    op.execute(f"""
    CREATE FUNCTION treasury_operator_passkeys_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION '{MSG_PK_DELETE}' USING ERRCODE = 'check_violation';
      END IF;
      IF TG_OP = 'INSERT' THEN
        IF NEW.removed_at IS NOT NULL OR NOT EXISTS (
            SELECT 1 FROM operator_invites i WHERE i.id = NEW.invite_id
            AND i.operator = NEW.operator AND i.used_at IS NULL) THEN
          RAISE EXCEPTION '{MSG_PK_INVITE}' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
      END IF;
      IF {pk_changed} OR OLD.removed_at IS NOT NULL
         OR NEW.sign_count < OLD.sign_count
         OR (NEW.removed_at IS NULL AND (NEW.removed_by IS NOT NULL
                                         OR NEW.removed_reason IS NOT NULL)) THEN
        RAISE EXCEPTION '{MSG_PK_FIXED}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute("""CREATE TRIGGER trg_operator_passkeys_guard
    BEFORE INSERT OR UPDATE OR DELETE ON operator_passkeys
    FOR EACH ROW EXECUTE FUNCTION treasury_operator_passkeys_guard()""")
    op.execute("""CREATE TRIGGER trg_operator_passkeys_no_truncate
    BEFORE TRUNCATE ON operator_passkeys
    FOR EACH STATEMENT EXECUTE FUNCTION treasury_operator_passkeys_guard()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in (
            "trg_operator_passkeys_fixed",
            "trg_operator_passkeys_invite",
            "trg_operator_passkeys_no_delete",
            "trg_operator_invites_fixed",
            "trg_operator_invites_no_delete",
        ):
            op.execute(f"DROP TRIGGER {name}")
    else:
        for table in ("operator_passkeys", "operator_invites"):
            op.execute(f"DROP TRIGGER trg_{table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER trg_{table}_guard ON {table}")
            op.execute(f"DROP FUNCTION treasury_{table}_guard()")
    op.drop_index("ix_operator_passkeys_operator", "operator_passkeys")
    op.drop_table("operator_passkeys")
    op.drop_table("operator_invites")
