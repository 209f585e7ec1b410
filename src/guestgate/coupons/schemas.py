"""Request and response shapes of coupons."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from guestgate.plans.schemas import PlanOut, PlanOverrides
from guestgate.schemas import Between, Timestamp

MAX_COUNT = 200
# [decided] The contract only asks for >= 1; a cap of one year (the schema's `maximum`) keeps
# expiry timestamps in a sane range.
MAX_MINUTES_VALID = 525_600


class CouponCreate(BaseModel):
    """A batch of coupons to generate."""

    minutes_valid: Annotated[int, Between(1, MAX_MINUTES_VALID)] = Field(
        # Altostrat's wording, verbatim; the bounds show as minimum/maximum in the schema.
        description="The number of minutes from the time of creation that the coupons will be valid for.",
        examples=[1440],
    )
    count: Annotated[int, Between(1, MAX_COUNT)] = Field(
        description=f"The number of coupons to generate (1..{MAX_COUNT}).", examples=[10]
    )
    plan: PlanOverrides | None = Field(
        None,
        description="[extension] What the codes buy, where it differs from the instance's plan "
        "(omitted: the instance's).",
    )


class Coupon(BaseModel):
    """A single-use access code."""

    id: str = Field(description="The unique identifier for the coupon.")
    code: str = Field(description="The 6-character alphanumeric code for the coupon.", examples=["8B7W3D"])
    expires_at: Timestamp = Field(description="The timestamp when the coupon will expire and become invalid.")
    redeemed_at: Timestamp | None = Field(
        description="The timestamp when the coupon was redeemed, or null if it has not been used."
    )
    created_at: Timestamp = Field(description="The timestamp when the coupon was created.")
    uses: int = Field(0, description="[extension] Sign-ins with the code so far.")
    plan: PlanOut | None = Field(None, description="[extension] What the code buys.")


BatchKind = Literal["api", "scheduled", "manual"]


class CouponBatch(BaseModel):
    """[extension] One generated batch of coupons and what became of them."""

    id: str = Field(description="The batch id (a schedule's run id; the `run_id` of its webhook).")
    instance_id: str = Field(description="The instance the coupons belong to.")
    schedule_id: str | None = Field(
        description="The schedule that made the batch, or null (`POST .../coupons`, or a deleted schedule)."
    )
    kind: BatchKind = Field(
        description="`api` (`POST .../coupons`), `scheduled` (a schedule's slot) or `manual` (a "
        "schedule's run-now)."
    )
    count: int = Field(description="The number of coupons generated.")
    minutes_valid: int = Field(description="Minutes from creation the coupons could be redeemed in.")
    created_at: Timestamp = Field(description="When the batch was generated.")
    expires_at: Timestamp = Field(description="When the batch's coupons stop being redeemable.")
    tokens_used: int = Field(description="Coupons of the batch that have been redeemed.")
    tokens_available: int = Field(description="Coupons of the batch still valid (unredeemed, unexpired).")
    urls_revoked_at: Timestamp | None = Field(
        description="When the batch's public links were last revoked (links signed up to then are "
        "refused), or null."
    )
    plan: PlanOut | None = Field(
        None, description="The plan the batch's codes were made with (null: made before plans existed)."
    )


class SignedBatchUrl(BaseModel):
    """[extension] A signed public URL of one batch."""

    signed_url: str = Field(
        description="A signed URL, valid for 24 hours, of the batch's valid coupons without "
        "authentication: JSON by default, `&format=html|pdf|csv` (or `Accept: text/html`) for the "
        "printable page, cards and spreadsheet."
    )
    expires_at: Timestamp = Field(description="When the URL stops working.")


class RevokedUrls(BaseModel):
    """[extension] The outcome of revoking public links."""

    urls_revoked_at: Timestamp = Field(
        description="Links signed up to this second now answer 403 `url_revoked`; new ones work."
    )
