"""What every console page shares: templates, the security headers, the signed-in operator, errors in words.

Routes raise domain errors; `ConsoleRoute` turns them into a page (status from the one error
table), so a route never builds an error response itself. A request without a valid session
is sent to the login page.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.config import Settings
from guestgate.console import auth, service
from guestgate.console.service import Ability, Operator
from guestgate.db import utcnow
from guestgate.deps import get_runtime, get_session, request_address
from guestgate.error_handlers import from_validation_error
from guestgate.errors import GuestgateError, ParameterInvalid, PermissionDenied, kind_of
from guestgate.pagination import PageRequest

PREFIX = "/console"
# Rows per console list page (the API's keyset pagination underneath).
PAGE_SIZE = 50
TEMPLATES = Path(__file__).parent / "templates"
# Nothing from anywhere but this server; no inline script or style; no framing.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# The pre-session CSRF token of the sign-in and "Forgot password" forms, double-submitted as a cookie.
LOGIN_CSRF_COOKIE = "guestgate_console_login"


def cookie_secure(settings: Settings) -> bool:
    """True when the console is served over HTTPS (its cookies are then `Secure`)."""
    return settings.public_url.startswith("https://")


def with_login_csrf(page: Response, token: str, settings: Settings) -> Response:
    """`page` with the cookie half of a pre-session CSRF token whose other half is in its form."""
    page.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=cookie_secure(settings), path=PREFIX
    )
    return page


def login_csrf_matches(request: Request, form: dict[str, str]) -> bool:
    """True if a pre-session form came back with the token of its cookie."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    return bool(expected) and auth.csrf_matches(expected or "", form.get(auth.CSRF_FIELD))


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


class CsrfRefused(PermissionDenied):
    """A form came back without this session's CSRF token."""

    def __init__(self) -> None:
        super().__init__("This form has expired. Reload the page and try again.", code="signature_invalid")


@functools.cache
def environment() -> Environment:
    """The console's Jinja2 environment (autoescaped)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True), auto_reload=False
    )
    env.globals["prefix"] = PREFIX
    return env


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    operator: Operator | None = None,
) -> HTMLResponse:
    """A page from the console's templates, with the security headers."""
    who = operator if operator is not None else request.scope.get("console_operator")
    body = (
        environment()
        .get_template(name)
        .render(request=request, operator=who, csrf_field=auth.CSRF_FIELD, **context)
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def redirect(url: str) -> RedirectResponse:
    """A 303 to `url` (after a form, the browser GETs it)."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


_INDEX = re.compile(r"\[\d+\]")


def field_errors(error: GuestgateError, *, fields: frozenset[str] = frozenset()) -> dict[str, str]:
    """The error as messages by form field (`_` when it names no field).

    A parameter that is not itself one of `fields` but is one once its list indexes are dropped
    (`subnets[3]` of a one-per-line text area named `subnets`) is shown at that field.
    """
    param = getattr(error, "param", None)
    name = str(param) if param else "_"
    if fields and name not in fields and _INDEX.sub("", name) in fields:
        name = _INDEX.sub("", name)
    return {name: error.message}


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: dict[str, Any]) -> M:
    """`data` as the API's request model; a pydantic error becomes the API's domain error for it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def page_request(cursor: str | None) -> PageRequest:
    """A console list page: PAGE_SIZE rows after `cursor`."""
    return PageRequest.parse(PAGE_SIZE, cursor or None)


def optional(form: dict[str, str], name: str) -> str | None:
    """A form field with surrounding blanks removed; None when empty."""
    value = form.get(name, "").strip()
    return value or None


def lines(form: dict[str, str], name: str) -> list[str]:
    """A text area as its non-empty lines (commas also separate)."""
    return [part.strip() for part in form.get(name, "").replace(",", "\n").splitlines() if part.strip()]


class ConsoleRoute(APIRoute):
    """Renders domain errors as pages, and a missing session as a redirect to the login page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                target = quote(request.url.path, safe="/")
                return redirect(f"{PREFIX}/login?next={target}")
            except GuestgateError as error:
                status = kind_of(error).status
                return render(request, "error.html", {"error": error, "status": status}, status=status)

        return route


async def _operator(request: Request, session: Annotated[Session, Depends(get_session)]) -> Operator:
    runtime = get_runtime(request)
    found = service.resume(
        request.cookies.get(auth.COOKIE), now=utcnow(), settings=runtime.settings, session=session
    )
    if found is None:
        raise LoginRequired()
    if request.method == "POST":
        # Checked before the route runs: a form without this session's token changes nothing.
        form = await read_form(request)
        if not auth.csrf_matches(found.csrf_token, form.get(auth.CSRF_FIELD)):
            raise CsrfRefused()
    request.scope["console_operator"] = found
    audit_service.act_as(
        session, audit_service.Actor(f"console:{found.email}", request_address(request, runtime))
    )
    return found


def allowed(*abilities: Ability) -> Callable[..., Operator]:
    """A dependency: the signed-in operator, if their role grants one of `abilities` (else 403)."""

    def dependency(operator: Annotated[Operator, Depends(_operator)]) -> Operator:
        if not any(operator.can(ability) for ability in abilities):
            operator.require(abilities[0])
        return operator

    return dependency


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields (Starlette parses the body once per request)."""
    form = await request.form(max_files=0, max_fields=100)
    return {key: value for key, value in form.items() if isinstance(value, str)}


FormDep = Annotated[dict[str, str], Depends(read_form)]
Reader = Annotated[Operator, Depends(allowed("read"))]
Writer = Annotated[Operator, Depends(allowed("write"))]
Desk = Annotated[Operator, Depends(allowed("desk", "read"))]
DeskWriter = Annotated[Operator, Depends(allowed("desk", "write"))]
Printer = Annotated[Operator, Depends(allowed("desk"))]
Owner = Annotated[Operator, Depends(allowed("users"))]
Anyone = Annotated[Operator, Depends(allowed("read", "desk"))]


def int_field(form: dict[str, str], name: str) -> int:
    """A form field as an integer; InvalidRequest naming the field otherwise."""
    try:
        return int(form.get(name, "").strip())
    except ValueError:
        raise ParameterInvalid(name, "must be a whole number") from None
