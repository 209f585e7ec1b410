"""What the portal's store reads and writes: plain frozen records, no database in sight."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from guestgate import networks


class Outcome(StrEnum):
    """How a redemption ended."""

    SUCCESS = "success"
    ALREADY_ACTIVE = "already_active"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    # No sign-ins left (`uses` reached `max_uses`).
    USED = "used"
    # As many guests signed in with the code right now as its `max_devices`.
    IN_USE = "in_use"


@dataclass(frozen=True)
class SiteNetworks:
    """A site's subnets and which instance serves each of its instance subnets."""

    site_id: str
    org_id: str
    subnets: tuple[networks.Network, ...]
    instance_subnets: tuple[tuple[networks.Network, str], ...]


@dataclass(frozen=True)
class ImageRef:
    """An uploaded image of an instance, with its size for the page layout."""

    id: str
    width: int
    height: int


@dataclass(frozen=True)
class InstanceInfo:
    """What the portal page of an instance shows."""

    id: str
    org_id: str
    name: str
    strategy: str
    session_ttl: int
    theme: dict[str, str]
    terms_text: str | None
    locale: str
    logo: ImageRef | None = None
    icon: ImageRef | None = None
    # oauth2 instances: the type of their auth integration (google, azure, github).
    auth_provider: str | None = None
    # The instance's IANA zone, for the times the guest reads (guestgate.local_time); None: UTC.
    timezone: str | None = None


@dataclass(frozen=True)
class GuestSession:
    """An active guest session (a site user row)."""

    id: str
    site_id: str
    instance_id: str
    ip: str
    mac: str | None
    started_at: datetime
    expires_at: datetime
    coupon_id: str | None = None
    # The session's limits, copied from its code's plan at sign-in (None: no limit).
    download_kbps: int | None = None
    upload_kbps: int | None = None
    data_limit_mb: int | None = None


@dataclass(frozen=True)
class Limits:
    """A code's per-session limits, which its sessions copy (None: no limit)."""

    download_kbps: int | None = None
    upload_kbps: int | None = None
    data_limit_mb: int | None = None


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Redemption:
    """One attempt to sign in with a (normalised) coupon code."""

    site_id: str
    instance_id: str
    code: str
    ip: str
    mac: str | None
    # What the audit log keeps of the code (`code_hash`): never the code itself.
    code_hash: str = ""


@dataclass(frozen=True)
class Grant:
    """A session for a guest who proved who it is another way than a coupon (an identity provider)."""

    site_id: str
    instance_id: str
    ip: str
    mac: str | None
    strategy: str
    identity: dict[str, Any]


@dataclass(frozen=True)
class RedeemResult:
    """The outcome of a redemption, the session it created or found, and the instance's org."""

    outcome: Outcome
    session: GuestSession | None = None
    org_id: str | None = None
    # What the code allows, for a refusal's words: its max_devices (IN_USE) or max_uses (USED).
    allowed: int | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One audit event written by the portal."""

    action: str
    org_id: str | None
    actor: str
    ip: str | None
    target_type: str | None = None
    target_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def new_session(
    session_id: str,
    guest: Redemption | Grant,
    now: datetime,
    ttl_seconds: int,
    *,
    coupon_id: str | None = None,
    limits: Limits = NO_LIMITS,
) -> GuestSession:
    """The session a sign-in of `guest` starts at `now`, lasting the instance's `ttl_seconds`, with
    its code's `limits`."""
    return GuestSession(
        id=session_id,
        site_id=guest.site_id,
        instance_id=guest.instance_id,
        ip=guest.ip,
        mac=guest.mac,
        started_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        coupon_id=coupon_id,
        download_kbps=limits.download_kbps,
        upload_kbps=limits.upload_kbps,
        data_limit_mb=limits.data_limit_mb,
    )


def failure_record(attempt: Redemption, outcome: Outcome, org_id: str | None) -> AuditRecord:
    """The audit event of a failed sign-in."""
    return AuditRecord(
        action="guest.signin_failed",
        org_id=org_id,
        actor=f"guest:{attempt.ip}",
        ip=attempt.ip,
        target_type="instance",
        target_id=attempt.instance_id,
        detail={
            "reason": outcome.value,
            "code_hash": attempt.code_hash,
            "site_id": attempt.site_id,
            "mac_address": attempt.mac,
        },
    )
