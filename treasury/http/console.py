"""The operator console: read-only, server-rendered pages under ``/console`` (README,
Operator console). Jinja2 with autoescape, one plain stylesheet, no JavaScript.

Sign-in: ``treasury console login NAME`` prints a single-use link. ``GET
/console/login?token=`` shows a button (a link scanner or preview fetching the URL spends
nothing); its POST spends the link and opens a server-side session whose secret is the
cookie's value (the ledger keeps its sha256). Every form carries a CSRF token derived from
the session's secret; every console response carries strict headers (``HEADERS``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from treasury.adapters.db.console import ConsoleStore, LoginRefused, Session
from treasury.domain.console import (
    activity_svg,
    csrf_ok,
    csrf_token,
    explorer_url,
)
from treasury.domain.money import format_amount
from treasury.domain.status import Status
from treasury.domain.travel_rule import redacted
from treasury.domain.view_snapshot import KEY_PREFIX
from treasury.ports.clock import utcnow
from treasury.ports.store import NotFound

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# ``__Host-``: the browser keeps it to this host and path /, and only over HTTPS. On a
# loopback bind (plain HTTP) a ``__Host-`` cookie without Secure is refused by browsers,
# so the cookie is then named without the prefix and sent without Secure.
SECURE_COOKIE = "__Host-treasury_session"
LOOPBACK_COOKIE = "treasury_session"
PAGE = 50
ATTENTION = (Status.NEEDS_ATTENTION, Status.AWAITING_APPROVAL)
_HERE = Path(__file__).parent
_env = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _amount(value: Any) -> str:
    return "" if value is None else format_amount(value)


def _age(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((utcnow() - value).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _safe_url(url: str) -> str:
    """A receiver's URL without what may be a credential (user info, query, fragment)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    hidden = " (query hidden)" if parts.query or parts.username or parts.password else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{hidden}"


_env.filters.update(when=_when, amount=_amount, age=_age, safe_url=_safe_url)


class Console:
    def __init__(self, store: ConsoleStore, ledger: Any, *, secure: bool) -> None:
        self.store = store
        self.ledger = ledger
        self.secure = secure
        self.cookie = SECURE_COOKIE if secure else LOOPBACK_COOKIE

    def page(
        self, name: str, *, status: int = 200, secret: str | None = None, **context: Any
    ) -> HTMLResponse:
        html = _env.get_template(name).render(
            csrf=None if secret is None else csrf_token(secret), **context
        )
        return HTMLResponse(html, status_code=status)

    def gone(self, why: str) -> RedirectResponse:
        return RedirectResponse(f"/console/signed-out?{urlencode({'why': why})}", 303)

    async def session(self, request: Request) -> tuple[str, Session] | Response:
        secret = request.cookies.get(self.cookie)
        if not secret:
            return self.gone("none")
        session = await self.store.session(secret)
        if session is None:
            return self.gone("unknown")
        if session.ended_at is not None:
            return self.gone("ended")
        if not session.live(utcnow()):
            return self.gone("expired")
        return secret, session


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return {}
    body = (await request.body())[:8192].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, max_num_fields=20).items()}


SIGNED_OUT = {
    "none": "You are not signed in.",
    "unknown": "This browser's session is not known to treasury.",
    "ended": "You signed out; that session has ended.",
    "expired": "Your session has expired.",
}

Page = Callable[[Request, str, Session], Awaitable[Response]]


def install_console(app: FastAPI, store: ConsoleStore, ledger: Any, *, secure: bool) -> None:
    console = Console(store, ledger, secure=secure)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if request.url.path == "/console" or request.url.path.startswith("/console/"):
            response.headers.update(HEADERS)
        return response

    def signed_in(fn: Page) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            found = await console.session(request)
            if isinstance(found, Response):
                return found
            return await fn(request, *found)

        route.__name__ = fn.__name__
        return route

    @app.get("/console/static/console.css", include_in_schema=False)
    async def css() -> Response:
        return Response((_HERE / "static" / "console.css").read_text(), media_type="text/css")

    @app.get("/console/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            login = await store.peek_login(token, now=utcnow())
        except LoginRefused as exc:
            return console.page("signed_out.html", status=403, why=str(exc))
        return console.page("login.html", token=token, operator=login.operator, login=login)

    @app.post("/console/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        token = (await _form(request)).get("token", "")
        try:
            secret, session = await store.sign_in(token, now=utcnow())
        except LoginRefused as exc:
            return console.page("signed_out.html", status=403, why=str(exc))
        response = RedirectResponse("/console", 303)
        response.set_cookie(
            console.cookie,
            secret,
            max_age=int((session.expires_at - session.created_at).total_seconds()),
            path="/",
            secure=console.secure,
            httponly=True,
            samesite="strict",
        )
        return response

    @app.get("/console/signed-out", include_in_schema=False)
    async def signed_out(request: Request) -> Response:
        why = SIGNED_OUT.get(request.query_params.get("why", ""), SIGNED_OUT["none"])
        return console.page("signed_out.html", why=why)

    @app.post("/console/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        found = await console.session(request)
        if isinstance(found, Response):
            return found
        secret, _ = found
        if not csrf_ok(secret, (await _form(request)).get("csrf")):
            return console.page(
                "error.html",
                status=403,
                secret=secret,
                title="Refused",
                message="The form's CSRF token is missing or not this session's: reload the "
                "page and try again.",
            )
        await store.sign_out(secret, now=utcnow())
        response = console.gone("ended")
        response.delete_cookie(console.cookie, path="/", secure=console.secure, httponly=True)
        return response

    async def queue(request: Request, secret: str, session: Session) -> Response:
        q = request.query_params
        status_text = q.get("status", "").strip()
        account = q.get("account", "").strip()[:64]
        coin = q.get("coin", "").strip().upper()[:20]
        before_text = q.get("before", "").strip()
        problems = []
        status: Status | None = None
        if status_text:
            try:
                status = Status(status_text)
            except ValueError:
                problems.append(f"status: {status_text!r} is not a status")
        before: int | None = None
        if before_text:
            if before_text.isdigit() and 1 <= int(before_text) <= 2**31 - 1:
                before = int(before_text)
            else:
                problems.append(f"before: {before_text!r} is not an intent id")
        counts = await ledger.intents.count_by_status()
        rows = []
        if not problems:
            rows = await ledger.intents.search(
                statuses=() if status is None else (status,),
                coin=coin or None,
                account=account or None,
                before_id=before,
                limit=PAGE + 1,
            )
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        filters = {"status": status_text, "account": account, "coin": coin}
        next_query = (
            urlencode({**{k: v for k, v in filters.items() if v}, "before": rows[-1].id})
            if more
            else None
        )
        return console.page(
            "queue.html",
            status=422 if problems else 200,
            secret=secret,
            session=session,
            nav="queue",
            counts=counts,
            attention=ATTENTION,
            statuses=[s.value for s in Status],
            held=await store.held(),
            held_count=await store.held_count(),
            rows=rows,
            filters=filters,
            problems=problems,
            next_query=next_query,
            first_query=urlencode({k: v for k, v in filters.items() if v})
            if before is not None
            else None,
        )

    async def intent_page(request: Request, secret: str, session: Session) -> Response:
        raw = request.path_params["intent_id"]
        if not raw.isdigit() or not 1 <= int(raw) <= 2**31 - 1:
            return console.page(
                "error.html",
                status=404,
                secret=secret,
                session=session,
                title="Not found",
                message=f"intent {raw}: not an intent id",
            )
        try:
            intent = await ledger.intents.get(int(raw))
        except NotFound:
            return console.page(
                "error.html",
                status=404,
                secret=secret,
                session=session,
                title="Not found",
                message=f"intent {raw} not found",
            )
        questionnaire = (
            None
            if intent.questionnaire is None
            else json.dumps(redacted(intent.questionnaire), indent=2, sort_keys=True)
        )
        return console.page(
            "intent.html",
            secret=secret,
            session=session,
            nav="queue",
            i=intent,
            questionnaire=questionnaire,
            events=await ledger.intents.events(intent.id),
            approvals=await store.intent_approvals(intent.id),
            explorer=explorer_url(intent.network, intent.tx_id),
        )

    async def address_book(request: Request, secret: str, session: Session) -> Response:
        entries = await ledger.whitelist.all()
        approvals = await ledger.whitelist.approvals()
        current = {e.id: e.version for e in entries}
        counted: dict[int, list[Any]] = {}
        for a in approvals:
            if current.get(a.entry_id) == a.entry_version:
                counted.setdefault(a.entry_id, []).append(a)
        history = await ledger.whitelist.history(limit=100_000)
        profiles = {
            e.id: None
            if e.travel_rule_profile is None
            else json.dumps(redacted(e.travel_rule_profile), sort_keys=True)
            for e in entries
        }
        now = utcnow()
        pending = [
            e for e in entries if e.enabled and e.source == "manual" and not counted.get(e.id)
        ]
        return console.page(
            "address_book.html",
            secret=secret,
            session=session,
            nav="book",
            entries=entries,
            profiles=profiles,
            approvals=counted,
            pending=pending,
            cooling={e.id for e in entries if e.usable_from is not None and e.usable_from > now},
            events=list(reversed(history[-50:])),
        )

    async def webhooks(request: Request, secret: str, session: Session) -> Response:
        from treasury.adapters.db.webhooks import SqlWebhooks

        hooks = SqlWebhooks(store.engine)
        alerts = []
        for row in await store.alerts():
            try:
                payload = json.loads(row.payload)
            except ValueError:
                payload = {}
            alerts.append(
                {
                    "id": row.id,
                    "created_at": row.created_at,
                    "kind": str(payload.get("kind", "")),
                    "message": str(payload.get("message", payload.get("text", ""))),
                }
            )
        return console.page(
            "webhooks.html",
            secret=secret,
            session=session,
            nav="webhooks",
            subscriptions=await hooks.subscriptions(include_disabled=True),
            deliveries=await hooks.deliveries(limit=50),
            alerts=alerts,
        )

    async def health(request: Request, secret: str, session: Session) -> Response:
        leases = await store.leases()
        views = await store.state_rows(KEY_PREFIX)
        names = sorted(
            set(await store.accounts()) | set(leases) | {k.removeprefix(KEY_PREFIX) for k in views}
        )
        kill = await ledger.state.pause_state()
        pauses = await ledger.state.account_pauses()
        now = utcnow()
        accounts = []
        for name in names:
            lease = leases.get(name)
            view = views.get(KEY_PREFIX + name)
            accounts.append(
                {
                    "name": name,
                    "holder": None if lease is None else lease.holder,
                    "lease_expires": None if lease is None else lease.expires_at,
                    "lease_live": lease is not None and lease.expires_at > now,
                    "pause": pauses.get(name),
                    "view_at": None if view is None else view.updated_at,
                    "sync_at": await store.last_sync_change(name),
                }
            )
        return console.page(
            "health.html",
            secret=secret,
            session=session,
            nav="health",
            kill=kill,
            accounts=accounts,
        )

    async def chart(request: Request, secret: str, session: Session) -> Response:
        svg = activity_svg(await store.activity(utcnow()))
        return Response(svg, media_type="image/svg+xml")

    for path, fn in [
        ("/console", queue),
        ("/console/intents/{intent_id}", intent_page),
        ("/console/address-book", address_book),
        ("/console/webhooks", webhooks),
        ("/console/health", health),
        ("/console/charts/activity.svg", chart),
    ]:
        app.add_api_route(path, signed_in(fn), methods=["GET"], include_in_schema=False)
