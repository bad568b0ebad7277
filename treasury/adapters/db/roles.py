"""Least-privilege PostgreSQL roles: what the daemon, an operator and a bot may do, said
to the database, so it holds whatever client or credential is used.

Three group roles (``NOLOGIN``; people and bots get logins that are members of one):

* ``daemon``   what ``treasury run`` (and ``check``, ``whitelist sync``, ``reconcile``,
               the commands that hold the exchange key) read and write;
* ``operator`` what the admin CLI runs: enqueue, decide (cancel, resolve, resend,
               approve), pause and resume, the address book, remove an operator (adding
               one is the owner's); it reads everything;
* ``bot``      enqueue and read its own intents and their events, nothing else. Row-level
               security makes ``requested_by`` the bot's login (``session_user``): it sees
               only its own rows and cannot enqueue in another name.

No role may UPDATE or DELETE an event or an approval, TRUNCATE, create triggers or
foreign keys, or change the schema: the migrations run as the owner. Every table of the
ledger is classified below for every role; ``statements`` refuses a table that is not, so a
new table cannot be forgotten (nor silently left to whoever had access before).

The triggers run as whoever fired them (``SECURITY INVOKER``, as the migrations create
them): the bot's INSERT of an intent writes its creation event as the bot, so the bot may
INSERT into ``intent_events`` the one row that trigger writes, and only for its own intent.

This module is pure: it makes the SQL; ``treasury db roles`` applies or prints it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Integer, MetaData, Table

from treasury.adapters.db.tables import metadata as ledger_metadata

DEFAULT_PREFIX = "treasury_"
VERSION_TABLE = "alembic_version"  # the migrations' own: every role reads it (schema check)


class Role(StrEnum):
    DAEMON = "daemon"
    OPERATOR = "operator"
    BOT = "bot"


@dataclass(frozen=True)
class Privilege:
    verb: str  # SELECT, INSERT, UPDATE or DELETE
    columns: tuple[str, ...] = ()  # none: the whole row

    def sql(self) -> str:
        return f"{self.verb} ({', '.join(self.columns)})" if self.columns else self.verb


SELECT = Privilege("SELECT")
INSERT = Privilege("INSERT")
UPDATE = Privilege("UPDATE")
DELETE = Privilege("DELETE")

# What an enqueue writes (``ports.store.new_intent_row``): the rest is the service's.
ENQUEUE = Privilege(
    "INSERT",
    (
        "coin",
        "network",
        "address",
        "address_tag",
        "amount",
        "account",
        "request_id",
        "requested_by",
        "note",
        "wallet",
        "questionnaire",
        "status",
        "status_reason",
        "enqueued_via",
        "created_at",
        "updated_at",
    ),
)
# What a person's decision changes (``IntentRepository.transition`` and the fields of
# cancel, resolve, resend, approve); never the destination, the amount or the send data.
DECIDE = Privilege(
    "UPDATE",
    (
        "status",
        "status_reason",
        "version",
        "updated_at",
        "claimed_by",
        "claimed_until",
        "settled_at",
        "exchange_withdraw_id",
        "tx_id",
        "not_before",
        "held_since",
        "absent_checks",
    ),
)
# The row the creation trigger (``trg_intents_created``) writes as the enqueuer.
CREATION_EVENT = Privilege(
    "INSERT", ("intent_id", "from_status", "to_status", "reason", "actor", "kind", "created_at")
)
# An address-book entry as ``WhitelistRepository.add`` writes it: ``created_at`` is the
# database's (the cooling period runs from it), so no role may write one.
BOOK_ADD = Privilege(
    "INSERT",
    (
        "account",
        "coin",
        "network",
        "address",
        "address_tag",
        "tag_key",
        "label",
        "source",
        "enabled",
        "usable_from",
        "version",
        "changed_by",
        "change_reason",
        "travel_rule_profile",
    ),
)
# ``set_enabled`` and ``set_profile``: never ``usable_from`` or ``source`` (they decide
# when an entry is trusted)
BOOK_CHANGE = Privilege(
    "UPDATE",
    (
        "enabled",
        "label",
        "updated_at",
        "version",
        "changed_by",
        "change_reason",
        "travel_rule_profile",
    ),
)
OPERATOR_REMOVE = Privilege("UPDATE", ("removed_by", "removed_at", "removed_reason"))
TOKEN_REVOKE = Privilege("UPDATE", ("revoked_by", "revoked_at", "revoked_reason"))
# ``treasury webhook remove`` (and the runner retiring the alert channel's subscription)
WEBHOOK_REMOVE = Privilege("UPDATE", ("disabled_at", "disabled_by", "disabled_reason"))
OUTBOX_FANNED = Privilege("UPDATE", ("fanned_at",))
LOGIN_USE = Privilege("UPDATE", ("used_at",))
SESSION_END = Privilege("UPDATE", ("ended_at",))
CHALLENGE_USE = Privilege("UPDATE", ("used_at",))
INVITE_USE = Privilege("UPDATE", ("used_at",))
# an approval by passkey raises its sign count; any operator removes a lost passkey at once
PASSKEY_UPDATE = Privilege("UPDATE", ("sign_count", "removed_by", "removed_at", "removed_reason"))

Access = Mapping[Role, tuple[Privilege, ...]]

# Every table of ``tables.metadata``, every role: what it may do there (nothing: ``()``).
ACCESS: Mapping[str, Access] = {
    "withdrawal_intents": {
        Role.DAEMON: (SELECT, UPDATE),
        Role.OPERATOR: (SELECT, ENQUEUE, DECIDE),
        Role.BOT: (SELECT, ENQUEUE),  # its own rows only (row-level security)
    },
    "intent_events": {
        Role.DAEMON: (SELECT, INSERT),
        Role.OPERATOR: (SELECT, INSERT),
        Role.BOT: (SELECT, CREATION_EVENT),  # its own intents' (row-level security)
    },
    "intent_approvals": {
        Role.DAEMON: (SELECT,),
        Role.OPERATOR: (SELECT, INSERT),
        Role.BOT: (),
    },
    # The daemon reads the policy in force and never writes it (so TREASURY_POLICY_FILE
    # seeds an empty ledger only for a daemon running as the owner; operators apply it).
    # Operators apply and approve versions; the triggers allow an UPDATE only to activate
    # the newest pending version, and the table-level UPDATE is what LOCK TABLE needs.
    "policy_versions": {
        Role.DAEMON: (SELECT,),
        Role.OPERATOR: (SELECT, INSERT, UPDATE),
        Role.BOT: (),
    },
    "whitelist_approvals": {  # the daemon counts them inside the commit; people add them
        Role.DAEMON: (SELECT,),
        Role.OPERATOR: (SELECT, INSERT),
        Role.BOT: (),
    },
    "operators": {
        Role.DAEMON: (SELECT,),
        # Removing an approver (a lost key) is any operator's to do at once; adding one is
        # the owner's: an operator who could add operators could add a second key of their
        # own and make any quorum alone.
        Role.OPERATOR: (SELECT, OPERATOR_REMOVE),
        Role.BOT: (),
    },
    # Passkeys. Inviting is the owner's, as adding an operator is: whoever can invite can
    # register a passkey in anyone's name. ``treasury api`` (an operator's login) uses an
    # invite and adds the passkey it was for (the triggers refuse a passkey without an
    # unused invite of the same operator), raises a sign count when it records an
    # approval, and any operator removes a passkey. The daemon reads passkeys to count
    # approvals, never invites.
    "operator_invites": {
        Role.DAEMON: (),
        Role.OPERATOR: (SELECT, INVITE_USE),
        Role.BOT: (),
    },
    "operator_passkeys": {
        Role.DAEMON: (SELECT,),
        Role.OPERATOR: (SELECT, INSERT, PASSKEY_UPDATE),
        Role.BOT: (),
    },
    "whitelist_entries": {  # the daemon's sync adds and disables source=exchange entries
        Role.DAEMON: (SELECT, BOOK_ADD, BOOK_CHANGE),
        Role.OPERATOR: (SELECT, BOOK_ADD, BOOK_CHANGE),
        Role.BOT: (),
    },
    "whitelist_events": {  # written by the entries' triggers, as whoever changed the entry
        Role.DAEMON: (INSERT,),
        Role.OPERATOR: (SELECT, INSERT),
        Role.BOT: (),
    },
    "service_state": {  # the daemon pauses an account and keeps its sweep watermark
        Role.DAEMON: (SELECT, INSERT, UPDATE),
        Role.OPERATOR: (SELECT, INSERT, DELETE),  # pause and resume
        Role.BOT: (),
    },
    "sender_leases": {
        Role.DAEMON: (SELECT, INSERT, UPDATE, DELETE),
        Role.OPERATOR: (SELECT,),  # `check` tells queued intents no daemon serves
        Role.BOT: (),
    },
    "fleet_members": {  # each daemon heartbeats its row, deletes it and expired ones
        Role.DAEMON: (SELECT, INSERT, UPDATE, DELETE),
        Role.OPERATOR: (SELECT,),
        Role.BOT: (),
    },
    "service_events": {
        Role.DAEMON: (SELECT, INSERT),
        Role.OPERATOR: (SELECT, INSERT),
        Role.BOT: (),
    },
    # ``treasury token create / revoke`` and ``treasury api`` (which runs with an operator's
    # login: it enqueues in its clients' names and cancels); a token is its sha256 only
    "api_tokens": {
        Role.DAEMON: (),
        Role.OPERATOR: (SELECT, INSERT, TOKEN_REVOKE),
        Role.BOT: (),
    },
    "unmatched_withdrawals": {
        Role.DAEMON: (SELECT, INSERT),
        Role.OPERATOR: (SELECT,),
        Role.BOT: (),
    },
    # Status rows are written by the intent_events trigger, SECURITY DEFINER (migration
    # 0016): no role needs INSERT for them. The daemon writes its alerts and runs the
    # delivery runner (fan-out marks ``fanned_at``); `treasury webhook run` is the
    # daemon's too.
    "outbox": {
        Role.DAEMON: (SELECT, INSERT, OUTBOX_FANNED),
        Role.OPERATOR: (SELECT,),  # `webhook add` starts a subscription after the newest row
        Role.BOT: (),
    },
    "webhook_subscriptions": {  # the daemon keeps the alert channel's own subscription
        Role.DAEMON: (SELECT, INSERT, WEBHOOK_REMOVE),
        Role.OPERATOR: (SELECT, INSERT, WEBHOOK_REMOVE),
        Role.BOT: (),
    },
    "webhook_deliveries": {
        Role.DAEMON: (SELECT, INSERT, UPDATE),
        Role.OPERATOR: (SELECT,),
        Role.BOT: (),
    },
    "webhook_events": {
        Role.DAEMON: (SELECT, INSERT),
        Role.OPERATOR: (SELECT, INSERT),
        Role.BOT: (),
    },
    # The console (``treasury api``, an operator's login) and ``treasury console login``:
    # a link is made, then spent once (``used_at``); a session is made from it, then ended
    # once (``ended_at``). Neither the daemon nor a bot signs anyone in.
    "console_logins": {
        Role.DAEMON: (),
        Role.OPERATOR: (SELECT, INSERT, LOGIN_USE),
        Role.BOT: (),
    },
    "console_sessions": {
        Role.DAEMON: (),
        Role.OPERATOR: (SELECT, INSERT, SESSION_END),
        Role.BOT: (),
    },
    # Passkey sign-in (0019): a challenge is issued, then spent once (``used_at``); a
    # session is opened with it, then ended once (``ended_at``).
    "console_challenges": {
        Role.DAEMON: (),
        Role.OPERATOR: (SELECT, INSERT, CHALLENGE_USE),
        Role.BOT: (),
    },
    "console_passkey_sessions": {
        Role.DAEMON: (),
        Role.OPERATOR: (SELECT, INSERT, SESSION_END),
        Role.BOT: (),
    },
}

# Beyond USAGE where a role inserts: the daemon moves the intents' id sequence past an id
# the exchange has seen (``unmatched._advance_intent_ids``: setval and last_value).
SEQUENCE_EXTRA: Mapping[str, Access] = {
    "withdrawal_intents": {Role.DAEMON: (SELECT, UPDATE)},
}

_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def role_names(prefix: str = DEFAULT_PREFIX) -> dict[Role, str]:
    """The group roles' names: ``treasury_daemon``, ``treasury_operator``, ``treasury_bot``.

    Raises:
        ValueError: a prefix that is not a plain lower-case SQL name.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"--prefix: {prefix!r} is not a plain SQL name (lower-case letters, digits, "
            "underscores; at most 40 characters)"
        )
    return {role: f"{prefix}{role.value}" for role in Role}


def unclassified(metadata: MetaData = ledger_metadata) -> list[str]:
    """Tables of ``metadata`` (or roles of one) that ``ACCESS`` says nothing about."""
    missing = []
    for name in metadata.tables:
        access = ACCESS.get(name)
        if access is None:
            missing.append(name)
        else:
            missing += [f"{name} for {r.value}" for r in Role if r not in access]
    return missing


def _id_sequence(table: Table) -> str | None:
    """The sequence behind a table's integer primary key (PostgreSQL's SERIAL naming);
    none for a key the writer numbers itself (``autoincrement=False``, policy versions)."""
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and isinstance(pk[0].type, Integer) and pk[0].autoincrement is not False:
        return f"{table.name}_{pk[0].name}_seq"
    return None


def statements(prefix: str = DEFAULT_PREFIX, metadata: MetaData = ledger_metadata) -> list[str]:
    """The SQL that creates the roles (if missing) and sets exactly their grants and row
    policies; run as the tables' owner with CREATEROLE, in one transaction. Idempotent.

    Raises:
        ValueError: a bad prefix, or a table of ``metadata`` not classified in ``ACCESS``.
    """
    names = role_names(prefix)
    missing = unclassified(metadata)
    if missing:
        raise ValueError(
            f"no grants decided for {', '.join(missing)}: classify it in "
            "treasury.adapters.db.roles.ACCESS"
        )
    everyone = ", ".join(names.values())
    sql = [_create_role(name) for name in names.values()]
    sql.append(_schema_create_for_owner_only())
    tables = [metadata.tables[name] for name in sorted(metadata.tables)]
    sql.append(
        f"REVOKE ALL ON TABLE {', '.join([VERSION_TABLE, *(t.name for t in tables)])} "
        f"FROM {everyone}"
    )
    sequences = {t.name: seq for t in tables if (seq := _id_sequence(t)) is not None}
    sql.append(f"REVOKE ALL ON SEQUENCE {', '.join(sequences.values())} FROM {everyone}")
    sql.append(f"GRANT SELECT ON TABLE {VERSION_TABLE} TO {everyone}")
    for table in tables:
        for role, privileges in ACCESS[table.name].items():
            if privileges:
                granted = ", ".join(p.sql() for p in privileges)
                sql.append(f"GRANT {granted} ON TABLE {table.name} TO {names[role]}")
            inserts = any(p.verb == "INSERT" for p in privileges)
            extra = SEQUENCE_EXTRA.get(table.name, {}).get(role, ())
            seq_privileges = (["USAGE"] if inserts else []) + [p.verb for p in extra]
            if seq_privileges and table.name in sequences:
                sql.append(
                    f"GRANT {', '.join(seq_privileges)} ON SEQUENCE {sequences[table.name]} "
                    f"TO {names[role]}"
                )
    sql += _row_security(names)
    return sql


def _create_role(name: str) -> str:
    """Create the group role unless it exists; refuse one that could log in or slip past
    the grants (a superuser or BYPASSRLS role of that name is someone else's).
    ``name`` is a plain SQL name (``role_names`` checks it), so it is written as is."""
    return f"""DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
    CREATE ROLE {name} NOLOGIN;
  ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}'
                AND (rolcanlogin OR rolsuper OR rolbypassrls)) THEN
    RAISE EXCEPTION 'role {name} exists and can log in, is a superuser or bypasses row '
      'security: it must be a plain NOLOGIN group role (give logins IN ROLE {name})';
  END IF;
END $$"""  # noqa: S608


def _schema_create_for_owner_only() -> str:
    """No role but the ledger's owner creates objects in its schema (a bot could otherwise
    shadow a table or function). PostgreSQL 15 and later already grant PUBLIC no CREATE
    on ``public``; before 15 they do, so the owner of the tables is granted it explicitly
    before PUBLIC loses it. Skipped (the DBA's to decide) unless run by the schema owner."""
    return """DO $$
DECLARE
  owner name := (SELECT tableowner FROM pg_tables
                 WHERE schemaname = current_schema() AND tablename = 'withdrawal_intents');
BEGIN
  IF pg_has_role((SELECT nspowner FROM pg_namespace WHERE nspname = current_schema()),
                 'USAGE') THEN
    EXECUTE format('GRANT CREATE ON SCHEMA %I TO %I', current_schema(), owner);
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
  END IF;
END $$"""


def _row_security(names: Mapping[Role, str]) -> list[str]:
    """Bots see and enqueue only rows whose ``requested_by`` is their login; the daemon and
    operators see every row. The owner is not subject to it (no FORCE)."""
    staff = f"{names[Role.DAEMON]}, {names[Role.OPERATOR]}"
    bot = names[Role.BOT]
    own_intents = "SELECT id FROM withdrawal_intents WHERE requested_by = session_user"
    policies = {
        "withdrawal_intents": [
            (
                f"{bot}_own",
                f"TO {bot} USING (requested_by = session_user) "
                "WITH CHECK (requested_by = session_user)",
            ),
        ],
        "intent_events": [
            (f"{bot}_own", f"FOR SELECT TO {bot} USING (intent_id IN ({own_intents}))"),
            (
                f"{bot}_created",
                f"FOR INSERT TO {bot} WITH CHECK (intent_id IN ({own_intents}) "
                "AND from_status IS NULL AND to_status = 'queued' AND kind = 'status' "
                "AND reason = 'enqueued')",
            ),
        ],
    }
    sql = []
    for table, own in policies.items():
        sql.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        for name, body in [
            (f"{names[Role.DAEMON]}_operator_all", f"TO {staff} USING (true) WITH CHECK (true)"),
            *own,
        ]:
            sql.append(f"DROP POLICY IF EXISTS {name} ON {table}")
            sql.append(f"CREATE POLICY {name} ON {table} {body}")
    return sql
