"""HTTP routes of coupon schedules (their public URL is served by guestgate.coupon_links)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from guestgate.coupons import batches as batch_service
from guestgate.coupons.routes import BATCH_HEADERS, set_batch_headers
from guestgate.coupons.schemas import RevokedUrls
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
from guestgate.schedules import jobs, service
from guestgate.schedules.schemas import CouponSchedule, CouponScheduleCreate, SignedUrl

router = APIRouter(tags=["Coupon Schedules"])

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


@router.get(
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


@router.post(
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


@router.get(
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


@router.put(
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


@router.delete(
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


@router.get(
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
    """Returns a signed public URL, valid for 24 hours, that lists the schedule's valid coupons: those
    of the batches it has made up to now (a later batch is not in it)."""
    schedule = service.get(schedule_id, instance_id=instance_id, org_id=who.org_id, session=session)
    link = service.link(schedule, signer=runtime.signer, public_url=runtime.settings.public_url, now=utcnow())
    return SignedUrl(signed_url=link.url)


@router.post(
    ITEM + "/revoke_urls",
    operation_id="revokeCouponScheduleUrls",
    summary="Revoke a coupon schedule's public URLs",
    responses=errors(401, 403, 404),
)
def revoke_urls(
    instance_id: InstanceId, schedule_id: ScheduleId, who: Writer, session: SessionDep
) -> RevokedUrls:
    """[extension] Every public URL of the schedule, and of its batches, signed up to now answers 403
    `url_revoked` from now on; URLs generated afterwards work. The coupons stay valid."""
    moment = service.revoke_urls(
        schedule_id, instance_id=instance_id, org_id=who.org_id, now=utcnow(), session=session
    )
    return RevokedUrls(urls_revoked_at=moment)


@router.post(
    ITEM + "/run",
    operation_id="runCouponSchedule",
    summary="Run a coupon schedule now",
    responses={200: {"headers": BATCH_HEADERS}, **errors(401, 403, 404)},
)
def run_schedule(
    instance_id: InstanceId,
    schedule_id: ScheduleId,
    who: IssuerWriter,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> CouponSchedule:
    """Generates a batch of coupons immediately and notifies the schedule's group; the regular
    `next_run_at` is not moved. [extension] `Location` names the batch and `Link` its signed URLs."""
    now = utcnow()
    item = jobs.run_now(schedule_id, instance_id=instance_id, org_id=who.org_id, now=now, session=session)
    if item.schedule.last_run_id is not None:
        batch = batch_service.get(
            item.schedule.last_run_id, instance_id=instance_id, org_id=who.org_id, session=session
        )
        set_batch_headers(response, batch, runtime=runtime, now=now, session=session)
    return service.to_out(item)
