"""Request and response shapes of coupons."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

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


class Coupon(BaseModel):
    """A single-use access code."""

    id: str = Field(description="The unique identifier for the coupon.")
    code: str = Field(description="The 6-character alphanumeric code for the coupon.", examples=["8B7W3D"])
    expires_at: Timestamp = Field(description="The timestamp when the coupon will expire and become invalid.")
    redeemed_at: Timestamp | None = Field(
        description="The timestamp when the coupon was redeemed, or null if it has not been used."
    )
    created_at: Timestamp = Field(description="The timestamp when the coupon was created.")
