"""The operator console: server-rendered pages under ``/console`` (README, Operator
console). Jinja2 with autoescape, one plain stylesheet, one small script for passkeys
(``static/console.js``; the reading pages work without it). The page names, ids and JSON
shapes follow ``console-ui-contract.md`` (shared with the browser tests).

Sign-in: with a passkey (``/console/sign-in``: a server-stored, single-use, 2-minute
challenge, the assertion verified and its sign count raised), or with a single-use link
from ``treasury console login NAME`` (read-only). Either opens a server-side session
whose secret is the cookie's value (the ledger keeps its sha256). A passkey is
registered at ``/console/register?token=`` with an invite (``treasury operator invite``).

Actions (approve with a fresh passkey assertion; cancel, resolve, pause, resume as
forms) need a session opened with a passkey; each is recorded with the actor
``console:NAME``. Every form and JSON POST carries the session's CSRF token (a form field
``csrf``, or the header ``X-CSRF-Token``); a POST whose ``Origin`` is not the console's
base URL is refused; every console response carries strict headers (``HEADERS``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from treasury.adapters.db.console import (
    ConsoleStore,
    LoginRefused,
    PasskeySignIn,
    Session,
    SignInRefused,
)
from treasury.domain import webauthn as wa
from treasury.domain.console import (
    activity_svg,
    csrf_ok,
    csrf_token,
    explorer_url,
)
from treasury.domain.errors import InvalidField
from treasury.domain.machine import CANCELLABLE
from treasury.domain.money import format_amount
from treasury.domain.status import Status
from treasury.domain.travel_rule import redacted
from treasury.domain.validation import ACCOUNT_RE
from treasury.domain.view_snapshot import KEY_PREFIX
from treasury.http.auth import FailureLimit
from treasury.ports.clock import utcnow
from treasury.ports.store import NotFound
from treasury.services import admin, approvals, operators, whitelist_approvals
from treasury.services.admin import Refused

log = structlog.get_logger("treasury.http.console")

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer a browser sends ``Origin: null`` with
    # a form's POST, which the origin check must refuse (found by the browser tests);
    # same-origin still keeps every console URL (an invite's token) from other sites
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# ``__Host-``: the browser keeps it to this host and path /, and only over HTTPS. On a
# loopback bind (plain HTTP) a ``__Host-`` cookie without Secure is refused by browsers,
# so the cookie is then named without the prefix and sent without Secure.
SECURE_COOKIE = "__Host-treasury_session"
LOOPBACK_COOKIE = "treasury_session"
PAGE = 50
MAX_JSON = 256 * 1024
TIMEOUT_MS = 120_000
# a flash line after a form's 303 (``?done=``): fixed texts, so a link cannot make a
# page say something treasury did not
DONE = {
    "cancelled": "Intent cancelled.",
    "resolved": "Intent resolved.",
    "paused": "Account paused.",
    "resumed": "Account resumed.",
}
READ_ONLY = (
    "This session was opened with a sign-in link: it is read-only. Sign in with a passkey "
    "(/console/sign-in) to act."
)
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
    def __init__(
        self,
        store: ConsoleStore,
        ledger: Any,
        *,
        secure: bool,
        base_url: str,
        cooling_s: float = 0.0,
        failures: FailureLimit | None = None,
        overall: FailureLimit | None = None,
        issued: FailureLimit | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.secure = secure
        self.cookie = SECURE_COOKIE if secure else LOOPBACK_COOKIE
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.rp_id = parts.hostname or "localhost"
        default = {"https": 443, "http": 80}.get(parts.scheme)
        # what the Host header says at the base URL (a browser leaves out a default port)
        self.netloc = (
            (parts.hostname or "").lower() if parts.port == default else parts.netloc.lower()
        )
        self.cooling_s = cooling_s
        # failed sign-ins and registrations: per client IP, and over all of them
        self.failures = failures or FailureLimit(limit=10, window_s=60.0)
        self.overall = overall or FailureLimit(limit=100, window_s=60.0)
        # sign-in challenges issued per client IP (each is a row)
        self.issued = issued or FailureLimit(limit=30, window_s=60.0)

    def set_session_cookie(self, response: Response, secret: str, session: Session) -> None:
        response.set_cookie(
            self.cookie,
            secret,
            max_age=int((session.expires_at - session.created_at).total_seconds()),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def limited(self, ip: str) -> JSONResponse | None:
        """429 with Retry-After while ``ip`` (or everyone) failed too often."""
        wait = self.failures.retry_after(ip) or self.overall.retry_after("*")
        if wait is None:
            return None
        return JSONResponse(
            {"message": f"too many failed attempts; try again in {wait} s"},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )

    def failed(self, ip: str, what: str, why: str) -> None:
        """Count a failure and log it: the client's IP and why, never credential material."""
        self.failures.failed(ip)
        self.overall.failed("*")
        log.warning("console.auth_failed", what=what, client_ip=ip, why=why)

    def page(
        self, name: str, *, status: int = 200, secret: str | None = None, **context: Any
    ) -> HTMLResponse:
        context.setdefault("outcome", None)
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


class BadRequest(Exception):
    """A JSON body the console cannot use; the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _message(text: str, status: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": text, **extra}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("send application/json", 415)
    body = await request.body()
    if len(body) > MAX_JSON:
        raise BadRequest("the request body is too large", 413)
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("the request body is not a JSON object")
    return doc


def _b64(doc: dict[str, Any], key: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key}: missing (base64url text)")
    try:
        return wa.from_b64url(value, key)
    except wa.WebAuthnError as exc:
        raise BadRequest(exc.problem) from None


def _issued_at(doc: dict[str, Any]) -> datetime:
    value = doc.get("issuedAt")
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest("issuedAt: not the time the options gave") from None


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 2**31 - 1 else None


def install_console(
    app: FastAPI,
    store: ConsoleStore,
    ledger: Any,
    *,
    secure: bool,
    base_url: str = "http://localhost:7465",
    cooling_s: float = 0.0,
) -> Console:
    console = Console(store, ledger, secure=secure, base_url=base_url, cooling_s=cooling_s)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        path = request.url.path
        ours = path == "/console" or path.startswith("/console/")
        origin = request.headers.get("origin")
        if ours and request.method == "POST" and origin is not None and origin != console.origin:
            log.warning("console.origin_refused", client_ip=_client_ip(request), origin=origin)
            why = f"Refused: this request comes from {origin}, not from {console.origin}."
            response: Response = (
                _message(why, 403)
                if request.headers.get("content-type", "").startswith("application/json")
                else console.page("error.html", status=403, title="Refused", message=why)
            )
        else:
            response = await call_next(request)
        if ours:
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

    @app.get("/console/static/console.js", include_in_schema=False)
    async def script() -> Response:
        return Response((_HERE / "static" / "console.js").read_text(), media_type="text/javascript")

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
        console.set_session_cookie(response, secret, session)
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

    async def render_intent(
        secret: str,
        session: Session,
        raw: str,
        *,
        outcome: str | None = None,
        status: int = 200,
    ) -> Response:
        intent_id = _id(raw)
        try:
            if intent_id is None:
                raise NotFound(raw)
            intent = await ledger.intents.get(intent_id)
        except NotFound:
            return console.page(
                "error.html",
                status=404,
                secret=secret,
                session=session,
                title="Not found",
                message=f"intent {raw}: not an intent id"
                if intent_id is None
                else f"intent {raw} not found",
            )
        questionnaire = (
            None
            if intent.questionnaire is None
            else json.dumps(redacted(intent.questionnaire), indent=2, sort_keys=True)
        )
        return console.page(
            "intent.html",
            status=status,
            secret=secret,
            session=session,
            nav="queue",
            i=intent,
            questionnaire=questionnaire,
            events=await ledger.intents.events(intent.id),
            approvals=await store.intent_approvals(intent.id),
            explorer=explorer_url(intent.network, intent.tx_id),
            cancellable=intent.status in CANCELLABLE,
            resolutions=list(admin.RESOLUTIONS),
            read_only=READ_ONLY,
            outcome=outcome,
        )

    async def intent_page(request: Request, secret: str, session: Session) -> Response:
        done = DONE.get(request.query_params.get("done", ""))
        return await render_intent(secret, session, request.path_params["intent_id"], outcome=done)

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
        standings = await whitelist_approvals.standings(
            ledger, entries, required=await book_required(), cooling_s=console.cooling_s
        )
        # waiting for approvals the worker counts (a manual entry needs one at least)
        pending = [
            st
            for st in standings
            if st.entry.enabled
            and len(st.approved) < (st.required or (1 if st.entry.source == "manual" else 0))
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
            read_only=READ_ONLY,
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

    async def render_health(
        secret: str, session: Session, *, outcome: str | None = None, status: int = 200
    ) -> Response:
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
            status=status,
            outcome=outcome,
            read_only=READ_ONLY,
            secret=secret,
            session=session,
            nav="health",
            kill=kill,
            accounts=accounts,
        )

    async def health(request: Request, secret: str, session: Session) -> Response:
        done = DONE.get(request.query_params.get("done", ""))
        return await render_health(secret, session, outcome=done)

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

    # ---- passkeys: registration and sign-in ------------------------------------------

    async def book_required() -> int:
        from treasury.services.policy import in_force

        snapshot = await in_force(ledger)
        return 0 if snapshot is None else snapshot.address_book_approvals_required

    async def usable_invite(token: str) -> Any:
        found = await ledger.passkeys.invite_for(operators.token_digest(token))
        if found is None:
            raise Refused("this invite is not one treasury made (or was mistyped)")
        if found.used_at is not None:
            raise Refused("this invite was used already: ask an admin for a new one")
        if found.expires_at <= utcnow():
            raise Refused(
                f"this invite expired at {found.expires_at:%Y-%m-%d %H:%M} UTC: ask an admin "
                "for a new one (treasury operator invite)"
            )
        return found

    def elsewhere(request: Request) -> Response | None:
        """The page to show instead when a passkey page is opened at another address than
        the base URL's (``127.0.0.1`` for ``localhost``, say): the ceremony would fail in
        the browser with an opaque error. 421 with a link to the same path there."""
        here = request.headers.get("host", "").lower()
        if here == console.netloc:
            return None
        query = f"?{request.url.query}" if request.url.query else ""
        return console.page(
            "elsewhere.html",
            status=421,
            origin=console.origin,
            here=here or "an unnamed host",
            url=f"{console.origin}{request.url.path}{query}",
        )

    @app.get("/console/register", include_in_schema=False)
    async def register_page(request: Request) -> Response:
        if (moved := elsewhere(request)) is not None:
            return moved
        token = request.query_params.get("token", "")[:200]
        try:
            invite = await usable_invite(token)
        except Refused as exc:
            return console.page("register.html", status=403, invite=None, outcome=str(exc))
        return console.page("register.html", invite=invite, token=token)

    @app.post("/console/register/options", include_in_schema=False)
    async def register_options(request: Request) -> Response:
        ip = _client_ip(request)
        if (limited := console.limited(ip)) is not None:
            return limited
        try:
            token = str((await _json(request)).get("token", ""))[:200]
            invite = await usable_invite(token)
        except BadRequest as exc:
            return _message(str(exc), exc.status)
        except Refused as exc:
            console.failed(ip, "register", str(exc))
            return _message(str(exc), 403)
        user_id = hashlib.sha256(f"treasury operator {invite.operator}".encode()).digest()[:16]
        return JSONResponse(
            {
                "challenge": wa.b64url(operators.registration_challenge(token)),
                "rp": {"id": console.rp_id, "name": "treasury"},
                "user": {
                    "id": wa.b64url(user_id),
                    "name": invite.operator,
                    "displayName": invite.operator,
                },
                "pubKeyCredParams": [
                    {"type": "public-key", "alg": wa.ES256},
                    {"type": "public-key", "alg": wa.EDDSA},
                ],
                "authenticatorSelection": {
                    "residentKey": "required",
                    "requireResidentKey": True,
                    "userVerification": "required",
                },
                "attestation": "none",
                "timeout": TIMEOUT_MS,
            }
        )

    @app.post("/console/register", include_in_schema=False)
    async def register(request: Request) -> Response:
        ip = _client_ip(request)
        if (limited := console.limited(ip)) is not None:
            return limited
        try:
            doc = await _json(request)
            token = str(doc.get("token", ""))[:200]
            cdj, att = _b64(doc, "clientDataJSON"), _b64(doc, "attestationObject")
            invite = await usable_invite(token)
            passkey = await operators.register_passkey(
                ledger,
                token,
                client_data_json=cdj,
                attestation_object=att,
                origin=console.origin,
                rp_id=console.rp_id,
            )
        except BadRequest as exc:
            console.failed(ip, "register", str(exc))
            return _message(str(exc), exc.status)
        except Refused as exc:
            console.failed(ip, "register", str(exc))
            return _message(str(exc), 403)
        log.info("console.passkey_registered", operator=passkey.operator, invite=invite.id)
        return _message(f"Passkey registered for {passkey.operator}", redirect="/console/sign-in")

    @app.get("/console/sign-in", include_in_schema=False)
    async def sign_in_page(request: Request) -> Response:
        return elsewhere(request) or console.page("sign_in.html")

    @app.post("/console/sign-in/options", include_in_schema=False)
    async def sign_in_options(request: Request) -> Response:
        ip = _client_ip(request)
        if (limited := console.limited(ip)) is not None:
            return limited
        wait = console.issued.retry_after(ip)
        if wait is not None:
            return JSONResponse(
                {"message": f"too many sign-in attempts; try again in {wait} s"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        console.issued.failed(ip)  # counts issued challenges: each is a row
        challenge_id, challenge = await store.issue_challenge(now=utcnow())
        return JSONResponse(
            {
                "challengeId": challenge_id,
                "challenge": wa.b64url(challenge),
                "rpId": console.rp_id,
                "timeout": TIMEOUT_MS,
                "userVerification": "required",
                "allowCredentials": [],
            }
        )

    @app.post("/console/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        ip = _client_ip(request)
        if (limited := console.limited(ip)) is not None:
            return limited
        try:
            doc = await _json(request)
            challenge_id = doc.get("challengeId")
            if not isinstance(challenge_id, int) or isinstance(challenge_id, bool):
                raise BadRequest("challengeId: missing (the id the options gave)")
            assertion = PasskeySignIn(
                challenge_id=challenge_id,
                credential_id=_b64(doc, "credentialId"),
                client_data_json=_b64(doc, "clientDataJSON"),
                authenticator_data=_b64(doc, "authenticatorData"),
                signature=_b64(doc, "signature"),
            )
            now = utcnow()
            challenge = await store.spend_challenge(challenge_id, now=now)
            secret, session = await store.passkey_sign_in(
                assertion,
                challenge=challenge,
                origin=console.origin,
                rp_id=console.rp_id,
                now=now,
            )
        except BadRequest as exc:
            console.failed(ip, "sign-in", str(exc))
            return _message(str(exc), exc.status)
        except SignInRefused as exc:
            console.failed(ip, "sign-in", str(exc))
            return _message(f"Sign-in refused: {exc}", 401)
        response = _message(f"Signed in as {session.operator} with a passkey", redirect="/console")
        console.set_session_cookie(response, secret, session)
        return response

    # ---- actions -------------------------------------------------------------------

    async def actor(request: Request, csrf: str | None) -> tuple[str, Session] | str:
        """The session that may act, or why not (a refusal's text)."""
        found = await console.session(request)
        if isinstance(found, Response):
            return "You are not signed in (or your session ended): sign in again."
        secret, session = found
        if not csrf_ok(secret, csrf):
            return "The CSRF token is missing or not this session's: reload the page and try again."
        if session.passkey_id is None:
            return READ_ONLY
        return secret, session

    def json_action(
        fn: Callable[[Request, Session, dict[str, Any]], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            who = await actor(request, request.headers.get("x-csrf-token"))
            if isinstance(who, str):
                return _message(who, 403)
            try:
                return await fn(request, who[1], await _json(request))
            except BadRequest as exc:
                return _message(str(exc), exc.status)
            except Refused as exc:
                return _message(str(exc), 409)
            except NotFound as exc:
                return _message(f"not found: {exc}", 404)

        route.__name__ = fn.__name__
        return route

    async def allow_credentials(session: Session) -> list[dict[str, str]]:
        return [
            {"type": "public-key", "id": wa.b64url(c)}
            for c in await store.passkey_ids(session.operator)
        ]

    def assertion_of(doc: dict[str, Any]) -> approvals.PasskeyAssertion:
        return approvals.PasskeyAssertion(
            credential_id=_b64(doc, "credentialId"),
            client_data_json=_b64(doc, "clientDataJSON"),
            authenticator_data=_b64(doc, "authenticatorData"),
            signature=_b64(doc, "signature"),
            issued_at=_issued_at(doc),
        )

    def target(request: Request, what: str) -> int:
        found = _id(request.path_params["item_id"])
        if found is None:
            raise NotFound(f"{what} {request.path_params['item_id']}")
        return found

    async def approval_options(
        session: Session, challenge: bytes, issued_at: datetime
    ) -> JSONResponse:
        """What ``navigator.credentials.get`` needs to sign an approval's challenge (the
        browser posts ``issuedAt`` back with the assertion)."""
        return JSONResponse(
            {
                "challenge": wa.b64url(challenge),
                "issuedAt": _instant(issued_at),
                "allowCredentials": await allow_credentials(session),
                "rpId": console.rp_id,
                "timeout": TIMEOUT_MS,
                "userVerification": "required",
            }
        )

    async def approve_intent_options(
        request: Request, session: Session, doc: dict[str, Any]
    ) -> Response:
        intent_id = target(request, "intent")
        return await approval_options(
            session, *await approvals.passkey_challenge(ledger, intent_id)
        )

    async def approve_intent(request: Request, session: Session, doc: dict[str, Any]) -> Response:
        intent_id = target(request, "intent")
        result = await approvals.record_passkey_approval(
            ledger, intent_id, assertion_of(doc), approver=session.operator, via="console"
        )
        count = f"{len(result.approvers)}/{result.required}"
        released = "; the quorum is reached: back in the queue" if result.released else ""
        return _message(
            f"Intent {intent_id} approved ({count}) by {session.operator}{released}",
            redirect=f"/console/intents/{intent_id}",
        )

    async def approve_entry_options(
        request: Request, session: Session, doc: dict[str, Any]
    ) -> Response:
        entry_id = target(request, "whitelist entry")
        return await approval_options(
            session, *await whitelist_approvals.passkey_challenge(ledger, entry_id)
        )

    async def approve_entry(request: Request, session: Session, doc: dict[str, Any]) -> Response:
        entry_id = target(request, "whitelist entry")
        standing = await whitelist_approvals.record_passkey_approval(
            ledger,
            entry_id,
            assertion_of(doc),
            approver=session.operator,
            required=await book_required(),
            cooling_s=console.cooling_s,
            via="console",
        )
        return _message(
            f"Address-book entry {entry_id} (version {standing.entry.version}) approved "
            f"({standing.approvals}) by {session.operator}",
            redirect="/console/address-book",
        )

    for path, json_fn in [
        ("/console/intents/{item_id}/approve/options", approve_intent_options),
        ("/console/intents/{item_id}/approve", approve_intent),
        ("/console/address-book/{item_id}/approve/options", approve_entry_options),
        ("/console/address-book/{item_id}/approve", approve_entry),
    ]:
        app.add_api_route(path, json_action(json_fn), methods=["POST"], include_in_schema=False)

    async def form_actor(request: Request) -> tuple[tuple[str, Session], dict[str, str]] | Response:
        form = await _form(request)
        who = await actor(request, form.get("csrf"))
        if isinstance(who, str):
            found = await console.session(request)
            secret, session = (None, None) if isinstance(found, Response) else found
            return console.page(
                "error.html",
                status=403,
                secret=secret,
                session=session,
                title="Refused",
                message=who,
                outcome=who,
            )
        return who, form

    IntentAction = Callable[[int, str, dict[str, str]], Awaitable[object]]

    async def intent_action(request: Request, done: str, act: IntentAction) -> Response:
        """A form action on one intent: ``act(intent_id, actor, form)`` by the session's
        operator; a refusal re-renders the intent page with the reason (409, or 422 for
        bad input), success goes back to it with ``?done=``."""
        got = await form_actor(request)
        if isinstance(got, Response):
            return got
        (secret, session), form = got
        raw = request.path_params["intent_id"]
        intent_id = _id(raw)
        try:
            if intent_id is None:
                raise NotFound(raw)
            await act(intent_id, f"console:{session.operator}", form)
        except NotFound:
            return await render_intent(secret, session, raw)
        except (Refused, InvalidField) as exc:
            status = 422 if isinstance(exc, InvalidField) else 409
            return await render_intent(secret, session, raw, outcome=str(exc), status=status)
        return RedirectResponse(f"/console/intents/{intent_id}?done={done}", 303)

    @app.post("/console/intents/{intent_id}/cancel", include_in_schema=False)
    async def cancel(request: Request) -> Response:
        async def act(intent_id: int, actor: str, form: dict[str, str]) -> object:
            reason = form.get("reason") or "cancelled in the console"
            return await admin.cancel(ledger, intent_id, actor=actor, reason=reason)

        return await intent_action(request, "cancelled", act)

    @app.post("/console/intents/{intent_id}/resolve", include_in_schema=False)
    async def resolve(request: Request) -> Response:
        async def act(intent_id: int, actor: str, form: dict[str, str]) -> object:
            return await admin.resolve(
                ledger,
                intent_id,
                outcome=form.get("outcome", ""),
                actor=actor,
                reason=form.get("reason", ""),
                exchange_id=form.get("exchange_id", "").strip() or None,
                tx_id=form.get("tx_id", "").strip() or None,
            )

        return await intent_action(request, "resolved", act)

    @app.post("/console/accounts/{account}/{verb}", include_in_schema=False)
    async def pause_resume(request: Request) -> Response:
        verb = request.path_params["verb"]
        account = request.path_params["account"]
        if verb not in ("pause", "resume"):
            return console.page("error.html", status=404, title="Not found", message=verb)
        got = await form_actor(request)
        if isinstance(got, Response):
            return got
        (secret, session), form = got
        if not ACCOUNT_RE.fullmatch(account):
            return await render_health(
                secret, session, outcome=f"{account!r} is not an account name", status=404
            )
        who = f"console:{session.operator}"
        try:
            if verb == "pause":
                changed = await admin.pause(
                    ledger, actor=who, reason=form.get("reason", ""), account=account
                )
            else:
                changed = await admin.resume(ledger, actor=who, account=account)
        except InvalidField as exc:
            return await render_health(secret, session, outcome=str(exc), status=422)
        if not changed:
            state = "paused already" if verb == "pause" else "not paused"
            return await render_health(
                secret, session, outcome=f"Account {account} is {state}.", status=409
            )
        return RedirectResponse(f"/console/health?done={verb}d", 303)

    return console
