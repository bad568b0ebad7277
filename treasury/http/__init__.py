"""``treasury api``: the HTTP API for bots (FastAPI on Starlette, served by uvicorn).

* ``problems`` one error shape (RFC 9457 problem details) for every failure
* ``models``   the request and response bodies (the OpenAPI document derives from them)
* ``auth``     bearer tokens per client, scopes, the failed-authentication rate limit
* ``app``      the routes under ``/v1``
* ``serve``    run it on a socket: the ledger first, then uvicorn

It needs only the database: no exchange credential is read. Preview checks against the
exchange view the daemon publishes (``treasury.domain.view_snapshot``).
"""
