"""Pages of the operator console at /console: thin, each calls the services the API calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from guestgate import local_time
from guestgate.api_tokens import service as token_service
from guestgate.audit import service as audit_service
from guestgate.audit.schemas import AuditFilter
from guestgate.console import (
    account_pages,
    auth,
    dashboard,
    garden_pages,
    group_pages,
    schedule_pages,
    service,
    site_pages,
)
from guestgate.console.web import (
    LOGIN_CSRF_COOKIE,
    PREFIX,
    Anyone,
    ConsoleRoute,
    Desk,
    DeskWriter,
    FormDep,
    Owner,
    Printer,
    Reader,
    Writer,
    cookie_secure,
    field_errors,
    int_field,
    login_csrf_matches,
    page_request,
    read_form,
    redirect,
    render,
    with_login_csrf,
)
from guestgate.coupon_links import service as coupon_links
from guestgate.coupon_links import signing
from guestgate.coupons import batches, export
from guestgate.coupons import service as coupon_service
from guestgate.coupons.schemas import CouponCreate
from guestgate.db import utcnow
from guestgate.deps import RuntimeDep, SessionDep, request_address
from guestgate.errors import (
    AuthenticationFailed,
    GuestgateError,
    ParameterInvalid,
    ParameterMissing,
    RateLimited,
    kind_of,
)
from guestgate.gateways import service as gateway_service
from guestgate.instances import service as instance_service
from guestgate.pagination import PageRequest
from guestgate.security import ALL_SCOPES
from guestgate.site_users import service as site_user_service
from guestgate.site_users.schemas import SessionFilter
from guestgate.sites import service as site_service

# Each module's routes carry the full path (their router has the prefix), so logs and metrics
# name them `/console/...`; `router` gathers them for the app.
pages = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
def _page(cursor: str | None) -> PageRequest:
    return page_request(cursor)


@pages.get("/static/console.css")
def stylesheet() -> FileResponse:
    """The console's one stylesheet."""
    return FileResponse(
        STATIC / "console.css", media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


@pages.get("/login")
def login_page(request: Request, runtime: RuntimeDep, next: str = PREFIX) -> Response:
    """The sign-in form (with a pre-session CSRF token, double-submitted as a cookie)."""
    token = auth.new_token()
    page = render(request, "login.html", {"login_csrf": token, "next": _safe_next(next), "errors": {}})
    return with_login_csrf(page, token, runtime.settings)


@pages.post("/login")
async def login(request: Request, runtime: RuntimeDep, session: SessionDep) -> Response:
    """Check the password; on success set the session cookie and go to `next`."""
    form = await read_form(request)
    target = _safe_next(form.get("next", PREFIX))
    if not login_csrf_matches(request, form):
        return login_page_with(request, runtime, target, {"_": "This form has expired. Try again."}, 403)
    try:
        signed = service.login(
            form.get("email", ""),
            form.get("password", ""),
            now=utcnow(),
            settings=runtime.settings,
            ip=request_address(request, runtime),
            session=session,
        )
    except RateLimited as error:
        return login_page_with(request, runtime, target, {"_": error.message}, 429)
    except (AuthenticationFailed, ParameterInvalid) as error:
        return login_page_with(request, runtime, target, {"_": error.message}, 401)
    response = redirect(target)
    response.set_cookie(
        auth.COOKIE,
        signed.token,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(runtime.settings),
        path=PREFIX,
        max_age=runtime.settings.console_absolute_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


def login_page_with(
    request: Request, runtime: RuntimeDep, target: str, errors: dict[str, str], status: int
) -> Response:
    """The sign-in form again, with what went wrong."""
    token = auth.new_token()
    page = render(
        request, "login.html", {"login_csrf": token, "next": target, "errors": errors}, status=status
    )
    return with_login_csrf(page, token, runtime.settings)


def _safe_next(target: str) -> str:
    # Only a path of the console itself: never an open redirect.
    if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


@pages.post("/logout")
def logout(who: Anyone, session: SessionDep, _form: FormDep) -> Response:
    """End the session."""
    service.logout(who, session=session)
    response = redirect(f"{PREFIX}/login")
    response.delete_cookie(auth.COOKIE, path=PREFIX)
    return response


@pages.get("/set-password/{token}")
def set_password_page(request: Request, token: str, session: SessionDep) -> Response:
    """The form of a one-time set-password link."""
    user = service.invited_user(token, now=utcnow(), session=session)
    return render(request, "set_password.html", {"email": user.email, "token": token, "errors": {}})


@pages.post("/set-password/{token}")
async def set_password(request: Request, token: str, session: SessionDep) -> Response:
    """Choose a password with a one-time link (the token in the path is the CSRF proof)."""
    form = await read_form(request)
    if form.get("password", "") != form.get("confirm", ""):
        user = service.invited_user(token, now=utcnow(), session=session)
        errors = {"confirm": "The two passwords differ."}
        return render(
            request, "set_password.html", {"email": user.email, "token": token, "errors": errors}, status=400
        )
    try:
        service.set_password(token, form.get("password", ""), now=utcnow(), session=session)
    except ParameterInvalid as error:
        user = service.invited_user(token, now=utcnow(), session=session)
        return render(
            request,
            "set_password.html",
            {"email": user.email, "token": token, "errors": field_errors(error)},
            status=400,
        )
    return redirect(f"{PREFIX}/login")


@pages.post("/org")
def switch_org(who: Anyone, session: SessionDep, form: FormDep) -> Response:
    """Work in another org the user belongs to."""
    service.switch_org(who, form.get("org_id", ""), session=session)
    return redirect(PREFIX)


@pages.get("")
def home(request: Request, who: Anyone, session: SessionDep) -> Response:
    """The dashboard; the front desk starts at its own page."""
    if not who.can("read"):
        return redirect(f"{PREFIX}/desk")
    data = dashboard.build(org_id=who.org_id, now=utcnow(), session=session)
    orgs = service.memberships(who.user_id, session=session)
    return render(request, "dashboard.html", {"data": data, "orgs": orgs})


@pages.get("/desk")
def desk(request: Request, who: Desk, session: SessionDep) -> Response:
    """The front desk: one button per preset."""
    presets = service.list_presets(org_id=who.org_id, session=session)
    orgs = service.memberships(who.user_id, session=session)
    return render(request, "desk.html", {"presets": presets, "orgs": orgs})


@pages.post("/desk/presets/{preset_id}/print")
def print_preset(
    preset_id: str, who: Printer, session: SessionDep, runtime: RuntimeDep, _form: FormDep
) -> Response:
    """Make the preset's batch (as `POST .../coupons` does) and open its PDF."""
    preset = service.get_preset(preset_id, org_id=who.org_id, session=session)
    now = utcnow()
    made = coupon_service.create_batch(
        preset.instance_id,
        CouponCreate(count=preset.count, minutes_valid=preset.minutes_valid),
        org_id=who.org_id,
        now=now,
        session=session,
    )
    link = batches.link(made.batch, signer=runtime.signer, public_url="", now=now, session=session)
    paper: signing.Paper = "letter" if preset.paper == "letter" else "a4"
    return redirect(f"{link.in_format('pdf')}&paper={paper}")


@pages.get("/presets")
def presets_page(request: Request, who: Reader, session: SessionDep) -> Response:
    """The org's presets, and (for admins) the form to add one."""
    return _presets(request, who, session, errors={}, status=200)


def _presets(
    request: Request,
    who: Reader,
    session: SessionDep,
    *,
    errors: dict[str, str],
    status: int,
    values: dict[str, str] | None = None,
) -> Response:
    presets = service.list_presets(org_id=who.org_id, session=session)
    instances = instance_service.list_instances(org_id=who.org_id, page=_page(None), session=session).items
    coupon_instances = [view for view in instances if view.instance.strategy == "coupon"]
    return render(
        request,
        "presets.html",
        {"presets": presets, "instances": coupon_instances, "errors": errors, "values": values or {}},
        status=status,
    )


@pages.post("/presets")
def create_preset(request: Request, who: Writer, session: SessionDep, form: FormDep) -> Response:
    """Add a preset; errors are shown next to their field."""
    try:
        service.create_preset(
            org_id=who.org_id,
            instance_id=form.get("instance_id", ""),
            name=form.get("name", ""),
            count=int_field(form, "count"),
            minutes_valid=int_field(form, "minutes_valid"),
            paper=form.get("paper", "a4"),
            session=session,
        )
    except ParameterInvalid as error:
        session.rollback()
        return _presets(request, who, session, errors=field_errors(error), status=400, values=form)
    return redirect(f"{PREFIX}/presets")


@pages.post("/presets/{preset_id}/delete")
def delete_preset(preset_id: str, who: Writer, session: SessionDep, _form: FormDep) -> Response:
    """Remove a preset."""
    service.delete_preset(preset_id, org_id=who.org_id, session=session)
    return redirect(f"{PREFIX}/presets")


@pages.get("/coupons")
def coupons_page(
    request: Request,
    who: Reader,
    session: SessionDep,
    instance: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """An instance's valid coupons, newest first, a page at a time."""
    instances = instance_service.list_instances(org_id=who.org_id, page=_page(None), session=session).items
    choices = [view for view in instances if view.instance.strategy == "coupon"]
    chosen = instance or (choices[0].instance.id if choices else None)
    page = None
    if chosen is not None:
        page = coupon_service.list_valid(
            chosen, org_id=who.org_id, now=utcnow(), page=_page(cursor), session=session
        )
    return render(request, "coupons.html", {"instances": choices, "chosen": chosen, "page": page})


@pages.get("/coupons.csv")
def coupons_csv(
    who: Reader, session: SessionDep, runtime: RuntimeDep, instance: Annotated[str | None, Query()] = None
) -> Response:
    """Every valid coupon of an instance as CSV (the columns of the batch links' CSV), written as read."""
    if not instance:
        raise ParameterMissing("instance")
    chosen = instance_service.get(instance, org_id=who.org_id, session=session)
    now = utcnow()
    zone = local_time.zone(chosen.timezone)

    def parts() -> Iterator[str]:
        # Its own session: the request's is closed once the response has started.
        with runtime.sessions() as own:
            pages = coupon_service.valid_pages(chosen.id, org_id=who.org_id, now=now, session=own)
            for number, items in enumerate(pages):
                yield export.to_csv(items, zone=zone, header=number == 0)

    stem = signing.filename(coupon_links.file_stem(chosen.name, now, zone, with_time=True), "csv")
    return StreamingResponse(
        parts(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{stem}"', "Cache-Control": "no-store"},
    )


@pages.get("/guests")
def guests_page(
    request: Request,
    who: Desk,
    session: SessionDep,
    site: Annotated[str | None, Query()] = None,
    ip: Annotated[str | None, Query()] = None,
    mac: Annotated[str | None, Query()] = None,
    identity: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """Guests online at a site, searched by IP or MAC address or by the e-mail or name they signed in with."""
    sites = site_service.list_sites(
        org_id=who.org_id, page=PageRequest.parse(1000, None), session=session
    ).items
    chosen = site or (sites[0].id if sites else None)
    now = utcnow()
    users = None
    errors: dict[str, str] = {}
    if chosen is not None:
        try:
            filters = SessionFilter.parse(
                status=site_user_service.ACTIVE, ip_address=ip or None, mac_address=mac or None, identity=identity or None
            )
            users = site_user_service.list_users(
                chosen, org_id=who.org_id, filters=filters, now=now, page=_page(cursor), session=session
            )
        except ParameterInvalid as error:
            errors = field_errors(error)
    return render(
        request,
        "guests.html",
        {
            "sites": sites,
            "chosen": chosen,
            "users": users,
            "ip": ip or "",
            "mac": mac or "",
            "identity": identity or "",
            "errors": errors,
            "now": now,
        },
        status=400 if errors else 200,
    )


@pages.post("/guests/{site_id}/{user_id}/disconnect")
def disconnect(
    site_id: str,
    user_id: str,
    who: DeskWriter,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    _form: FormDep,
) -> Response:
    """End a guest's session; the gateway drops it (as the API's disconnect does)."""
    now = utcnow()
    user = site_user_service.disconnect(site_id, user_id, org_id=who.org_id, now=now, session=session)
    if site_user_service.effective_status(user, now=now) != site_user_service.ACTIVE:
        background.add_task(gateway_service.revoke, runtime, [gateway_service.ref_of(user)])
    response = redirect(f"{PREFIX}/guests?site={site_id}")
    response.background = background
    return response


@pages.get("/audit")
def audit_page(
    request: Request,
    who: Reader,
    session: SessionDep,
    action: Annotated[str | None, Query()] = None,
    actor: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """The org's audit log, filtered by action and actor."""
    errors: dict[str, str] = {}
    page = None
    try:
        filters = AuditFilter.parse(action=action or None, actor=actor or None)
        page = audit_service.list_events(
            org_id=who.org_id, filters=filters, page=_page(cursor), session=session
        )
    except GuestgateError as error:
        errors = field_errors(error)
    return render(
        request,
        "audit.html",
        {"page": page, "action": action or "", "actor": actor or "", "errors": errors},
        status=400 if errors else 200,
    )


@pages.get("/users")
def users_page(request: Request, who: Owner, session: SessionDep) -> Response:
    """The org's members (owners only)."""
    return _users(request, who, session, errors={}, invite_url=None, status=200)


def _users(
    request: Request,
    who: Owner,
    session: SessionDep,
    *,
    errors: dict[str, str],
    invite_url: str | None,
    status: int,
) -> Response:
    members = service.list_members(org_id=who.org_id, session=session)
    return render(
        request,
        "users.html",
        {"members": members, "roles": service.ROLES, "errors": errors, "invite_url": invite_url},
        status=status,
    )


@pages.post("/users")
def invite(request: Request, who: Owner, session: SessionDep, runtime: RuntimeDep, form: FormDep) -> Response:
    """Add a member; a new person gets a one-time set-password link to pass on."""
    try:
        invited = service.add_member(
            org_id=who.org_id,
            email=form.get("email", ""),
            role=form.get("role", ""),
            now=utcnow(),
            settings=runtime.settings,
            session=session,
        )
    except GuestgateError as error:
        session.rollback()
        return _users(
            request, who, session, errors=field_errors(error), invite_url=None, status=kind_of_status(error)
        )
    url = _invite_url(runtime, invited.invite_token) if invited.invite_token else None
    return _users(request, who, session, errors={}, invite_url=url, status=200)


def kind_of_status(error: GuestgateError) -> int:
    """The HTTP status of a domain error."""
    return kind_of(error).status


def _invite_url(runtime: RuntimeDep, token: str) -> str:
    return f"{runtime.settings.public_url}{PREFIX}/set-password/{token}"


@pages.post("/users/{user_id}/role")
def change_role(request: Request, user_id: str, who: Owner, session: SessionDep, form: FormDep) -> Response:
    """Change a member's role."""
    try:
        service.change_role(user_id, form.get("role", ""), org_id=who.org_id, by=who, session=session)
    except ParameterInvalid as error:
        session.rollback()
        return _users(request, who, session, errors=field_errors(error), invite_url=None, status=400)
    return redirect(f"{PREFIX}/users")


@pages.post("/users/{user_id}/disable")
def disable(request: Request, user_id: str, who: Owner, session: SessionDep, form: FormDep) -> Response:
    """Disable a member (signed out at once) or, with `enable=1`, enable them again."""
    try:
        service.set_disabled(user_id, form.get("enable") != "1", org_id=who.org_id, by=who, session=session)
    except ParameterInvalid as error:
        session.rollback()
        return _users(request, who, session, errors=field_errors(error), invite_url=None, status=400)
    return redirect(f"{PREFIX}/users")


@pages.post("/users/{user_id}/invite")
def reinvite(
    request: Request, user_id: str, who: Owner, session: SessionDep, runtime: RuntimeDep, _form: FormDep
) -> Response:
    """A fresh one-time set-password link for a member."""
    token = service.reinvite(
        user_id, org_id=who.org_id, now=utcnow(), settings=runtime.settings, session=session
    )
    return _users(request, who, session, errors={}, invite_url=_invite_url(runtime, token), status=200)


# What a console role may put in a token it mints: an admin's own powers, never more.
ROLE_SCOPES = {"owner": ALL_SCOPES, "admin": ALL_SCOPES}


@pages.get("/tokens")
def tokens_page(
    request: Request, who: Writer, session: SessionDep, cursor: Annotated[str | None, Query()] = None
) -> Response:
    """The org's API tokens (revoked and expired included), newest first."""
    return _tokens(request, who, session, cursor=cursor, errors={}, minted=None, status=200)


def _tokens(
    request: Request,
    who: Writer,
    session: SessionDep,
    *,
    cursor: str | None,
    errors: dict[str, str],
    minted: str | None,
    status: int,
) -> Response:
    page = token_service.list_tokens(who.org_id, page=_page(cursor), session=session)
    return render(
        request,
        "tokens.html",
        {
            "page": page,
            "scopes": ALL_SCOPES,
            "errors": errors,
            "minted": minted,
            "now": utcnow(),
            "days": token_service.DEFAULT_TTL_SECONDS // 86400,
        },
        status=status,
    )


@pages.post("/tokens")
async def mint_token(
    request: Request, who: Writer, session: SessionDep, runtime: RuntimeDep, form: FormDep
) -> Response:
    """Mint a named token; it is shown on this page once."""
    scopes = [value for key, value in (await request.form()).multi_items() if key == "scopes"]
    try:
        _, token = token_service.mint(
            who.org_id,
            form.get("name", ""),
            [s for s in scopes if isinstance(s, str)],
            int_field(form, "ttl_days") * 86400,
            f"console:{who.email}",
            settings=runtime.settings,
            session=session,
            now=utcnow(),
            subject=f"console:{who.email}",
            granted_by=ROLE_SCOPES.get(who.role, ()),
        )
    except GuestgateError as error:
        session.rollback()
        if isinstance(error, ParameterInvalid) and error.param == "ttl_seconds":
            error = ParameterInvalid("ttl_days", "must be between 1 and 365")
        return _tokens(
            request,
            who,
            session,
            cursor=None,
            errors=field_errors(error),
            minted=None,
            status=kind_of(error).status,
        )
    return _tokens(request, who, session, cursor=None, errors={}, minted=token, status=200)


@pages.post("/tokens/{token_id}/revoke")
def revoke_token(
    token_id: str, who: Writer, session: SessionDep, runtime: RuntimeDep, _form: FormDep
) -> Response:
    """Revoke a token: the API refuses it at once here, elsewhere within the revocation bound."""
    token_service.revoke(
        token_id, org_id=who.org_id, session=session, now=utcnow(), revocations=runtime.revocations
    )
    return redirect(f"{PREFIX}/tokens")


# The pages of the other domains, each in its own module, under the same prefix and route class.
router.include_router(pages)
router.include_router(site_pages.router)
router.include_router(schedule_pages.router)
router.include_router(garden_pages.router)
router.include_router(group_pages.router)
router.include_router(account_pages.router)
