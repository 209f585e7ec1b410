"""HTTP routes of coupon schedules and of the signed public coupon URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from guestgate.coupons import export
from guestgate.coupons import service as coupon_service
from guestgate.coupons.schemas import Coupon
from guestgate.db import utcnow
from guestgate.deps import (
    InstanceId,
    IssuerReader,
    IssuerWriter,
    PageDep,
    Reader,
    RuntimeDep,
    SessionDep,
    Writer,
    set_next_link,
)
from guestgate.openapi import errors
from guestgate.schedules import jobs, public_urls, service
from guestgate.schedules.schemas import CouponSchedule, CouponScheduleCreate, SignedUrl

schedule_router = APIRouter(tags=["Coupon Schedules"])
public_router = APIRouter(tags=["Public Coupon URLs"])
# The one router the app includes. It carries no tags itself: FastAPI prepends a router's tags
# to every route's, and the public route must be tagged "Public Coupon URLs" alone.
router = APIRouter()

ScheduleId = Annotated[
    str,
    Path(
        alias="scheduleId",
        description="The unique identifier for the coupon schedule.",
        json_schema_extra={"format": "uuid", "example": "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"},
    ),
]
COLLECTION = "/captive/instances/{instanceId}/coupon-schedules"
ITEM = "/captive/instances/{instanceId}/coupon-schedules/{scheduleId}"


@schedule_router.get(
    COLLECTION,
    operation_id="listCouponSchedules",
    summary="List coupon schedules",
    responses=errors(401, 403, 404),
)
def list_schedules(
    instance_id: InstanceId,
    request: Request,
    response: Response,
    who: IssuerReader,
    session: SessionDep,
    page: PageDep,
) -> list[CouponSchedule]:
    """Retrieves all coupon schedules of an instance, newest first."""
    result = service.list_schedules(instance_id, org_id=who.org_id, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(item) for item in result.items]


@schedule_router.post(
    COLLECTION,
    status_code=201,
    operation_id="createCouponSchedule",
    summary="Create a coupon schedule",
    response_description="The coupon schedule was created successfully.",
    responses=errors(400, 401, 403, 404),
)
def create_schedule(
    instance_id: InstanceId, body: CouponScheduleCreate, who: Writer, session: SessionDep
) -> CouponSchedule:
    """Creates a schedule that generates coupons daily, weekly or monthly at a local time."""
    return service.to_out(service.create(instance_id, body, org_id=who.org_id, session=session))


@schedule_router.get(
    ITEM,
    operation_id="getCouponSchedule",
    summary="Retrieve a coupon schedule",
    responses=errors(401, 403, 404),
)
def get_schedule(
    instance_id: InstanceId, schedule_id: ScheduleId, who: Reader, session: SessionDep
) -> CouponSchedule:
    """Retrieves a coupon schedule with the counters of its last run."""
    item = service.view(schedule_id, instance_id=instance_id, org_id=who.org_id, session=session)
    return service.to_out(item)


@schedule_router.put(
    ITEM,
    operation_id="updateCouponSchedule",
    summary="Update a coupon schedule",
    response_description="The coupon schedule was updated successfully.",
    responses=errors(400, 401, 403, 404),
)
def update_schedule(
    instance_id: InstanceId,
    schedule_id: ScheduleId,
    body: CouponScheduleCreate,
    who: Writer,
    session: SessionDep,
) -> CouponSchedule:
    """Updates the configuration of an existing coupon schedule."""
    item = service.replace(schedule_id, body, instance_id=instance_id, org_id=who.org_id, session=session)
    return service.to_out(item)


@schedule_router.delete(
    ITEM,
    status_code=204,
    operation_id="deleteCouponSchedule",
    summary="Delete a coupon schedule",
    responses=errors(401, 403, 404),
)
def delete_schedule(
    instance_id: InstanceId, schedule_id: ScheduleId, who: Writer, session: SessionDep
) -> Response:
    """Deletes a coupon schedule; the coupons it already generated stay valid."""
    service.delete(schedule_id, instance_id=instance_id, org_id=who.org_id, session=session)
    return Response(status_code=204)


@schedule_router.get(
    ITEM + "/generate_url",
    operation_id="generateCouponScheduleUrl",
    summary="Generate a signed URL for a coupon schedule",
    responses=errors(401, 403, 404),
)
def generate_url(
    instance_id: InstanceId,
    schedule_id: ScheduleId,
    who: IssuerReader,
    session: SessionDep,
    runtime: RuntimeDep,
) -> SignedUrl:
    """Returns a signed public URL, valid for 24 hours, that lists the schedule's valid coupons."""
    schedule = service.get(schedule_id, instance_id=instance_id, org_id=who.org_id, session=session)
    url = public_urls.coupons_url(
        schedule.id, signer=runtime.signer, public_url=runtime.settings.public_url, now=utcnow()
    )
    return SignedUrl(signed_url=url)


@schedule_router.post(
    ITEM + "/run",
    operation_id="runCouponSchedule",
    summary="Run a coupon schedule now",
    responses=errors(401, 403, 404),
)
def run_schedule(
    instance_id: InstanceId, schedule_id: ScheduleId, who: IssuerWriter, session: SessionDep
) -> CouponSchedule:
    """Generates a batch of coupons immediately and notifies the schedule's group; the regular
    `next_run_at` is not moved."""
    item = jobs.run_now(
        schedule_id, instance_id=instance_id, org_id=who.org_id, now=utcnow(), session=session
    )
    return service.to_out(item)


@public_router.get(
    public_urls.PATH,
    operation_id="getPublicCoupons",
    summary="List a schedule's valid coupons (signed URL)",
    response_model=list[Coupon],
    responses={
        200: {
            "description": "The schedule's valid coupons, newest first.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **errors(400, 403, 404),
    },
)
def public_coupons(
    sid: Annotated[str, Query(description="The coupon schedule's id.")],
    expires: Annotated[int, Query(description="Unix time the URL expires.")],
    signature: Annotated[str, Query(description="HMAC-SHA256 signature of the URL.")],
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    export_format: Annotated[
        public_urls.ExportFormat,
        Query(
            alias="format",
            description="[extension] `json` (default), `csv`, or `pdf` (printable cards "
            "with a QR code each).",
        ),
    ] = "json",
    paper: Annotated[public_urls.Paper, Query(description="[extension] PDF paper size.")] = "a4",
) -> Response | list[Coupon]:
    """Lists the valid coupons of a schedule through the signed URL from generate_url; no token needed."""
    now = utcnow()
    public_urls.verify(sid, expires=expires, signature=signature, signer=runtime.signer, now=now)
    coupons = service.valid_coupons(sid, session=session, now=now)
    # The codes are bearer secrets: keep them out of shared caches and the browser's cache.
    if export_format == "csv":
        return _download(
            export.to_csv(coupons).encode(), "text/csv; charset=utf-8", public_urls.filename(sid, "csv")
        )
    if export_format == "pdf":
        pdf = service.printable(
            sid, coupons, public_url=runtime.settings.public_url, paper=paper, session=session
        )
        return _download(pdf, "application/pdf", public_urls.filename(sid, "pdf"))
    response.headers["Cache-Control"] = "no-store"
    return [coupon_service.to_out(c) for c in coupons]


def _download(body: bytes, media_type: str, name: str) -> Response:
    headers = {"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type=media_type, headers=headers)


router.include_router(schedule_router)
router.include_router(public_router)
