"""Every error as one JSON shape, RFC 9457 problem details (``application/problem+json``):
``type``, ``title``, ``status``, ``detail`` and ``field`` when one field is at fault."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = structlog.get_logger("treasury.http")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://github.com/treasury/treasury/blob/main/README.md#errors-"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}
AMOUNT_FIELDS = {"amount"}
BODY_UNPARSED = "There was an error parsing the body"  # fastapi.routing's HTTPException(400)


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        field: str | None = None,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.kind = kind or TITLES.get(status, "error").lower().replace(" ", "-")
        self.headers = headers or {}


def response(problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.kind,
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "field": problem.field,
    }
    return JSONResponse(
        body, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers
    )


def _field_of(loc: tuple[Any, ...]) -> str | None:
    where, *rest = loc or ("",)
    if where == "header" and rest:
        return "-".join(part.capitalize() for part in str(rest[0]).split("-"))
    parts = [str(p) for p in rest]
    return ".".join(parts) or None


def validation_problem(exc: RequestValidationError) -> Problem:
    first = exc.errors()[0]
    loc = tuple(first.get("loc", ()))
    field = _field_of(loc)
    kind = first.get("type", "")
    if kind == "json_invalid":
        return Problem(422, "the body is not JSON", kind="invalid-json")
    if field in AMOUNT_FIELDS and kind in ("string_type", "str_type"):
        return Problem(
            422,
            f'{field}: a decimal string such as "125.50", not a JSON number (a number may '
            "have been rounded on its way through a float)",
            field=field,
            kind="amount-not-a-string",
        )
    message = str(first.get("msg", "invalid"))
    return Problem(
        422, f"{field}: {message}" if field else message, field=field, kind="invalid-field"
    )


def install(app: FastAPI) -> None:
    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return response(exc)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return response(validation_problem(exc))

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400 and exc.detail == BODY_UNPARSED:
            # FastAPI's answer to a body that is not even text (not UTF-8): the same
            # problem as one that is not JSON
            return response(Problem(422, "the body is not JSON", kind="invalid-json"))
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "")
        return response(Problem(exc.status_code, detail, headers=dict(exc.headers or {})))

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        # the message may quote a driver's error: logged by type and path, never answered
        log.error("http.error", path=request.url.path, error=type(exc).__name__)
        return response(Problem(500, "the server failed; nothing is known to be written"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_error)
