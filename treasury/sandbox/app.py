"""The HTTP face of the sandbox: Binance's capital API routes and their common pipeline.

Every route goes through one pipeline, in Binance's order: rate-limit pool (IP pools
before the key is read), ``X-MBX-APIKEY`` (-2014 missing, -2015 unknown), UID pool,
signature over the raw bytes (-1022), then timing (-1021, -1131). Its answer always
carries the used-weight header of the pool it charged. ``withdraw/apply`` journals every
request it receives, refused ones included, so the ledger sees what the client sent.

The ``outage`` and ``history_unavailable`` faults are checked before the pipeline: the
request is answered 503 -1001 without touching a pool or the state (an apply is still
journaled, as refused with fault ``outage``, because the ledger records every apply call).

An injected ``drop_after_accept`` is answered with :class:`DropConnection`, which asks
the server (``server.py`` wires it to uvicorn's open connections) to abort the TCP
connection: the client sees the connection close with no response, never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from treasury.sandbox import errors, history, localentity, views
from treasury.sandbox.accounts import AccountState
from treasury.sandbox.admin import ADMIN_ROUTES
from treasury.sandbox.core import ConnectionDropper, Sandbox
from treasury.sandbox.errors import ApiError
from treasury.sandbox.signing import ParsedRequest, Verifier, parse_request

_RECV_WINDOW = re.compile(r"[0-9]{1,20}(\.[0-9]{1,3})?")
DEFAULT_RECV_WINDOW = Decimal(5000)
LOCAL_APPLY = "localentity_apply"
APPLY_NAMES = ("withdraw_apply", LOCAL_APPLY)
HISTORY_NAMES = ("withdraw_history", "localentity_history_v1", "localentity_history_v2")
LOCAL_ACCEPTED = "Withdraw request accepted"  # the text of Binance's page example
MAX_RECV_WINDOW = Decimal(60000)


@dataclass(frozen=True)
class Call:
    sandbox: Sandbox
    account: AccountState
    params: dict[str, str]


Body = dict[str, object] | list[dict[str, object]] | Response
SignedHandler = Callable[[Call], Awaitable[Body]]
UnsignedHandler = Callable[[Sandbox, dict[str, str]], Body]


class DropConnection(Response):
    """Not a response: abort the client's TCP connection and send nothing."""

    def __init__(self, dropper: ConnectionDropper | None) -> None:
        super().__init__(b"", status_code=500)
        self.dropper = dropper

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.dropper is None or not self.dropper(scope.get("client")):
            raise ConnectionAbortedError("drop_after_accept needs the sandbox's own server")
        while (await receive())["type"] != "http.disconnect":
            pass


def build_app(sandbox: Sandbox) -> Starlette:
    verifiers = {
        name: Verifier(a.hmac_secret, a.ed25519_public_key, a.rsa_public_key)
        for name, a in sandbox.config.accounts.items()
    }

    def signed(
        path: str, name: str, pool: str, handler: SignedHandler, method: str = "GET"
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            sb: Sandbox = request.app.state.sandbox
            headers: dict[str, str] = {}
            account: AccountState | None = None
            parsed: ParsedRequest | None = None
            down = await _unavailable(sb, request, name)
            if down is not None:
                return down
            try:
                headers |= _charge_ip(sb, request, name, pool)
                account = _account_for(sb, request)
                if pool == "sapi_uid":
                    headers |= sb.limiter.charge_uid(account.uid, name, sb.exchange.now_ms())
                parsed = parse_request(request.scope["query_string"], await request.body())
                if parsed.signature_misplaced:
                    raise errors.invalid_signature()
                if parsed.signature is None:
                    raise errors.mandatory("signature")
                if not verifiers[account.name].verify(parsed.payload, parsed.signature):
                    raise errors.invalid_signature()
                _check_timing(parsed.params, sb.exchange.server_ms())
            except ApiError as error:
                if name in APPLY_NAMES:
                    params = parsed.params if parsed else await _lenient_params(request)
                    sb.exchange.record_apply(
                        account.name if account else None,
                        params,
                        error=error,
                        local=name == LOCAL_APPLY,
                    )
                return _error(error, headers)
            assert account is not None and parsed is not None
            try:
                body = await handler(Call(sb, account, parsed.params))
            except ApiError as error:
                return _error(error, headers)
            if isinstance(body, Response):
                body.headers.update(headers)
                return body
            return JSONResponse(body, headers=headers)

        return Route(path, endpoint, methods=[method])

    def unsigned(path: str, name: str, pool: str, handler: UnsignedHandler) -> Route:
        async def endpoint(request: Request) -> Response:
            sb: Sandbox = request.app.state.sandbox
            down = await _unavailable(sb, request, name)
            if down is not None:
                return down
            try:
                headers = _charge_ip(sb, request, name, pool)
            except ApiError as error:
                return _error(error, {})
            try:
                params = parse_request(request.scope["query_string"], b"").params
                body = handler(sb, params)
            except ApiError as error:
                return _error(error, headers)
            assert not isinstance(body, Response)
            return JSONResponse(body, headers=headers)

        return Route(path, endpoint, methods=["GET"])

    app = Starlette(
        routes=[
            unsigned(
                "/api/v3/time", "time", "api", lambda sb, _: {"serverTime": sb.exchange.server_ms()}
            ),
            unsigned("/api/v3/exchangeInfo", "exchange_info", "api", _exchange_info),
            signed("/api/v3/account", "account", "api", _account_info),
            unsigned(
                "/sapi/v1/system/status",
                "system_status",
                "sapi_ip",
                lambda sb, _: views.system_status(sb.faults.maintenance),
            ),
            signed("/sapi/v1/account/status", "account_status", "sapi_ip", _account_status),
            signed(
                "/sapi/v1/account/apiRestrictions", "api_restrictions", "sapi_ip", _restrictions
            ),
            signed(
                "/sapi/v1/asset/get-funding-asset",
                "funding_asset",
                "sapi_ip",
                _funding_assets,
                "POST",
            ),
            signed("/sapi/v1/capital/config/getall", "config_getall", "sapi_ip", _getall),
            signed("/sapi/v1/capital/withdraw/address/list", "address_list", "sapi_ip", _addresses),
            signed("/sapi/v1/capital/withdraw/quota", "quota", "sapi_ip", _quota),
            signed("/sapi/v1/capital/withdraw/history", "withdraw_history", "sapi_uid", _history),
            signed("/sapi/v1/capital/withdraw/apply", "withdraw_apply", "sapi_uid", _apply, "POST"),
            signed(
                "/sapi/v1/localentity/questionnaire-requirements",
                "questionnaire_requirements",
                "sapi_ip",
                _requirements,
            ),
            signed(
                "/sapi/v1/localentity/withdraw/apply", LOCAL_APPLY, "sapi_uid", _local_apply, "POST"
            ),
            signed(
                "/sapi/v1/localentity/withdraw/history",
                "localentity_history_v1",
                "sapi_ip",
                _local_history,
            ),
            signed(
                "/sapi/v2/localentity/withdraw/history",
                "localentity_history_v2",
                "sapi_uid",
                _local_history,
            ),
            signed("/sapi/v1/localentity/vasp", "localentity_vasp", "sapi_ip", _vasps),
            signed(
                "/sapi/v1/localentity/country/list", "localentity_countries", "sapi_ip", _countries
            ),
            signed("/sapi/v1/localentity/region/list", "localentity_regions", "sapi_ip", _regions),
            *ADMIN_ROUTES,
        ]
    )
    app.state.sandbox = sandbox
    return app


# -- the pipeline -------------------------------------------------------------------------


async def _unavailable(sb: Sandbox, request: Request, name: str) -> Response | None:
    """The 503 of an injected outage (all endpoints, or history only); None when up."""
    if not (sb.faults.outage or (name in HISTORY_NAMES and sb.faults.history_unavailable)):
        return None
    error = errors.internal_error()
    if name in APPLY_NAMES:
        key = request.headers.get("X-MBX-APIKEY", "").strip()
        account = sb.exchange.by_api_key.get(key)
        params = await _lenient_params(request)
        sb.exchange.record_apply(
            account.name if account else None,
            params,
            error=error,
            fault="outage",
            local=name == LOCAL_APPLY,
        )
    return _error(error, {})


def _charge_ip(sb: Sandbox, request: Request, name: str, pool: str) -> dict[str, str]:
    ip = request.client.host if request.client else "unknown"
    now = sb.exchange.now_ms()
    if pool == "api":
        return sb.limiter.charge_api(ip, name, now)
    if pool == "sapi_ip":
        return sb.limiter.charge_sapi_ip(ip, name, now)
    return {}


def _account_for(sb: Sandbox, request: Request) -> AccountState:
    key = request.headers.get("X-MBX-APIKEY", "").strip()
    if not key or not key.isascii() or not key.isprintable():
        raise errors.bad_key_format()
    account = sb.exchange.by_api_key.get(key)
    if account is None:
        raise errors.rejected_key()
    return account


def _check_timing(params: dict[str, str], server_ms: int) -> None:
    raw = params.get("timestamp")
    if not raw:
        raise errors.mandatory("timestamp")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20:
        raise errors.illegal_characters("timestamp", errors.UNSIGNED_INT)
    timestamp = int(raw)
    window = DEFAULT_RECV_WINDOW
    if params.get("recvWindow"):
        if not _RECV_WINDOW.fullmatch(params["recvWindow"]):
            raise errors.illegal_characters("recvWindow", "^[0-9]{1,20}(\\.[0-9]{1,3})?$")
        window = Decimal(params["recvWindow"])
    if window > MAX_RECV_WINDOW:
        raise errors.recv_window_too_big()
    if timestamp >= server_ms + 1000:
        raise errors.timestamp_ahead()
    if server_ms - timestamp > window:
        raise errors.timestamp_outside_window()


async def _lenient_params(request: Request) -> dict[str, str]:
    try:
        return parse_request(request.scope["query_string"], await request.body()).params
    except ApiError:
        return {}


def _error(error: ApiError, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        error.body(), status_code=error.http_status, headers=headers | error.headers
    )


# -- the endpoints ------------------------------------------------------------------------


def _exchange_info(sb: Sandbox, params: dict[str, str]) -> Body:
    """``symbol`` or ``symbols`` (a JSON array) pick symbols, an unknown one is -1121 and
    both at once -1128; the other parameters Binance documents are not modelled (every
    listed symbol is ``TRADING`` with ``SPOT`` permission)."""
    one, many = params.get("symbol") or None, params.get("symbols") or None
    if one is not None and many is not None:
        raise errors.bad_combination("Only one of symbol and symbols may be sent.")
    wanted: list[str] | None = None
    if one is not None:
        wanted = [one]
    elif many is not None:
        wanted = _symbol_list(many)
    known = {base.coin + quote.coin for base, quote in views.spot_symbols(sb.config.coins)}
    if wanted is not None and not set(wanted) <= known:
        raise errors.invalid_symbol()
    limits = sb.config.rate_limits
    return views.exchange_info(
        sb.config.coins,
        sb.exchange.server_ms(),
        weight_limit=limits.scaled(limits.api_ip_weight_per_min) if limits.enabled else None,
        symbols=wanted,
    )


def _symbol_list(raw: str) -> list[str]:
    """``symbols``: a JSON array of names, ``["BTCUSDT","ETHBTC"]``."""
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise errors.illegal_characters("symbols", '^\\[("[A-Z0-9-_.]{1,20}"(,)?)+\\]$')
    return names


async def _account_info(call: Call) -> Body:
    ex = call.sandbox.exchange
    ex.settle()
    omit = call.params.get("omitZeroBalances", "false").lower() == "true"
    return views.account_info(call.account, ex.now_ms(), omit_zero=omit)


async def _account_status(call: Call) -> Body:
    return views.account_status(call.account)


async def _funding_assets(call: Call) -> Body:
    ex = call.sandbox.exchange
    ex.settle()
    return views.funding_assets(
        ex,
        call.account,
        ex.now_ms(),
        asset=call.params.get("asset") or None,
        btc_valuation=_boolean(call.params, "needBtcValuation"),
    )


def _boolean(params: dict[str, str], name: str) -> bool:
    """A BOOLEAN parameter: ``true`` or ``false`` (any case), absent or empty meaning false."""
    raw = params.get(name, "").lower()
    if raw not in ("", "true", "false"):
        raise errors.illegal_characters(name, "true|false")
    return raw == "true"


async def _restrictions(call: Call) -> Body:
    return views.api_restrictions(call.account)


async def _getall(call: Call) -> Body:
    ex = call.sandbox.exchange
    ex.settle()
    return views.coin_configs(ex, call.account, ex.now_ms())


async def _addresses(call: Call) -> Body:
    return views.address_list(call.account)


async def _quota(call: Call) -> Body:
    return views.quota(call.account, call.sandbox.exchange.now_ms())


async def _history(call: Call) -> Body:
    ex = call.sandbox.exchange
    now = ex.now_ms()
    query = history.parse_query(call.params, now)
    if query.withdraw_order_id is not None:
        candidates = ex.by_order_id.get((call.account.name, query.withdraw_order_id), [])
    elif query.ids is not None:
        candidates = [ex.by_id[i] for i in query.ids if i in ex.by_id]
        candidates = [w for w in candidates if w.account == call.account.name]
    else:
        candidates = ex.by_account.get(call.account.name, [])
    gross = call.sandbox.faults.history_amount == "gross"
    return history.select(candidates, query, now, gross=gross)


async def _apply(call: Call) -> Body:
    return await _submit(call, local=False)


async def _local_apply(call: Call) -> Body:
    return await _submit(call, local=True)


async def _submit(call: Call, *, local: bool) -> Body:
    """Both applies: the same faults, checks and booking; only the answer differs.

    ``localentity/withdraw/apply`` answers ``{"trId", "accepted": true, "info"}``, and a
    refused questionnaire ``{"accepted": false, "info": "<why>"}`` with HTTP 200 and
    nothing booked: the shape of a real refusal quoted in openxapi/openxapi#41. The key is
    ``accepted`` as in that answer (Binance's page example spells it ``accpted``).
    """
    sb, account, params = call.sandbox, call.account, call.params
    fault = sb.faults.fire("error_5xx_before")
    if fault is not None:
        error = ApiError(fault.code, str(fault.body()["msg"]), http_status=fault.status)
        sb.exchange.record_apply(
            account.name, params, error=error, fault="error_5xx_before", local=local
        )
        return JSONResponse(fault.body(), status_code=fault.status)
    fault = sb.faults.fire("delay_before_accept_s")
    if fault is not None:
        await anyio.sleep(fault.seconds)
    submission = sb.exchange.submit(account, params, local=local)
    if submission.error is not None:
        raise submission.error
    if submission.refusal is not None:
        return {"accepted": False, "info": submission.refusal}
    assert submission.withdrawal is not None
    if submission.delay_after is not None:
        await anyio.sleep(submission.delay_after.seconds)
    if submission.after_fault is not None:
        name, after = submission.after_fault
        if name == "drop_after_accept":
            return DropConnection(sb.drop_connection)
        return JSONResponse(after.body(), status_code=after.status)
    if local:
        return {"trId": submission.withdrawal.tr_id, "accepted": True, "info": LOCAL_ACCEPTED}
    return {"id": submission.withdrawal.id}


async def _requirements(call: Call) -> Body:
    """The account's questionnaire country code, ``NIL`` when it needs none (reference §11)."""
    return {"questionnaireCountryCode": call.account.config.local_entity or "NIL"}


async def _local_history(call: Call) -> Body:
    ex = call.sandbox.exchange
    gross = call.sandbox.faults.history_amount == "gross"
    rows = ex.by_account.get(call.account.name, [])
    return localentity.select(rows, call.params, ex.now_ms(), gross=gross)


async def _vasps(call: Call) -> Body:
    return [dict(v) for v in localentity.VASPS]


async def _countries(call: Call) -> Body:
    return localentity.country_list()


async def _regions(call: Call) -> Body:
    return localentity.region_list(call.params)
