"""The console's own account pages: change your password, and "Forgot password" with its mailed link.

The forms before sign-in carry the login page's pre-session CSRF token (cookie and field);
a reset link's token in the path is its own proof, as a set-password link's is.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response

from guestgate.config import Settings
from guestgate.console import auth, passwords, reset_mail
from guestgate.console.web import (
    PREFIX,
    Anyone,
    ConsoleRoute,
    FormDep,
    field_errors,
    login_csrf_matches,
    redirect,
    render,
    with_login_csrf,
)
from guestgate.coupon_links.limits import address_bucket
from guestgate.db import utcnow
from guestgate.deps import RuntimeDep, SessionDep, get_runtime, request_address
from guestgate.errors import ParameterInvalid, RateLimited
from guestgate.ops import ratelimit

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
# Always these words after "Forgot password", whether a mail went out or not.
RESET_ANSWER = (
    "If this address belongs to an active console account, a link to choose a new password is on "
    "its way. It works once, for {minutes} minutes."
)


def build_limiter(settings: Settings) -> ratelimit.Limiter | None:
    """The per-client limiter of "Forgot password" (`console_reset_per_minute`, as many at once)."""
    per_minute = settings.console_reset_per_minute
    return ratelimit.limiter_for(per_minute, per_minute, settings)


async def reset_admitted(request: Request) -> None:
    """Count a "Forgot password" request of the client's address (its /64 for IPv6); RateLimited past the limit.

    Counted before anything is looked up, so the limit says nothing about which accounts exist.
    """
    limiter: ratelimit.Limiter | None = getattr(request.app.state, "console_reset_limiter", None)
    if limiter is None:
        return
    address = request_address(request, get_runtime(request))
    wait = await limiter.retry_after(f"console-reset:{address_bucket(address)}", time.time())
    if wait is not None:
        raise RateLimited(
            "Too many password-reset requests from your address. Try again in a minute.",
            retry_after=max(1, math.ceil(wait)),
        )


@router.get("/forgot-password")
def forgot_password_page(request: Request, runtime: RuntimeDep) -> Response:
    """The form asking for the address to send a reset link to."""
    token = auth.new_token()
    page = render(request, "forgot_password.html", {"login_csrf": token, "answer": None, "errors": {}})
    return with_login_csrf(page, token, runtime.settings)


@router.post("/forgot-password")
def forgot_password(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    form: FormDep,
    background: BackgroundTasks,
    _admitted: Annotated[None, Depends(reset_admitted)],
) -> Response:
    """Send a reset link if the address is an active account's; the same answer in every case."""
    if not login_csrf_matches(request, form):
        token = auth.new_token()
        errors = {"_": "This form has expired. Try again."}
        page = render(
            request, "forgot_password.html", {"login_csrf": token, "answer": None, "errors": errors}, status=403
        )
        return with_login_csrf(page, token, runtime.settings)
    now = utcnow()
    settings = runtime.settings
    mail = passwords.request_reset(
        form.get("email", ""), now=now, settings=settings, ip=request_address(request, runtime), session=session
    )
    if mail is not None:
        background.add_task(reset_mail.send, mail, settings=settings, prefix=PREFIX, now=now)
    answer = RESET_ANSWER.format(minutes=settings.console_reset_minutes)
    response = render(request, "forgot_password.html", {"login_csrf": "", "answer": answer, "errors": {}})
    response.background = background
    return response


def _reset_form(request: Request, token: str, email: str, errors: dict[str, str], status: int) -> Response:
    return render(
        request,
        "set_password.html",
        {"email": email, "action": f"{PREFIX}/reset-password/{token}", "errors": errors, "reset": True},
        status=status,
    )


@router.get("/reset-password/{token}")
def reset_password_page(request: Request, token: str, session: SessionDep) -> Response:
    """The form of a mailed reset link (404 once used, replaced or expired)."""
    user = passwords.reset_user(token, now=utcnow(), session=session)
    return _reset_form(request, token, user.email, {}, 200)


@router.post("/reset-password/{token}")
def reset_password(
    request: Request, token: str, runtime: RuntimeDep, session: SessionDep, form: FormDep
) -> Response:
    """Set a new password with a reset link; every session of the account ends."""
    user = passwords.reset_user(token, now=utcnow(), session=session)
    if form.get("password", "") != form.get("confirm", ""):
        return _reset_form(request, token, user.email, {"confirm": "The two passwords differ."}, 400)
    try:
        passwords.reset_password(
            token,
            form.get("password", ""),
            now=utcnow(),
            ip=request_address(request, runtime),
            session=session,
        )
    except ParameterInvalid as error:
        session.rollback()
        return _reset_form(request, token, user.email, field_errors(error), 400)
    return redirect(f"{PREFIX}/login")


@router.get("/account")
def account_page(request: Request, who: Anyone) -> Response:
    """The signed-in user's account: change the password."""
    return _account(request, {}, 200)


@router.post("/account/password")
def change_password(
    request: Request, who: Anyone, runtime: RuntimeDep, session: SessionDep, form: FormDep
) -> Response:
    """Change the password (the current one first); the user's other sessions end."""
    if form.get("password", "") != form.get("confirm", ""):
        return _account(request, {"confirm": "The two new passwords differ."}, 400)
    try:
        passwords.change_password(
            who,
            form.get("current", ""),
            form.get("password", ""),
            now=utcnow(),
            settings=runtime.settings,
            ip=request_address(request, runtime),
            session=session,
        )
    except RateLimited as error:
        return _account(request, {"current": error.message}, 429)
    except ParameterInvalid as error:
        return _account(request, field_errors(error), 400)
    return render(request, "account.html", {"errors": {}, "changed": True})


def _account(request: Request, errors: dict[str, str], status: int) -> Response:
    return render(request, "account.html", {"errors": errors, "changed": False}, status=status)
