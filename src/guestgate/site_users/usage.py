"""Usage of guest sessions: bytes added up from a gateway's raw counters, and the data-limit end.

A gateway reports raw counters per guest (`bytes_in` from the guest, `bytes_out` to it) that
start at zero when it starts counting the guest and again after it restarts. A session keeps
its totals and the last raw reading (`gateway_bytes_in/out`): a reading at least as large as the
last adds the difference; a smaller one means the counter started again, and adds the whole
reading. So a reboot loses at most what was counted since the last reading, and never counts
anything twice.

A session whose `bytes_in + bytes_out` reaches `data_limit_mb` megabytes (1 MB = 1,000,000
bytes) ends with status and end reason `quota_exceeded`; the reconciler drops it from the
gateway in the same pass (`guestgate.gateways.reconcile`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.plans.service import BYTES_PER_MB
from guestgate.site_users.models import SessionStatus, SiteUser

MB = BYTES_PER_MB  # the plan's megabyte (guestgate.plans.service)
QUOTA_EXCEEDED = SessionStatus.QUOTA_EXCEEDED.value
# Rows per UPDATE statement when usage is written.
WRITE_BATCH = 500


@dataclass(frozen=True)
class Usage:
    """A session's totals, the gateway's last raw readings (None: none yet) and its data limit."""

    bytes_in: int
    bytes_out: int
    raw_in: int | None
    raw_out: int | None
    data_limit_mb: int | None = None

    @property
    def total(self) -> int:
        """Bytes both ways."""
        return self.bytes_in + self.bytes_out


def advance(total: int, last_raw: int | None, reading: int) -> int:
    """`total` after a raw `reading`: plus the difference, or plus the whole reading when the counter started again."""
    if reading < 0:
        raise ValueError("a counter reading is never negative")
    if last_raw is None or reading < last_raw:
        return total + reading
    return total + reading - last_raw


def read(usage: Usage, bytes_in: int, bytes_out: int) -> Usage:
    """`usage` after the gateway read `bytes_in` and `bytes_out` for the session."""
    return Usage(
        bytes_in=advance(usage.bytes_in, usage.raw_in, bytes_in),
        bytes_out=advance(usage.bytes_out, usage.raw_out, bytes_out),
        raw_in=bytes_in,
        raw_out=bytes_out,
        data_limit_mb=usage.data_limit_mb,
    )


def moved(before: Usage, after: Usage) -> bool:
    """Whether a reading changed anything worth writing (totals or raw readings).

    No reading yet and a reading of 0 are the same (the next reading is added whole either way),
    so a first reading of 0 writes nothing.
    """
    return (before.bytes_in, before.bytes_out, before.raw_in or 0, before.raw_out or 0) != (
        after.bytes_in,
        after.bytes_out,
        after.raw_in or 0,
        after.raw_out or 0,
    )


def over_quota(usage: Usage) -> bool:
    """Whether the session has used all of its data limit (never, without one)."""
    return usage.data_limit_mb is not None and usage.total >= usage.data_limit_mb * MB


def data_left(usage: Usage) -> int | None:
    """Bytes the session may still use (None: no limit), never below 0."""
    if usage.data_limit_mb is None:
        return None
    return max(0, usage.data_limit_mb * MB - usage.total)


@dataclass(frozen=True)
class Reading:
    """A session's usage after a reading, and whether the guest sent or received anything since the last."""

    session_id: str
    usage: Usage
    active: bool


def record(readings: Sequence[Reading], *, now: datetime, session: Session) -> int:
    """Write the usage of `readings` (no commit); `last_seen_at` moves for those with traffic. Returns rows written.

    One UPDATE per batch of rows with the same `last_seen_at` (executemany by primary key).
    """
    written = 0
    for active in (True, False):
        rows = [r for r in readings if r.active == active]
        for start in range(0, len(rows), WRITE_BATCH):
            chunk = rows[start : start + WRITE_BATCH]
            params = [
                {
                    "id": r.session_id,
                    "bytes_in": r.usage.bytes_in,
                    "bytes_out": r.usage.bytes_out,
                    "gateway_bytes_in": r.usage.raw_in,
                    "gateway_bytes_out": r.usage.raw_out,
                    **({"last_seen_at": now} if active else {}),
                }
                for r in chunk
            ]
            session.execute(update(SiteUser), params)
            written += len(chunk)
    return written


def end_over_quota(
    session_ids: Iterable[str], *, org_id: str, site_id: str, now: datetime, session: Session
) -> list[str]:
    """End the active sessions among `session_ids` as `quota_exceeded`, with an audit event each (no commit).

    Returns the ids that were ended here (a session ended meanwhile by anything else is left as it is).
    """
    ended: list[str] = []
    wanted = sorted(set(session_ids))
    for start in range(0, len(wanted), WRITE_BATCH):
        chunk = wanted[start : start + WRITE_BATCH]
        # Conditional and RETURNING: a session another writer ended meanwhile is not counted here.
        found = session.scalars(
            update(SiteUser)
            .where(SiteUser.id.in_(chunk), SiteUser.status == SessionStatus.ACTIVE)
            .values(status=QUOTA_EXCEEDED, ended_at=now, end_reason=QUOTA_EXCEEDED)
            .returning(SiteUser.id)
            .execution_options(synchronize_session=False)
        )
        ended.extend(sorted(found))
    audit_service.record_many(
        session,
        org_id=org_id,
        action="site_user.quota_exceeded",
        target_type="site_user",
        target_ids=ended,
        detail={"site_id": site_id},
    )
    return ended


@dataclass(frozen=True)
class SessionUsage:
    """What a guest's status page shows of its session: state, limits and usage."""

    status: str
    end_reason: str | None
    download_kbps: int | None
    upload_kbps: int | None
    data_limit_mb: int | None
    bytes_in: int
    bytes_out: int

    @property
    def limited(self) -> bool:
        """Whether the session has any limit to show."""
        return any(v is not None for v in (self.download_kbps, self.upload_kbps, self.data_limit_mb))

    @property
    def data_left(self) -> int | None:
        """Bytes left (None: no data limit)."""
        return data_left(Usage(self.bytes_in, self.bytes_out, None, None, self.data_limit_mb))


_USAGE_COLUMNS = (
    SiteUser.status,
    SiteUser.end_reason,
    SiteUser.download_kbps,
    SiteUser.upload_kbps,
    SiteUser.data_limit_mb,
    SiteUser.bytes_in,
    SiteUser.bytes_out,
)


def session_usage(session_id: str, *, session: Session) -> SessionUsage | None:
    """The state, limits and usage of one session (None: no such session)."""
    row = session.execute(select(*_USAGE_COLUMNS).where(SiteUser.id == session_id)).first()
    return SessionUsage(*row) if row is not None else None


def ended_over_quota(site_id: str, ip: str, *, now: datetime, session: Session) -> bool:
    """Whether the guest at `ip` had a session at the site that ended over its data limit and would still run.

    What the status page says to a guest that the gateway dropped for its quota.
    """
    found = session.execute(
        select(SiteUser.id)
        .where(
            SiteUser.site_id == site_id,
            SiteUser.ip_address == ip,
            SiteUser.status == QUOTA_EXCEEDED,
            SiteUser.expires_at > now,
        )
        .limit(1)
    ).first()
    return found is not None
