"""The audit event representation and the validated filters of the audit list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from guestgate.errors import ParameterInvalid
from guestgate.schemas import Timestamp
from guestgate.site_users.schemas import parse_rfc3339

MAX_FILTER_CHARS = 200


class AuditEvent(BaseModel):
    """Something that happened in the org: an operator change or a guest sign-in failure."""

    id: int = Field(description="The event's number; later events have larger numbers.", examples=[1042])
    at: Timestamp = Field(description="When it happened.")
    actor: str = Field(
        description="Who did it: the operator token's `sub`, `guest:<ip>` for a guest, `system` for a job, "
        "`cli` for the command line.",
        examples=["front-desk"],
    )
    action: str = Field(
        description="What happened, as `<resource>.<verb>` (e.g. `instance.update`, `coupon_schedule.run`, "
        "`guest.signin_failed`, `guest.lockout`).",
        examples=["instance.update"],
    )
    target_type: str | None = Field(description="The kind of resource it happened to.", examples=["instance"])
    target_id: str | None = Field(
        description="The id of that resource.", examples=["9a7f1b2c-3d4e-5f6a-7b8c-9d0e1f2a3b4c"]
    )
    ip_address: str | None = Field(description="The client's IP address.", examples=["192.0.2.10"])
    detail: dict[str, Any] = Field(
        description="A few facts about the change (names, changed field names, counts); never a secret.",
        examples=[{"name": "Lobby", "changed": ["session_ttl", "theme"]}],
    )


@dataclass(frozen=True)
class AuditFilter:
    """The validated filters of the audit list; None means no filter."""

    action: str | None = None
    actor: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(
        cls,
        *,
        action: str | None = None,
        actor: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> AuditFilter:
        """Validate the query parameters; ParameterInvalid names the first bad one."""
        for name, value in (
            ("action", action),
            ("actor", actor),
            ("target_type", target_type),
            ("target_id", target_id),
        ):
            if value is not None and not 1 <= len(value) <= MAX_FILTER_CHARS:
                raise ParameterInvalid(name, f"must be 1 to {MAX_FILTER_CHARS} characters")
        found = cls(
            action=action,
            actor=actor,
            target_type=target_type,
            target_id=target_id,
            since=_moment("since", since),
            until=_moment("until", until),
        )
        if found.since is not None and found.until is not None and found.until < found.since:
            raise ParameterInvalid("until", "must not be before 'since'")
        return found


def _moment(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise ParameterInvalid(
            name, "must be an RFC 3339 date-time with a time zone, such as 2025-10-29T08:00:00Z"
        ) from exc
