"""The public coupon URL (#21): a signed link's valid coupons as JSON, CSV, PDF cards or a printable page.

Order of work, cheapest refusal first: the client address's rate limit, the signature and expiry
(no database), the link's rate limit, then the database (scope, revocation, one page of coupons)
and the rendering, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from guestgate.coupon_links import limits, page, service, signing
from guestgate.coupon_links.limits import PublicLimits
from guestgate.coupons import export
from guestgate.coupons import service as coupon_service
from guestgate.coupons.schemas import Coupon
from guestgate.coupons.words import Words
from guestgate.db import utcnow
from guestgate.deps import RuntimeDep, next_page_url, request_address
from guestgate.error_handlers import from_validation_error
from guestgate.errors import GuestgateError, RateLimited, kind_of
from guestgate.instances.urls import asset_url
from guestgate.openapi import errors
from guestgate.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest
from guestgate.runtime import Runtime


class _BrowsersGetPages(APIRoute):
    """A browser that opens a cut or mangled link (`signature` lost to a mail client's line wrap, an
    `expires` that is not a number) gets the error page too, not the JSON the query's validation
    answers before the endpoint runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                if not _wants_page(request, request.query_params.get("format")):
                    raise
                return _error_page(from_validation_error(exc.errors()))

        return route


router = APIRouter(tags=["Public Coupon URLs"], route_class=_BrowsersGetPages)
_COUPONS = TypeAdapter(list[Coupon])
_PAGED = 'the next page\'s URL is in `Link: <...>; rel="next"`'


@dataclass(frozen=True)
class _Ask:
    """What the request asks of a verified link."""

    scope: signing.LinkScope
    fmt: str
    page: PageRequest
    paper: str
    path: str
    query: dict[str, str]
    now: datetime


@router.get(
    signing.PATH,
    operation_id="getPublicCoupons",
    summary="List a schedule's (or a batch's) valid coupons (signed URL)",
    response_model=list[Coupon],
    responses={
        200: {
            "description": "The link's valid coupons, newest first, a page at a time ("
            + _PAGED
            + "): JSON (the default for API clients), CSV, printable PDF cards, or the printable page "
            "(`format=html`, or a browser's `Accept: text/html`).",
            "headers": {
                "Link": {
                    "description": 'The next page, `<url>; rel="next"`, when there are more codes.',
                    "schema": {"type": "string"},
                },
            },
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "text/html": {"schema": {"type": "string"}},
            },
        },
        **errors(400, 403, 404, 429),
    },
)
async def public_coupons(
    request: Request,
    runtime: RuntimeDep,
    expires: Annotated[int, Query(description="Unix time the URL expires.")],
    signature: Annotated[str, Query(description="HMAC-SHA256 signature of the URL.")],
    sid: Annotated[str | None, Query(description="The coupon schedule's id (a schedule's link).")] = None,
    batch: Annotated[
        str | None, Query(description="[extension] The coupon batch's id (a batch's link, instead of `sid`).")
    ] = None,
    export_format: Annotated[
        signing.ExportFormat | None,
        Query(
            alias="format",
            description="[extension] `json`, `csv`, `pdf` (printable cards with a QR code each) or "
            "`html` (the printable page). Without it: the page for `Accept: text/html`, else JSON.",
        ),
    ] = None,
    paper: Annotated[signing.Paper, Query(description="[extension] PDF paper size.")] = "a4",
    limit: Annotated[
        int | None,
        Query(
            description="[extension] Codes per answer: JSON 1..1000 (default 100); CSV, PDF and the "
            "page up to `GUESTGATE_PUBLIC_LINK_CSV_MAX_CODES` (5000) and `..._PDF_MAX_CODES` (500), "
            "which are also their defaults."
        ),
    ] = None,
    cursor: Annotated[
        str | None, Query(description="[extension] The `rel=next` cursor of the previous page.")
    ] = None,
) -> Response:
    """Lists the valid coupons of the link's schedule (the batches it had when the link was signed) or
    batch; no token needed. 403 `url_revoked` once an operator has revoked the link."""
    html = _wants_page(request, export_format)
    fmt = "html" if html else export_format or "json"
    public: PublicLimits = request.app.state.public_limits
    cost = limits.PDF_COST if fmt == "pdf" else 1
    try:
        await public.admit_address(request_address(request, runtime), cost=cost)
        now = utcnow()
        scope = signing.verify(
            sid=sid, batch=batch, expires=expires, signature=signature, signer=runtime.signer, now=now
        )
        await public.admit_link(scope, cost=cost)
        ask = _Ask(
            scope=scope,
            fmt=fmt,
            page=_page_request(fmt, limit, cursor, runtime),
            paper=paper,
            path=request.url.path,
            query=dict(request.query_params),
            now=now,
        )
        answer = await asyncio.to_thread(_answer, runtime, ask)
    except GuestgateError as error:
        if not html:
            raise
        return _error_page(error)
    if answer.next_cursor is not None:
        answer.response.headers["Link"] = f'<{next_page_url(request, answer.next_cursor)}>; rel="next"'
    return answer.response


@dataclass(frozen=True)
class _Answer:
    response: Response
    next_cursor: str | None


def _wants_page(request: Request, export_format: str | None) -> bool:
    """`format=html`, or no `format` and an `Accept` that prefers HTML (a browser)."""
    return export_format == "html" or (
        export_format is None and page.wants_html(request.headers.get("accept"))
    )


def _page_request(fmt: str, limit: int | None, cursor: str | None, runtime: Runtime) -> PageRequest:
    settings = runtime.settings
    if fmt == "json":
        return PageRequest.parse(limit, cursor, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    most = settings.public_link_csv_max_codes if fmt == "csv" else settings.public_link_pdf_max_codes
    return PageRequest.parse(limit, cursor, default=most, maximum=most)


def _answer(runtime: Runtime, ask: _Ask) -> _Answer:
    """The link's page in the asked format (runs in a worker thread: database and rendering)."""
    with runtime.sessions() as session:
        contents = service.open_link(
            ask.scope, page=ask.page, now=ask.now, session=session, with_logo=ask.fmt == "pdf"
        )
    coupons = contents.page.items
    next_cursor = contents.page.next_cursor
    if ask.fmt == "json":
        body = _COUPONS.dump_json([coupon_service.to_out(c) for c in coupons])
        response = Response(body, media_type="application/json", headers=_private())
        return _Answer(response, next_cursor)
    stem = service.contents_stem(contents, now=ask.now)
    if ask.fmt == "csv":
        text = export.to_csv(coupons, zone=contents.zone)
        return _Answer(_download(text.encode(), "text/csv; charset=utf-8", f"{stem}.csv"), next_cursor)
    brand = contents.branding
    if ask.fmt == "pdf":
        pdf = export.to_pdf(
            coupons,
            instance_name=brand.name,
            accent_color=brand.accent_color,
            portal_url=export.portal_url(runtime.settings.public_url, brand.instance_id),
            page_size="Letter" if ask.paper == "letter" else "A4",
            words=Words(brand.locale),
            zone=contents.zone,
            network_name=brand.network_name,
            logo=brand.logo,
        )
        return _Answer(_download(pdf, "application/pdf", f"{stem}.pdf"), next_cursor)
    links = page.PageLinks(
        pdf_url=_same(ask, format="pdf", limit=str(ask.page.limit)),
        csv_url=_same(ask, format="csv", limit=str(ask.page.limit)),
        next_url=_same(ask, format="html", cursor=next_cursor) if next_cursor else None,
        logo_url=(
            asset_url(brand.logo_id, signer=runtime.signer, public_url="", now=ask.now)
            if brand.logo_id
            else None
        ),
        expires_at=datetime.fromtimestamp(ask.scope.expires, tz=UTC),
    )
    rendered = page.render_page(contents, links, now=ask.now)
    return _Answer(Response(rendered.body, media_type="text/html", headers=rendered.headers()), next_cursor)


def _same(ask: _Ask, **changes: str) -> str:
    """This link's path and query (relative: the page is same-origin) with `changes`."""
    return f"{ask.path}?{urlencode({**ask.query, **changes})}"


def _private() -> dict[str, str]:
    # The codes are bearer secrets: keep them out of shared caches and the browser's cache.
    return {"Cache-Control": "no-store", "Vary": "Accept", "Referrer-Policy": "no-referrer"}


def _download(body: bytes, media_type: str, name: str) -> Response:
    headers = {**_private(), "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type=media_type, headers=headers)


def _error_page(error: GuestgateError) -> Response:
    rendered = page.render_error(error)
    headers = rendered.headers()
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return Response(rendered.body, status_code=kind_of(error).status, media_type="text/html", headers=headers)
