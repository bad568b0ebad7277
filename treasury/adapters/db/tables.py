"""The ledger's tables (SQLAlchemy Core). Names of the contract's tables and columns
are a public interface: operators type SQL against them. Change only by migration.

Constraints that an operator's hand-typed INSERT must meet live here, in the
database, not only in Python: amount > 0 and exact, status in the vocabulary,
coin/network non-empty, request_id unique. Triggers (see the initial migration)
add the rest: new rows must start ``queued``, the creation is recorded as an event,
status changes need a version bump, and ``intent_events`` is append-only.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)

from treasury.adapters.db.types import Amount, UTCDateTime
from treasury.domain.status import ALL_STATUSES

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

NOW = text("CURRENT_TIMESTAMP")  # rendered per dialect by the migration; see _now()
_statuses = ", ".join(f"'{s}'" for s in ALL_STATUSES)


def amount_checks(column: str, *, positive: bool) -> list[CheckConstraint]:
    """Exactness and sign of an amount column, written once for both dialects.

    SQLite: the value must be quoted decimal text (digits, one optional point, no
    exponent) with at most 18 decimals. PostgreSQL: NUMERIC, at most 18 decimals.
    """
    sign = ">" if positive else ">="
    sqlite = (
        f"typeof({column}) = 'text' AND {column} GLOB '[0-9]*' "
        f"AND {column} NOT GLOB '*[^0-9.]*' AND {column} NOT GLOB '*.*.*' "
        f"AND {column} NOT GLOB '*.' "
        f"AND (instr({column}, '.') = 0 OR length({column}) - instr({column}, '.') <= 18) "
        f"AND CAST({column} AS REAL) {sign} 0"
    )
    postgres = f"{column} {sign} 0 AND scale({column}) <= 18"
    if not positive:  # an optional amount (the fee): NULL until known
        sqlite = f"{column} IS NULL OR ({sqlite})"
        postgres = f"{column} IS NULL OR ({postgres})"
    name = f"{column}_positive_exact" if positive else f"{column}_exact"
    return [
        CheckConstraint(sqlite, name=name).ddl_if(dialect="sqlite"),
        CheckConstraint(postgres, name=name).ddl_if(dialect="postgresql"),
    ]


withdrawal_intents = Table(
    "withdrawal_intents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("coin", String(20), nullable=False),
    Column("network", String(32), nullable=False),
    Column("address", String(256), nullable=False),
    Column("address_tag", String(128), nullable=True),
    Column("amount", Amount(), nullable=False),
    Column("request_id", String(128), nullable=True, unique=True),
    Column("account", String(64), nullable=False, server_default="default"),
    Column("requested_by", String(128), nullable=True),
    Column("note", Text, nullable=True),
    Column("status", String(32), nullable=False, server_default="queued"),
    Column("status_reason", Text, nullable=True),
    Column("withdraw_order_id", String(64), nullable=True, unique=True),
    Column("exchange_withdraw_id", String(64), nullable=True),
    Column("tx_id", String(256), nullable=True),
    Column("fee", Amount(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=NOW),
    # --- owned by the service (not part of the operator contract) ---
    Column("version", Integer, nullable=False, server_default="0"),
    Column("enqueued_via", String(128), nullable=True),
    Column("not_before", UTCDateTime(), nullable=True),
    Column("held_since", UTCDateTime(), nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("claimed_until", UTCDateTime(), nullable=True),
    Column("send_timestamp_ms", BigInteger, nullable=True),
    Column("send_recv_window_ms", Integer, nullable=True),
    Column("send_count", Integer, nullable=False, server_default="0"),
    Column("absent_checks", Integer, nullable=False, server_default="0"),
    Column("last_checked_at", UTCDateTime(), nullable=True),
    Column("submitted_at", UTCDateTime(), nullable=True),
    Column("settled_at", UTCDateTime(), nullable=True),
    # what the exchange's history reports as `amount` (most likely net of the fee)
    Column("exchange_amount", Amount(), nullable=True),
    # spot | funding; NULL until committed to send = the account's default (migration 0007)
    Column("wallet", String(16), nullable=True),
    # the intent's own travel-rule questionnaire (JSON), replacing its entry's profile;
    # fixed once inserted (migration 0013)
    Column("questionnaire", Text, nullable=True),
    # the travel-rule record id (``trId``) of a localentity/withdraw/apply (migration 0014)
    Column("exchange_tr_id", BigInteger, nullable=True),
    CheckConstraint("length(coin) > 0 AND coin = upper(coin)", name="coin_upper_nonempty"),
    CheckConstraint("length(network) > 0", name="network_nonempty"),
    CheckConstraint("length(address) > 0", name="address_nonempty"),
    CheckConstraint("address_tag IS NULL OR length(address_tag) > 0", name="tag_null_or_set"),
    CheckConstraint("length(account) > 0", name="account_nonempty"),
    CheckConstraint(f"status IN ({_statuses})", name="status_known"),
    CheckConstraint("wallet IS NULL OR wallet IN ('spot', 'funding')", name="wallet_known"),
    *amount_checks("amount", positive=True),
    *amount_checks("fee", positive=False),
    *amount_checks("exchange_amount", positive=False),
    # PostgreSQL's NUMERIC admits 'NaN' (which is > 0 there) and 'Infinity' (migration 0004)
    CheckConstraint("amount < 'Infinity'", name="amount_finite").ddl_if(dialect="postgresql"),
    CheckConstraint("fee IS NULL OR fee < 'Infinity'", name="fee_finite").ddl_if(
        dialect="postgresql"
    ),
    Index(None, "status", "account", "not_before"),
    Index(
        "ix_withdrawal_intents_queued",
        "account",
        "id",
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
    Index(None, "account", "send_timestamp_ms"),
    Index(None, "created_at"),
)

intent_events = Table(
    "intent_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("intent_id", Integer, ForeignKey("withdrawal_intents.id"), nullable=False, index=True),
    Column("from_status", String(32), nullable=True),
    Column("to_status", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("kind", String(32), nullable=False, server_default="status"),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    # migration 0010: the intent version a status change produced (NULL for notes and
    # the enqueue event); the database refuses a status change without this event
    Column("intent_version", Integer, nullable=True),
    CheckConstraint(f"to_status IN ({_statuses})", name="to_status_known"),
    CheckConstraint(
        f"from_status IS NULL OR from_status IN ({_statuses})", name="from_status_known"
    ),
)

whitelist_entries = Table(
    "whitelist_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("coin", String(20), nullable=False),
    Column("network", String(32), nullable=False),
    Column("address", String(256), nullable=False),
    Column("address_tag", String(128), nullable=True),
    Column("label", String(256), nullable=False, server_default=""),
    Column("source", String(16), nullable=False, server_default="manual"),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("usable_from", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=NOW),
    # NULL tags would not collide in a unique constraint; '' stands for "no tag" here.
    Column("tag_key", String(128), nullable=False, server_default=""),
    # migration 0009: per-account entries; every change bumps the version and names its
    # actor and reason, and triggers copy each change into whitelist_events
    Column("account", String(64), nullable=False, server_default="default"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("changed_by", String(128), nullable=True),
    Column("change_reason", Text, nullable=True),
    # migration 0013: the travel-rule profile (canonical JSON, personal data: never logged
    # in full); setting it is an edit like any other (a new version, an event)
    Column("travel_rule_profile", Text, nullable=True),
    CheckConstraint("source IN ('exchange', 'manual')", name="source_known"),
    CheckConstraint("length(coin) > 0 AND length(network) > 0", name="coin_network_nonempty"),
    CheckConstraint("length(address) > 0", name="address_nonempty"),
    CheckConstraint("length(account) > 0", name="account_nonempty"),
    UniqueConstraint(
        "account", "coin", "network", "address", "tag_key", name="uq_whitelist_destination"
    ),
)

# Append-only (triggers): one row per change of a whitelist entry, written by the
# database from the entry's row, whoever made the change.
whitelist_events = Table(
    "whitelist_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", Integer, nullable=False, index=True),
    Column("account", String(64), nullable=False, index=True),
    Column("coin", String(20), nullable=False),
    Column("network", String(32), nullable=False),
    Column("address", String(256), nullable=False),
    Column("address_tag", String(128), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    CheckConstraint("kind IN ('add', 'disable', 'enable', 'edit')", name="kind_known"),
    CheckConstraint("length(trim(actor)) > 0", name="actor_nonempty"),
    CheckConstraint("length(trim(reason)) > 0", name="reason_nonempty"),
)

intent_approvals = Table(
    "intent_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("intent_id", Integer, ForeignKey("withdrawal_intents.id"), nullable=False, index=True),
    Column("approver", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("signature", Text, nullable=True),  # base64 Ed25519 over the intent's statement
    UniqueConstraint("intent_id", "approver", name="uq_approval_once"),
)

# Append-only (triggers, migration 0011): one row per approval of one version of an
# address-book entry; signed over the entry's statement once operators are registered.
whitelist_approvals = Table(
    "whitelist_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", Integer, ForeignKey("whitelist_entries.id"), nullable=False, index=True),
    Column("entry_version", Integer, nullable=False),
    Column("approver", String(128), nullable=False),
    Column("signature", Text, nullable=True),  # base64 Ed25519 over the entry's statement
    Column("reason", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    CheckConstraint("length(trim(approver)) > 0", name="approver_nonempty"),
    CheckConstraint("entry_version >= 1", name="version_positive"),
    # no unique approver: one person counts once, and a forged row in an operator's name
    # must not keep them from filing their real approval
)

operators = Table(
    "operators",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("public_key", String(64), nullable=False, unique=True),
    Column("added_by", String(128), nullable=False),
    Column("added_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("removed_by", String(128), nullable=True),
    Column("removed_at", UTCDateTime(), nullable=True),
    Column("removed_reason", Text, nullable=True),
)

# Passkeys (migration 0018): a single-use, expiring invite to register one (the token is
# kept as its sha256 only), and the operators' WebAuthn credentials; triggers keep an
# invite's only change its use, and a passkey's a growing sign count and its removal.
operator_invites = Table(
    "operator_invites",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("operator", String(128), ForeignKey("operators.name"), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    CheckConstraint("length(token_sha256) = 64", name="ck_operator_invites_sha256"),
)

operator_passkeys = Table(
    "operator_passkeys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("operator", String(128), ForeignKey("operators.name"), nullable=False, index=True),
    Column("credential_id", String(1400), nullable=False, unique=True),  # base64url
    Column("public_key", Text, nullable=False),  # base64 of the SubjectPublicKeyInfo DER
    Column("alg", Integer, nullable=False),  # COSE: -7 ES256, -8 EdDSA
    Column("sign_count", BigInteger, nullable=False, server_default="0"),
    Column("rp_id", String(253), nullable=False),
    Column("origin", String(512), nullable=False),
    Column("invite_id", Integer, ForeignKey("operator_invites.id"), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("removed_by", String(128), nullable=True),
    Column("removed_at", UTCDateTime(), nullable=True),
    Column("removed_reason", Text, nullable=True),
    CheckConstraint("alg IN (-7, -8)", name="ck_operator_passkeys_alg"),
    CheckConstraint(
        "sign_count >= 0 AND sign_count < 4294967296", name="ck_operator_passkeys_count"
    ),
)

# The HTTP API's clients (``treasury api``): a token is kept as its sha256 only.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("scopes", String(64), nullable=False),
    Column("accounts", Text, nullable=True),  # comma-separated; NULL: every account
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("revoked_by", String(128), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("revoked_reason", Text, nullable=True),
)

service_state = Table(
    "service_state",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_by", String(128), nullable=False, server_default="service"),
    Column("updated_at", UTCDateTime(), nullable=False, server_default=NOW),
)

sender_leases = Table(
    "sender_leases",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# Migration 0020: the live `treasury run` processes sharing the accounts (fair share).
# `accounts` is a JSON list of the account names the process can serve.
fleet_members = Table(
    "fleet_members",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("accounts", Text, nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

service_events = Table(
    "service_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("subject", String(256), nullable=False, server_default=""),
    Column("detail", Text, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Index(None, "kind", "subject"),
)

# Withdrawals in this ledger's withdrawOrderId namespace that the ledger cannot account
# for (restore from a backup, failover to a lagging replica, a contradicting record).
# An order id listed here is never sent again; a new row pauses the account.
unmatched_withdrawals = Table(
    "unmatched_withdrawals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("exchange_withdraw_id", String(64), nullable=False),
    Column("withdraw_order_id", String(64), nullable=False, index=True),
    Column("intent_id", Integer, nullable=True, index=True),
    Column("coin", String(20), nullable=False),
    Column("network", String(32), nullable=True),
    Column("address", String(256), nullable=False),
    Column("address_tag", String(128), nullable=True),
    Column("amount", Amount(), nullable=False),
    Column("fee", Amount(), nullable=True),
    Column("exchange_status", Integer, nullable=False),
    Column("apply_time", UTCDateTime(), nullable=True),
    Column("reason", Text, nullable=False),
    Column("found_by", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    *amount_checks("amount", positive=False),
    *amount_checks("fee", positive=False),
    UniqueConstraint("account", "exchange_withdraw_id"),
)

# The withdrawal policy, one row per version (migration 0012; append-only by triggers:
# the one UPDATE allowed activates the newest pending version). The version in force is
# the newest activated row, found by the partial index.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=False),  # canonical TOML (domain.policy_text)
    Column("sha256", String(64), nullable=False),
    Column("changes_need_approval", Boolean, nullable=False),
    Column("applied_by", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("approved_by", String(128), nullable=True),
    Column("approval_signature", Text, nullable=True),  # base64 Ed25519; NULL: by name
    Column("activated_at", UTCDateTime(), nullable=True),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint("length(document) > 0", name="document_nonempty"),
    CheckConstraint("length(sha256) = 64", name="sha256_hex"),
    CheckConstraint("length(trim(applied_by)) > 0", name="applied_by_nonempty"),
    CheckConstraint("length(trim(reason)) > 0", name="reason_nonempty"),
    CheckConstraint(
        "approved_by IS NULL OR length(trim(approved_by)) > 0", name="approved_by_nonempty"
    ),
    Index(
        "ix_policy_versions_active",
        "version",
        sqlite_where=text("activated_at IS NOT NULL"),
        postgresql_where=text("activated_at IS NOT NULL"),
    ),
)

# The transactional outbox (migration 0016): ``intent.status`` rows are written by a
# trigger on INSERT into ``intent_events`` (status events), in the change's transaction;
# ``alert`` rows by the daemon's alert function. ``fanned_at``: its deliveries exist.
OUTBOX_TOPICS = ("intent.status", "alert")
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(32), nullable=False),
    Column("intent_id", Integer, nullable=True),
    Column("payload", Text, nullable=False),  # JSON
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("fanned_at", UTCDateTime(), nullable=True),
    CheckConstraint("topic IN ('intent.status', 'alert')", name="topic_known"),
    Index(
        "ix_outbox_unfanned",
        "id",
        sqlite_where=text("fanned_at IS NULL"),
        postgresql_where=text("fanned_at IS NULL"),
    ),
)

# A receiver of outbox rows (its signing secret is derived, never stored). ``builtin``:
# ``alerts`` for the configured alert channel (its URL is a secret setting: not stored).
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("events", String(128), nullable=False),  # comma-separated topics
    Column("from_outbox_id", Integer, nullable=False, server_default="0"),
    Column("builtin", String(16), nullable=True),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("disabled_at", UTCDateTime(), nullable=True),
    Column("disabled_by", String(128), nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Index(
        "ix_webhook_subscriptions_builtin",
        "builtin",
        unique=True,
        sqlite_where=text("builtin IS NOT NULL AND disabled_at IS NULL"),
        postgresql_where=text("builtin IS NOT NULL AND disabled_at IS NULL"),
    ),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(64), nullable=False, unique=True),
    Column("subscription_id", Integer, ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("outbox_id", Integer, ForeignKey("outbox.id"), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("next_attempt_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("delivered_at", UTCDateTime(), nullable=True),
    UniqueConstraint("subscription_id", "outbox_id"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

# Append-only (triggers): who added or removed a subscription, and why.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", Integer, nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # added | removed
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
)

# The operator console's sign-in (migration 0017; append-only by triggers but for the one
# column each sets once). Tokens and session ids are kept as their sha256 only.
console_logins = Table(
    "console_logins",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("operator", String(128), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    CheckConstraint("length(token_sha256) = 64", name="sha256_hex"),
    CheckConstraint("length(trim(operator)) > 0", name="operator_nonempty"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("session_sha256", String(64), primary_key=True),
    Column("operator", String(128), nullable=False),
    Column("login_id", Integer, ForeignKey("console_logins.id"), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    CheckConstraint("length(session_sha256) = 64", name="sha256_hex"),
)

# The console's passkey sign-in (migration 0019; append-only by triggers but for the one
# column each sets once): single-use, 2-minute challenges, and the sessions they opened.
console_challenges = Table(
    "console_challenges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("challenge", String(64), nullable=False, unique=True),  # base64url
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    CheckConstraint("length(challenge) >= 43", name="length"),
)

console_passkey_sessions = Table(
    "console_passkey_sessions",
    metadata,
    Column("session_sha256", String(64), primary_key=True),
    Column("operator", String(128), nullable=False),
    Column("passkey_id", Integer, ForeignKey("operator_passkeys.id"), nullable=False),
    Column(
        "challenge_id", Integer, ForeignKey("console_challenges.id"), nullable=False, unique=True
    ),
    Column("created_at", UTCDateTime(), nullable=False, server_default=NOW),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
    CheckConstraint("length(session_sha256) = 64", name="sha256_hex"),
)
