"""HTTP routes of coupons: list the valid ones, generate a batch."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from guestgate.coupons import service
from guestgate.coupons.schemas import Coupon, CouponCreate
from guestgate.db import utcnow
from guestgate.deps import InstanceId, IssuerReader, IssuerWriter, PageDep, SessionDep, set_next_link
from guestgate.openapi import errors

router = APIRouter(prefix="/captive/instances", tags=["Coupons"])


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
    responses=errors(400, 401, 403, 404),
)
def create_coupons(
    instance_id: InstanceId, body: CouponCreate, who: IssuerWriter, session: SessionDep
) -> list[Coupon]:
    """Generates a batch of single-use coupons for a coupon-based captive portal instance."""
    coupons = service.create_batch(instance_id, body, org_id=who.org_id, now=utcnow(), session=session)
    return [service.to_out(coupon) for coupon in coupons]
