"""Request and response shapes of API tokens (an extension: Altostrat has no such endpoints)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from guestgate.schemas import Name, Timestamp

SCOPES_DESCRIPTION = (
    "Scopes the token grants: `captive:read`, `captive:write`, `coupons:issue`; at most the caller's own."
)


class ApiTokenIn(BaseModel):
    """A token to mint."""

    name: Name = Field(description="What the token is for, shown in the list.", examples=["billing export"])
    scopes: list[str] | None = Field(
        None,
        max_length=3,
        description=SCOPES_DESCRIPTION + " Absent: the caller's own scopes.",
        examples=[["captive:read"]],
    )
    ttl_seconds: int | None = Field(
        None,
        description="Lifetime in seconds, 60..31536000 (365 days). Absent: 30 days.",
        examples=[86400],
    )


class ApiTokenOut(BaseModel):
    """A registered API token, without the token."""

    id: str = Field(description="The token's id: its `jti` claim.")
    name: str = Field(description="What the token is for.")
    scopes: list[str] = Field(description=SCOPES_DESCRIPTION)
    created_at: Timestamp = Field(description="When it was minted.")
    expires_at: Timestamp = Field(description="When it expires (its `exp` claim).")
    revoked_at: Timestamp | None = Field(description="When it was revoked; null while it is accepted.")
    created_by: str = Field(description="`cli`, or the subject of the operator who minted it.")


class ApiTokenCreated(ApiTokenOut):
    """A token just minted: the only answer that contains it."""

    token: str = Field(description="The bearer token. It is shown only here: store it now.")
