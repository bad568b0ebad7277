"""The withdrawal policy lives in the ledger: ``policy_versions``, append-only.

One row per version of the policy (1, 2, 3…), its canonical TOML text and sha256, who
applied it and why, and, when a second person had to approve it, who did. The version in
force is the newest row with ``activated_at`` set; a partial index makes that one lookup
for the daemon, every standby and the CLI alike.

The database refuses:

* DELETE of a version;
* an INSERT that is not the next version (max + 1), whose ``created_at`` is not the
  database's clock, that names an approver, or that is active at once while the version in
  force says changes need a second person (``changes_need_approval``);
* any UPDATE except the one activation of a pending version: ``activated_at``,
  ``approved_by`` and ``approval_signature`` set once, by someone other than the applier,
  on the newest version, nothing else changed.

The database cannot check a signature: every reader does (``services.policy``), and an
activation whose approval does not prove who approved is not in force for any of them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from treasury.adapters.db.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MSG_DELETE = "policy_versions: versions are never deleted; apply a new version instead"
MSG_INSERT = (
    "policy_versions: a new version is max(version) + 1, its created_at is the database "
    "clock (leave it out), it has no approver, and it is active at once only if the "
    "version in force allows changes without approval"
)
MSG_UPDATE = (
    "policy_versions: a version is never changed; the only update activates the newest "
    "pending version, once, approved by someone other than its applier "
    "(treasury policy approve)"
)
FIXED = (
    "version",
    "document",
    "sha256",
    "changes_need_approval",
    "applied_by",
    "reason",
    "created_at",
)
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
SKEW_S = 300  # how far an INSERT's created_at may be from the database's clock (seconds)
ACTIVE = "activated_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("changes_need_approval", sa.Boolean, nullable=False),
        sa.Column("applied_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column(
            "created_at", UTCDateTime(), nullable=False, server_default=sa.text("CURRENT_TIMESTAMP")
        ),
        sa.Column("approved_by", sa.String(128), nullable=True),
        # the approver's Ed25519 signature (base64) over the version's canonical statement;
        # NULL for an approval by name (counted only while no operator is registered)
        sa.Column("approval_signature", sa.Text, nullable=True),
        sa.Column("activated_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.CheckConstraint("length(document) > 0", name="document_nonempty"),
        sa.CheckConstraint("length(sha256) = 64", name="sha256_hex"),
        sa.CheckConstraint("length(trim(applied_by)) > 0", name="applied_by_nonempty"),
        sa.CheckConstraint("length(trim(reason)) > 0", name="reason_nonempty"),
        sa.CheckConstraint(
            "approved_by IS NULL OR length(trim(approved_by)) > 0", name="approved_by_nonempty"
        ),
    )
    op.create_index(
        "ix_policy_versions_active",
        "policy_versions",
        ["version"],
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_triggers_up()
    else:
        _postgres_triggers_up()


def _sqlite_triggers_up() -> None:
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FIXED)
    in_force_needs_approval = (
        "(SELECT changes_need_approval FROM policy_versions WHERE activated_at IS NOT NULL "
        "ORDER BY version DESC LIMIT 1)"
    )
    for ddl in (
        f"""CREATE TRIGGER trg_policy_insert_guard BEFORE INSERT ON policy_versions
        WHEN NEW.version IS NOT (SELECT coalesce(max(version), 0) + 1 FROM policy_versions)
          OR julianday(NEW.created_at) IS NULL
          OR abs(julianday(NEW.created_at) - julianday('now')) * 86400 > {SKEW_S}
          OR NEW.approved_by IS NOT NULL OR NEW.approval_signature IS NOT NULL
          OR (NEW.activated_at IS NOT NULL AND coalesce({in_force_needs_approval}, 0))
        BEGIN SELECT RAISE(ABORT, '{MSG_INSERT}'); END""",
        f"""CREATE TRIGGER trg_policy_update_guard BEFORE UPDATE ON policy_versions
        WHEN {changed}
          OR OLD.activated_at IS NOT NULL OR NEW.activated_at IS NULL
          OR NEW.approved_by IS NULL
          OR lower(trim(NEW.approved_by)) = lower(trim(OLD.applied_by))
          OR OLD.version IS NOT (SELECT max(version) FROM policy_versions)
        BEGIN SELECT RAISE(ABORT, '{MSG_UPDATE}'); END""",
        f"""CREATE TRIGGER trg_policy_no_delete BEFORE DELETE ON policy_versions
        BEGIN SELECT RAISE(ABORT, '{MSG_DELETE}'); END""",
    ):
        op.execute(ddl)


def _postgres_triggers_up() -> None:
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FIXED)
    # two INSERTs of the same next version at once: the primary key refuses the second
    op.execute(f"""
    CREATE FUNCTION treasury_policy_insert_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      next_version integer;
      in_force_needs_approval boolean;
    BEGIN
      SELECT coalesce(max(version), 0) + 1 INTO next_version FROM policy_versions;
      SELECT changes_need_approval INTO in_force_needs_approval FROM policy_versions
        WHERE activated_at IS NOT NULL ORDER BY version DESC LIMIT 1;
      IF NEW.version IS DISTINCT FROM next_version OR NEW.created_at IS NULL
         OR abs(extract(epoch FROM (NEW.created_at - clock_timestamp()))) > {SKEW_S}
         OR NEW.approved_by IS NOT NULL OR NEW.approval_signature IS NOT NULL
         OR (NEW.activated_at IS NOT NULL AND coalesce(in_force_needs_approval, false)) THEN
        RAISE EXCEPTION '{MSG_INSERT}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_policy_update_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF {changed}
         OR OLD.activated_at IS NOT NULL OR NEW.activated_at IS NULL
         OR NEW.approved_by IS NULL
         OR lower(btrim(NEW.approved_by)) = lower(btrim(OLD.applied_by))
         OR OLD.version IS DISTINCT FROM (SELECT max(version) FROM policy_versions) THEN
        RAISE EXCEPTION '{MSG_UPDATE}' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""")
    op.execute(f"""
    CREATE FUNCTION treasury_policy_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '{MSG_DELETE}' USING ERRCODE = 'check_violation';
    END $$""")
    for trigger, when, fn in (
        ("trg_policy_insert_guard", "BEFORE INSERT", "insert_guard"),
        ("trg_policy_update_guard", "BEFORE UPDATE", "update_guard"),
        ("trg_policy_no_delete", "BEFORE DELETE", "no_delete"),
    ):
        op.execute(
            f"CREATE TRIGGER {trigger} {when} ON policy_versions FOR EACH ROW "
            f"EXECUTE FUNCTION treasury_policy_{fn}()"
        )
    # TRUNCATE skips row triggers: refuse it too
    op.execute(
        "CREATE TRIGGER trg_policy_no_truncate BEFORE TRUNCATE ON policy_versions "
        "FOR EACH STATEMENT EXECUTE FUNCTION treasury_policy_no_delete()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in (
            "trg_policy_insert_guard",
            "trg_policy_update_guard",
            "trg_policy_no_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    else:
        for trigger in (
            "trg_policy_insert_guard",
            "trg_policy_update_guard",
            "trg_policy_no_delete",
            "trg_policy_no_truncate",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON policy_versions")
        for fn in ("insert_guard", "update_guard", "no_delete"):
            op.execute(f"DROP FUNCTION IF EXISTS treasury_policy_{fn}()")
    op.drop_index("ix_policy_versions_active", table_name="policy_versions")
    op.drop_table("policy_versions")
