"""Console pages of sites: create and edit with the gateway settings, test the connection, the `.rsc`.

Every change goes through `sites.service` with the API's request model (`SiteIn`), so the
console applies the same rules: the deployment's gateway policy, and a RouterOS password that
must be given again when the router's host, port or TLS trust change.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from guestgate.console.web import (
    PREFIX,
    ConsoleRoute,
    FormDep,
    Reader,
    Writer,
    field_errors,
    lines,
    optional,
    page_request,
    parse_model,
    redirect,
    render,
)
from guestgate.deps import RuntimeDep, SessionDep
from guestgate.errors import GuestgateError, kind_of
from guestgate.gateways import service as gateway_service
from guestgate.gateways.base import GatewayError
from guestgate.sites import service as site_service
from guestgate.sites.models import Site
from guestgate.sites.schemas import SiteIn

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
DRIVERS = ("none", "routeros", "nftables", "agent")
# Form fields named as the API names them, so an error's parameter is the field it belongs to.
FIELDS = frozenset(
    {
        "name",
        "subnets",
        "gateway",
        "gateway.driver",
        "gateway.interface",
        "gateway.portal_address",
        "gateway.portal_port",
        "gateway.netns",
        "gateway.host",
        "gateway.port",
        "gateway.username",
        "gateway.password",
        "gateway.tls_verify",
        "gateway.ca_pem",
        "gateway.pinned_sha256",
    }
)
TEXT_FIELDS = (
    "interface",
    "portal_address",
    "netns",
    "host",
    "username",
    "password",
    "ca_pem",
    "pinned_sha256",
)


def site_in(form: dict[str, str]) -> SiteIn:
    """The posted form as the API's `SiteIn` (blank fields omitted, as a client would omit them)."""
    gateway: dict[str, Any] = {"driver": form.get("gateway.driver", "none")}
    for name in TEXT_FIELDS:
        value = form.get(f"gateway.{name}", "") if name == "password" else optional(form, f"gateway.{name}")
        if value:
            gateway[name] = value
    for name in ("portal_port", "port"):
        value = optional(form, f"gateway.{name}")
        if value is not None:
            gateway[name] = value
    gateway["tls_verify"] = form.get("gateway.tls_verify") == "on"
    return parse_model(
        SiteIn, {"name": form.get("name", ""), "subnets": lines(form, "subnets"), "gateway": gateway}
    )


def values_of(site: Site) -> dict[str, str]:
    """A stored site as the form's values (never its password)."""
    out = site_service.to_out(site)
    values = {"name": out.name, "subnets": "\n".join(out.subnets), "gateway.driver": out.gateway.driver}
    for name, value in out.gateway.model_dump(exclude={"driver", "password_set", "table"}).items():
        if name == "tls_verify":
            values["gateway.tls_verify"] = "on" if value else ""
        elif value is not None:
            values[f"gateway.{name}"] = str(value)
    return values


def _site_form(
    request: Request,
    *,
    site: Site | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    agent_key: str | None = None,
    check: dict[str, str] | None = None,
) -> Response:
    # A password typed into the form is never sent back in the page.
    values = {key: value for key, value in values.items() if key != "gateway.password"}
    return render(
        request,
        "site_form.html",
        {
            "site": site_service.to_out(site) if site is not None else None,
            "values": values,
            "errors": errors,
            "drivers": DRIVERS,
            "agent_key": agent_key,
            "check": check,
        },
        status=status,
    )


@router.get("/sites")
def sites_page(
    request: Request, who: Reader, session: SessionDep, cursor: Annotated[str | None, Query()] = None
) -> Response:
    """The org's sites with their gateway state."""
    page = site_service.list_sites(org_id=who.org_id, page=page_request(cursor), session=session)
    return render(
        request, "sites.html", {"page": page, "sites": [site_service.to_out(s) for s in page.items]}
    )


@router.get("/sites/new")
def new_site(request: Request, who: Writer) -> Response:
    """The form to add a site."""
    return _site_form(
        request, site=None, values={"gateway.driver": "none", "gateway.tls_verify": "on"}, errors={}
    )


@router.post("/sites")
def create_site(
    request: Request, who: Writer, session: SessionDep, runtime: RuntimeDep, form: FormDep
) -> Response:
    """Add a site (as `POST /captive/sites`); an agent site's key is shown once, on this answer."""
    try:
        site = site_service.create(
            site_in(form), org_id=who.org_id, box=runtime.box, rules=runtime.gateway_rules, session=session
        )
    except GuestgateError as error:
        session.rollback()
        return _site_form(
            request,
            site=None,
            values=form,
            errors=field_errors(error, fields=FIELDS),
            status=kind_of(error).status,
        )
    if site.gateway_driver == "agent":
        key = gateway_service.site_agent_key(runtime, site.id, org_id=who.org_id, session=session)
        return _site_form(request, site=site, values=values_of(site), errors={}, agent_key=key, status=201)
    return redirect(f"{PREFIX}/sites/{site.id}")


@router.get("/sites/{site_id}")
def site_page(request: Request, site_id: str, who: Reader, session: SessionDep) -> Response:
    """A site's settings (a form for admins, read-only for viewers)."""
    site = site_service.get(site_id, org_id=who.org_id, session=session)
    return _site_form(request, site=site, values=values_of(site), errors={})


@router.post("/sites/{site_id}")
def update_site(
    request: Request,
    site_id: str,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    form: FormDep,
) -> Response:
    """Replace a site (as `PUT /captive/sites/{id}`); a blank password keeps the stored one while the router stays the same."""
    site = site_service.get(site_id, org_id=who.org_id, session=session)
    was_agent = site.gateway_driver == "agent"
    try:
        done = site_service.replace(
            site_id,
            site_in(form),
            org_id=who.org_id,
            box=runtime.box,
            rules=runtime.gateway_rules,
            session=session,
        )
    except GuestgateError as error:
        session.rollback()
        site = site_service.get(site_id, org_id=who.org_id, session=session)
        return _site_form(
            request,
            site=site,
            values=form,
            errors=field_errors(error, fields=FIELDS),
            status=kind_of(error).status,
        )
    if done.left_table is not None:
        background.add_task(gateway_service.move_table, runtime, done.site.id, done.left_table)
    if done.site.gateway_driver == "agent" and not was_agent:
        key = gateway_service.site_agent_key(runtime, site_id, org_id=who.org_id, session=session)
        response = _site_form(request, site=done.site, values=values_of(done.site), errors={}, agent_key=key)
    else:
        response = redirect(f"{PREFIX}/sites/{site_id}")
    response.background = background
    return response


@router.post("/sites/{site_id}/test")
def check_connection(
    request: Request, site_id: str, who: Writer, session: SessionDep, runtime: RuntimeDep, _form: FormDep
) -> Response:
    """Ask the site's gateway whether it answers with the stored settings; the answer in words."""
    site = site_service.get(site_id, org_id=who.org_id, session=session)
    try:
        health = gateway_service.check_connection(runtime, site)
    except GatewayError as error:
        check = {"ok": "", "text": f"The gateway did not answer as it should: {error}."}
    else:
        if health.state == "ok":
            # Our words: a router's own reply (its version, its board) is not repeated here.
            text = "Connected: the gateway answered with these settings."
            if site.gateway_driver != "routeros":
                text = f"Connected: {health.detail}."
        else:
            text = f"Nothing to connect to: {health.detail}."
        check = {"ok": "1", "text": text}
    return _site_form(request, site=site, values=values_of(site), errors={}, check=check)


@router.post("/sites/{site_id}/agent-key/rotate")
def rotate_agent_key(
    request: Request, site_id: str, who: Writer, session: SessionDep, runtime: RuntimeDep, _form: FormDep
) -> Response:
    """A new agent key for the site (as `POST /captive/sites/{id}/agent-key/rotate`), shown once; the old one stops working."""
    key = gateway_service.rotate_agent_key(runtime, site_id, org_id=who.org_id, session=session)
    site = site_service.get(site_id, org_id=who.org_id, session=session)
    return _site_form(request, site=site, values=values_of(site), errors={}, agent_key=key)


@router.get("/sites/{site_id}/guestgate.rsc")
def download_script(
    request: Request, site_id: str, who: Writer, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """The RouterOS set-up script of the site (it holds the API password: admins only)."""
    try:
        script = gateway_service.site_script(runtime, site_id, org_id=who.org_id, session=session)
    except GatewayError as error:
        session.rollback()
        site = site_service.get(site_id, org_id=who.org_id, session=session)
        errors = {"script": f"The script cannot be made yet: {error}."}
        return _site_form(request, site=site, values=values_of(site), errors=errors, status=409)
    return Response(
        script,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="guestgate.rsc"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
