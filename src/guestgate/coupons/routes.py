"""HTTP routes of coupons: list the valid ones, generate a batch; [extension] the batches and their URLs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

from guestgate.coupon_links import signing
from guestgate.coupons import batches, service
from guestgate.coupons.schemas import Coupon, CouponBatch, CouponCreate, RevokedUrls, SignedBatchUrl
from guestgate.db import utcnow
from guestgate.deps import (
    InstanceId,
    IssuerReader,
    IssuerWriter,
    PageDep,
    RuntimeDep,
    SessionDep,
    Writer,
    set_next_link,
)
from guestgate.openapi import errors
from guestgate.runtime import Runtime
from guestgate.schedules.models import ScheduleRun

router = APIRouter(prefix="/captive/instances", tags=["Coupons"])
BatchId = Annotated[
    str,
    Path(
        alias="batchId",
        description="The coupon batch's id (the `Location` of the response that made it).",
        json_schema_extra={"format": "uuid", "example": "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"},
    ),
]
BATCH = "/{instanceId}/coupon-batches/{batchId}"
# The response headers of a request that makes a batch (documented in the OpenAPI document).
BATCH_HEADERS: dict[str, Any] = {
    "Location": {
        "description": "[extension] The batch made: `/captive/instances/{instanceId}/coupon-batches/{batchId}`.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": "[extension] The batch's signed public URLs (24 hours), "
        '`<url>; rel="alternate"; type="application/json"`, and the same with `format=html` '
        "(`text/html`, the printable page), `format=pdf` (`application/pdf`) and `format=csv` "
        "(`text/csv`).",
        "schema": {"type": "string"},
    },
}


@router.get(
    "/{instanceId}/coupons",
    operation_id="listCoupons",
    summary="List valid coupons for an instance",
    responses=errors(401, 403, 404),
)
def list_coupons(
    instance_id: InstanceId,
    request: Request,
    response: Response,
    who: IssuerReader,
    session: SessionDep,
    page: PageDep,
) -> list[Coupon]:
    """Retrieves the valid (unredeemed and unexpired) coupons of a captive portal instance, newest first."""
    result = service.list_valid(instance_id, org_id=who.org_id, now=utcnow(), page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(coupon) for coupon in result.items]


@router.post(
    "/{instanceId}/coupons",
    status_code=201,
    operation_id="createCoupons",
    summary="Create coupons",
    responses={201: {"headers": BATCH_HEADERS}, **errors(400, 401, 403, 404)},
)
def create_coupons(
    instance_id: InstanceId,
    body: CouponCreate,
    who: IssuerWriter,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> list[Coupon]:
    """Generates a batch of single-use coupons for a coupon-based captive portal instance.
    [extension] `Location` names the batch and `Link` its signed URLs (JSON, printable page, PDF, CSV)."""
    now = utcnow()
    made = service.create_batch(instance_id, body, org_id=who.org_id, now=now, session=session)
    set_batch_headers(response, made.batch, runtime=runtime, now=now, session=session)
    return [service.to_out(coupon) for coupon in made.coupons]


@router.get(
    "/{instanceId}/coupon-batches",
    operation_id="listCouponBatches",
    summary="List coupon batches",
    responses=errors(401, 403, 404),
)
def list_batches(
    instance_id: InstanceId,
    request: Request,
    response: Response,
    who: IssuerReader,
    session: SessionDep,
    page: PageDep,
) -> list[CouponBatch]:
    """[extension] Every batch of the instance (made by `POST .../coupons`, a schedule or its run-now),
    newest first, with what became of its coupons."""
    result = batches.list_batches(instance_id, org_id=who.org_id, page=page, session=session, now=utcnow())
    set_next_link(request, response, result.next_cursor)
    return [batches.to_out(item) for item in result.items]


@router.get(
    BATCH,
    operation_id="getCouponBatch",
    summary="Retrieve a coupon batch",
    responses=errors(401, 403, 404),
)
def get_batch(
    instance_id: InstanceId, batch_id: BatchId, who: IssuerReader, session: SessionDep
) -> CouponBatch:
    """[extension] A batch with what became of its coupons."""
    item = batches.view(batch_id, instance_id=instance_id, org_id=who.org_id, session=session, now=utcnow())
    return batches.to_out(item)


@router.get(
    BATCH + "/generate_url",
    operation_id="generateCouponBatchUrl",
    summary="Generate a signed URL for a coupon batch",
    responses=errors(401, 403, 404),
)
def generate_batch_url(
    instance_id: InstanceId, batch_id: BatchId, who: IssuerReader, session: SessionDep, runtime: RuntimeDep
) -> SignedBatchUrl:
    """[extension] A signed public URL, valid for 24 hours, of the batch's valid coupons: JSON, or
    `&format=html|pdf|csv` for the printable page, cards and spreadsheet."""
    batch = batches.get(batch_id, instance_id=instance_id, org_id=who.org_id, session=session)
    link = batches.link(
        batch, signer=runtime.signer, public_url=runtime.settings.public_url, now=utcnow(), session=session
    )
    return SignedBatchUrl(signed_url=link.url, expires_at=link.expires_at)


@router.post(
    BATCH + "/revoke_urls",
    operation_id="revokeCouponBatchUrls",
    summary="Revoke a coupon batch's public URLs",
    responses=errors(401, 403, 404),
)
def revoke_batch_urls(
    instance_id: InstanceId, batch_id: BatchId, who: Writer, session: SessionDep
) -> RevokedUrls:
    """[extension] Every public URL of the batch signed up to now answers 403 `url_revoked` from now
    on; URLs generated afterwards work. The coupons stay valid."""
    moment = batches.revoke_urls(
        batch_id, instance_id=instance_id, org_id=who.org_id, now=utcnow(), session=session
    )
    return RevokedUrls(urls_revoked_at=moment)


def set_batch_headers(
    response: Response, batch: ScheduleRun, *, runtime: Runtime, now: datetime, session: Session
) -> None:
    """`Location` of the batch and `Link` to its signed URLs, leaving the body as Altostrat's."""
    public_url = runtime.settings.public_url
    link = batches.link(batch, signer=runtime.signer, public_url=public_url, now=now, session=session)
    response.headers["Location"] = (
        f"{public_url}/captive/instances/{batch.instance_id}/coupon-batches/{batch.id}"
    )
    response.headers["Link"] = ", ".join(
        f'<{link.in_format(fmt)}>; rel="alternate"; type="{media}"'
        for fmt, media in signing.MEDIA_TYPES.items()
    )
