"""``treasury db roles``: least-privilege PostgreSQL roles for the daemon, operators, bots.

    treasury db roles                      # as the schema owner: create roles, set grants
    treasury db roles --print              # the SQL, for a DBA to review and run
    treasury db roles --prefix acme_       # acme_daemon, acme_operator, acme_bot

Run it again after a ``treasury migrate`` that adds a table: grants are explicit, a new
table is reachable by no role until then. See ``treasury.adapters.db.roles``.
"""

from __future__ import annotations

import typer

from treasury.cli import output as out
from treasury.cli.common import EXIT_BAD_INPUT, app, read_settings, with_ledger

db_app = typer.Typer(no_args_is_help=True, help="The database: least-privilege roles.")
app.add_typer(db_app, name="db")


@db_app.command("roles")
def roles(
    prefix: str = typer.Option("treasury_", "--prefix", help="the roles' names start with it"),
    print_: bool = typer.Option(
        False, "--print", help="print the SQL instead of running it (nothing is connected)"
    ),
) -> None:
    """Create the daemon, operator and bot roles (PostgreSQL) and grant each what it needs.

    Applied in one transaction; run with the schema owner's TREASURY_DATABASE_URL (the
    owner needs CREATEROLE), or --print the SQL for a DBA."""
    from treasury.adapters.db.engine import normalize_url
    from treasury.adapters.db.roles import role_names, statements

    try:
        sql = statements(prefix)
    except ValueError as exc:
        out.fail(str(exc), EXIT_BAD_INPUT)
    if print_:
        out.console.print(";\n\n".join(sql) + ";", markup=False, highlight=False, soft_wrap=True)
        return
    settings = read_settings()
    if normalize_url(settings.database_url).get_backend_name() != "postgresql":
        out.fail(
            "db roles: database roles are a PostgreSQL feature; a SQLite ledger is protected "
            "by its file's permissions (readable and writable by the daemon's user only)",
            EXIT_BAD_INPUT,
        )

    async def body(ledger: object) -> str | None:
        """Apply every statement in one transaction; the database's refusal, if any."""
        from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

        from treasury.adapters.db.engine import transaction
        from treasury.adapters.db.ledger import SqlLedger

        assert isinstance(ledger, SqlLedger)
        try:
            async with transaction(ledger.engine) as conn:
                for statement in sql:
                    await conn.exec_driver_sql(statement)
        except (OperationalError, InterfaceError):
            raise  # the database's outage, not its answer: ``run`` says so
        except DBAPIError as exc:  # permission denied, a role of that name that can log in
            return str(exc.orig).splitlines()[0][:300]
        return None

    refused = with_ledger(body, settings)
    if refused is not None:
        out.fail(
            f"db roles: the database refused ({refused}); nothing was changed: run it as the "
            "schema owner with CREATEROLE, or hand `treasury db roles --print` to a DBA",
            EXIT_BAD_INPUT,
        )
    names = ", ".join(role_names(prefix).values())
    out.console.print(
        f"roles {names}: grants set; give each person or bot a login of its own, e.g. "
        f"CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE {prefix}operator",
        markup=False,
    )
