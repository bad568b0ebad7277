"""The routes under ``/v1``. Each reads the caller (``Caller``) and needs one scope."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from treasury.adapters.db.console import ConsoleStore
from treasury.adapters.db.ledger import SqlLedger
from treasury.adapters.db.tokens import TokenStore
from treasury.domain.api_token import ApiClient, request_id_of
from treasury.domain.errors import InvalidField
from treasury.domain.intent import Intent
from treasury.domain.money import format_amount
from treasury.domain.status import Status
from treasury.domain.travel_rule import Entity, redacted
from treasury.domain.validation import NewIntent, validate_new_intent
from treasury.domain.view_snapshot import MalformedSnapshot, ViewSnapshot, from_json, key_of
from treasury.http import models as m
from treasury.http.auth import FailureLimit, log_failure, refusal
from treasury.http.console import install_console
from treasury.http.problems import Problem, install
from treasury.ports.clock import utcnow
from treasury.ports.store import IdempotencyConflict, NotFound
from treasury.services import admin
from treasury.services.policy import in_force
from treasury.services.preview import MAX_AGE_S, Preview, preview

PROBLEM = {"model": m.ProblemOut, "content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {**PROBLEM, "description": d}
    for s, d in {
        401: "no valid bearer token",
        403: "the token lacks the scope, or the account",
        422: "a field is refused (named in `field`)",
        429: "too many failed authentications from this IP",
        500: "the server failed",
    }.items()
}
PAGE_MAX = 200
log = structlog.get_logger("treasury.http")


@dataclass
class Deps:
    ledger: SqlLedger
    cooling_s: float
    local_entities: dict[str, Entity] = field(default_factory=dict)
    limiter: FailureLimit = field(default_factory=FailureLimit)
    usage: Callable[[Intent, datetime], Awaitable[tuple[Decimal, Decimal]]] | None = None
    operator_keys: Callable[[], Awaitable[dict[str, bytes] | None]] | None = None
    # the console's cookie is Secure (``__Host-``) unless served on loopback (plain HTTP)
    console_secure: bool = False
    # the console's URL as browsers open it: the passkeys' origin and relying party id
    console_base_url: str = "http://localhost:7465"

    @property
    def tokens(self) -> TokenStore:
        return TokenStore(self.ledger.engine)


bearer = HTTPBearer(auto_error=False, description="a token from `treasury token create`")


def _deps(request: Request) -> Deps:
    deps = request.app.state.deps
    assert isinstance(deps, Deps)
    return deps


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiClient:
    deps = _deps(request)
    ip = request.client.host if request.client else "unknown"
    wait = deps.limiter.retry_after(ip)
    if wait is not None:
        raise Problem(
            429,
            f"too many failed authentications from {ip}; try again in {wait} s",
            kind="auth-rate-limited",
            headers={"Retry-After": str(wait)},
        )
    token = None if credentials is None else credentials.credentials
    client = None if not token else await deps.tokens.by_token(token)
    why = "no bearer token (Authorization: Bearer trs_...)" if not token else refusal(client)
    if why is not None or client is None:
        deps.limiter.failed(ip)
        log_failure(ip, token, why or "unknown token")
        raise Problem(
            401,
            why or "unknown token",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="treasury"'},
        )
    return client


def scoped(scope: str, *also: str) -> Callable[..., Awaitable[ApiClient]]:
    async def check(client: Annotated[ApiClient, Depends(_caller)]) -> ApiClient:
        if not ({scope, *also} & client.scopes):
            need = " or ".join(sorted({scope, *also}))
            raise Problem(403, f"the token of {client.name} lacks the scope {need}", kind="scope")
        return client

    return check


Reader = Annotated[ApiClient, Depends(scoped("read"))]
Enqueuer = Annotated[ApiClient, Depends(scoped("enqueue"))]
Canceller = Annotated[ApiClient, Depends(scoped("cancel"))]
Previewer = Annotated[ApiClient, Depends(scoped("read", "enqueue"))]
DepsOf = Annotated[Deps, Depends(_deps)]


def _cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, number = text.partition(":")
        value = int(number)
        if version != "v1" or value < 1:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(422, "cursor: not a cursor this API gave", field="cursor") from None
    return value


def _new_intent(
    body: m.IntentCreate, client: ApiClient, deps: Deps, request_id: str | None
) -> NewIntent:
    if not client.sees(body.account):
        raise Problem(
            403, f"the token of {client.name} may not use account {body.account}", field="account"
        )
    try:
        return validate_new_intent(
            coin=body.coin,
            network=body.network,
            address=body.address,
            amount=body.amount,
            address_tag=body.address_tag,
            account=body.account,
            request_id=request_id,
            requested_by=client.actor,
            note=body.note,
            wallet=body.wallet,
            questionnaire=body.questionnaire,
            local_entity=deps.local_entities.get(body.account),
        )
    except InvalidField as exc:
        raise Problem(422, str(exc), field=exc.field, kind="invalid-field") from None


def _conflict_field(message: str) -> str | None:
    _, _, fields = message.partition("with a different ")
    return fields.split(",")[0].strip() or None


async def _own(deps: Deps, client: ApiClient, intent_id: int) -> Intent:
    try:
        intent = await deps.ledger.intents.get(intent_id)
    except NotFound:
        intent = None
    if intent is None or intent.requested_by != client.actor:
        # another client's intent is as unknown as a missing one
        raise Problem(404, f"intent {intent_id} not found", kind="not-found")
    return intent


async def _snapshot(deps: Deps, account: str) -> ViewSnapshot | None:
    text = await deps.ledger.state.published(key_of(account))
    if text is None:
        return None
    try:
        return from_json(text)
    except MalformedSnapshot as exc:
        # the preview then says what it could not check (as with no snapshot at all)
        log.warning("http.snapshot_unreadable", account=account, problem=str(exc))
        return None


def _preview_out(p: Preview) -> m.PreviewOut:
    return m.PreviewOut(
        checks=[
            m.CheckOut(name=c.name, result=c.result, reason=c.reason, effect=c.effect)
            for c in p.checks
        ],
        network_fee=None if p.network_fee is None else format_amount(p.network_fee),
        snapshot_age_s=None if p.snapshot_age_s is None else round(p.snapshot_age_s, 3),
        would_send=p.would_send,
    )


def create_app(deps: Deps) -> FastAPI:
    app = FastAPI(
        title="treasury",
        summary="Queue Binance withdrawals and read their outcome",
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERRORS,
    )
    app.state.deps = deps
    install(app)
    install_console(
        app,
        ConsoleStore(deps.ledger.engine),
        deps.ledger,
        secure=deps.console_secure,
        base_url=deps.console_base_url,
        cooling_s=deps.cooling_s,
    )

    @app.post(
        "/v1/intents",
        status_code=201,
        response_model=m.IntentOut,
        responses={
            200: {"model": m.IntentOut, "description": "the intent this key created before"},
            409: {**PROBLEM, "description": "the key names an intent with other fields"},
        },
    )
    async def create_intent(
        body: m.IntentCreate,
        client: Enqueuer,
        deps: DepsOf,
        response: Response,
        idempotency_key: Annotated[
            str,
            Header(
                min_length=1,
                max_length=64,
                description="required: the same key and body give the same intent",
            ),
        ],
    ) -> m.IntentOut:
        try:
            request_id = request_id_of(client.name, idempotency_key)
        except InvalidField as exc:
            raise Problem(422, str(exc), field=exc.field, kind="invalid-field") from None
        new = _new_intent(body, client, deps, request_id)
        try:
            intent, created = await admin.enqueue(deps.ledger, new, actor=client.actor)
        except IdempotencyConflict as exc:
            raise Problem(
                409, str(exc), field=_conflict_field(str(exc)), kind="idempotency-conflict"
            ) from None
        response.status_code = 201 if created else 200
        return m.IntentOut.of(intent)

    @app.get("/v1/intents/{intent_id}", response_model=m.IntentOut, responses={404: PROBLEM})
    async def get_intent(
        intent_id: int,
        client: Reader,
        deps: DepsOf,
    ) -> m.IntentOut:
        if not 1 <= intent_id <= 2**31 - 1:
            raise Problem(404, f"intent {intent_id} not found", kind="not-found")
        return m.IntentOut.of(await _own(deps, client, intent_id))

    @app.get("/v1/intents", response_model=m.IntentPage)
    async def list_intents(
        client: Reader,
        deps: DepsOf,
        request_id: Annotated[
            str | None, Query(max_length=64, description="your Idempotency-Key")
        ] = None,
        status: Annotated[list[Status] | None, Query()] = None,
        account: Annotated[str | None, Query(max_length=64)] = None,
        coin: Annotated[str | None, Query(max_length=20)] = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> m.IntentPage:
        if request_id is not None:
            try:
                found = await deps.ledger.intents.get_by_request_id(
                    request_id_of(client.name, request_id)
                )
            except (NotFound, InvalidField):
                return m.IntentPage(items=[], next_cursor=None)
            return m.IntentPage(items=[m.IntentOut.of(found)], next_cursor=None)
        rows = await deps.ledger.intents.search(
            statuses=status or (),
            coin=None if coin is None else coin.strip().upper(),
            account=account,
            requested_by=client.actor,
            before_id=_after(cursor),
            created_after=created_after,
            created_before=created_before,
            limit=limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return m.IntentPage(
            items=[m.IntentOut.of(i) for i in rows],
            next_cursor=_cursor(rows[-1].id) if more else None,
        )

    @app.post(
        "/v1/intents/{intent_id}/cancel",
        response_model=m.IntentOut,
        responses={404: PROBLEM, 409: {**PROBLEM, "description": "no longer cancellable"}},
    )
    async def cancel_intent(
        intent_id: int, client: Canceller, deps: DepsOf, body: m.CancelBody | None = None
    ) -> m.IntentOut:
        if not 1 <= intent_id <= 2**31 - 1:
            raise Problem(404, f"intent {intent_id} not found", kind="not-found")
        await _own(deps, client, intent_id)
        reason = None if body is None else body.reason
        try:
            intent = await admin.cancel(
                deps.ledger, intent_id, actor=client.actor, reason=reason or "cancelled by bot"
            )
        except admin.Refused as exc:
            raise Problem(409, str(exc), kind="not-cancellable") from None
        except InvalidField as exc:
            raise Problem(422, str(exc), field="reason", kind="invalid-field") from None
        return m.IntentOut.of(intent)

    @app.post("/v1/preview", response_model=m.PreviewOut)
    async def preview_intent(body: m.IntentCreate, client: Previewer, deps: DepsOf) -> m.PreviewOut:
        new = _new_intent(body, client, deps, None)
        assert deps.usage is not None and deps.operator_keys is not None
        result = await preview(
            deps.ledger,
            new,
            snapshot=await _snapshot(deps, new.account),
            policy=await in_force(deps.ledger),
            usage=deps.usage,
            operator_keys=deps.operator_keys,
            cooling_s=deps.cooling_s,
            now=utcnow(),
            max_age_s=MAX_AGE_S,
        )
        return _preview_out(result)

    @app.get("/v1/address-book", response_model=m.AddressBookOut)
    async def address_book(
        client: Reader, deps: DepsOf, account: Annotated[str | None, Query(max_length=64)] = None
    ) -> m.AddressBookOut:
        entries = await deps.ledger.whitelist.all(account)
        return m.AddressBookOut(
            items=[
                m.AddressBookEntryOut(
                    id=e.id,
                    account=e.account,
                    coin=e.coin,
                    network=e.network,
                    address=e.address,
                    address_tag=e.address_tag,
                    label=e.label,
                    source=e.source,
                    enabled=e.enabled,
                    usable_from=e.usable_from,
                    created_at=e.created_at,
                    version=e.version,
                    travel_rule=None
                    if e.travel_rule_profile is None
                    else redacted(e.travel_rule_profile),
                )
                for e in entries
                if client.sees(e.account)
            ]
        )

    return app
