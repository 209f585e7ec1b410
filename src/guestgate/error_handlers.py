"""Turns every error, ours and the framework's, into the `{type, code, message, doc_url}` body."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from guestgate.db import fault_of
from guestgate.errors import (
    GuestgateError,
    InternalError,
    InvalidJSON,
    InvalidRequest,
    MethodNotAllowed,
    ParameterInvalid,
    ParameterMissing,
    RouteNotFound,
    kind_of,
)
from guestgate.schemas import INVALID, OUT_OF_RANGE

log = structlog.get_logger(__name__)

_TYPE_REASONS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "list_type": "must be an array",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_too_long": "is too long",
    "string_too_short": "is too short",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
    "datetime_parsing": "must be an RFC 3339 date-time",
    "datetime_type": "must be an RFC 3339 date-time",
    "value_error": "is invalid",
    "extra_forbidden": "is not a known field",
}


def error_body(error: GuestgateError, public_url: str) -> dict[str, str]:
    """The JSON body for an error."""
    return {
        "type": kind_of(error).type,
        "code": error.code,
        "message": error.message,
        "doc_url": f"{public_url}/errors/{error.code}",
    }


def error_response(error: GuestgateError, public_url: str) -> JSONResponse:
    """The JSON response for an error, with Retry-After where it applies."""
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(error_body(error, public_url), status_code=kind_of(error).status, headers=headers)


def param_name(loc: Sequence[int | str]) -> str:
    """`('body', 'sites', 0, 'subnets')` -> `sites[0].subnets`."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def from_validation_error(errors: Sequence[Any]) -> InvalidRequest:
    """The domain error for the first of pydantic's validation errors."""
    first = errors[0]
    kind, loc, ctx = first.get("type", ""), first.get("loc", ()), first.get("ctx") or {}
    if kind == "json_invalid":
        return InvalidJSON("The request body is not valid JSON.")
    name = param_name(loc)
    if kind == "missing":
        if name == "body":
            return InvalidRequest("The request body must be a JSON object.", code="parameter_missing")
        return ParameterMissing(name)
    if name == "body":
        return InvalidRequest("The request body must be a JSON object.")
    if kind == OUT_OF_RANGE:
        if ctx.get("hi") is None:
            return ParameterInvalid(name, f"must be at least {ctx['lo']}")
        return ParameterInvalid(name, f"must be between {ctx['lo']} and {ctx['hi']}")
    if kind == INVALID:
        return ParameterInvalid(name, str(ctx.get("reason", "is invalid")))
    if kind in ("literal_error", "enum"):
        return ParameterInvalid(name, f"must be one of {ctx.get('expected', 'the allowed values')}")
    return ParameterInvalid(name, _TYPE_REASONS.get(kind, "is invalid"))


def install(app: FastAPI, public_url: str) -> None:
    """Register the handlers that give every error the contract's body."""

    async def on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GuestgateError)
        return error_response(exc, public_url)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(from_validation_error(exc.errors()), public_url)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error: GuestgateError
        fault = fault_of(exc.__cause__) if exc.__cause__ is not None else None
        if isinstance(exc.__cause__, GuestgateError):  # e.g. the body limit hit while parsing
            error = exc.__cause__
        elif fault is not None:  # e.g. the disk filled up while an upload was spooled to it
            error = fault
        elif exc.status_code == 404:
            error = RouteNotFound(request.url.path)
        elif exc.status_code == 405:
            error = MethodNotAllowed(request.method, request.url.path)
        elif exc.status_code < 500:
            error = InvalidRequest(str(exc.detail))
        else:
            error = InternalError("An internal error occurred.")
        response = error_response(error, public_url)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_fault(request: Request, exc: Exception) -> JSONResponse:
        error = fault_of(exc)
        if error is None:
            return await on_crash(request, exc)
        # The database or the disk, not guestgate: a warning, the request can be retried.
        log.warning(
            "request_fault", path=request.url.path, code=error.code, error=(str(exc).splitlines() or [""])[0]
        )
        return error_response(error, public_url)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, method=request.method, exc_info=exc)
        return error_response(InternalError("An internal error occurred."), public_url)

    app.add_exception_handler(GuestgateError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    # A database that is down or locked (503), a disk that is full (507): faults, not crashes.
    app.add_exception_handler(sa_exc.DBAPIError, on_fault)
    app.add_exception_handler(sa_exc.TimeoutError, on_fault)
    app.add_exception_handler(OSError, on_fault)
    app.add_exception_handler(Exception, on_crash)
