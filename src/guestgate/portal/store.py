"""The portal's data path: plain SQL on the driver, no ORM, behind one small interface.

A guest sign-in is the hot path of the product, so it skips SQLAlchemy: SQLite is reached
with the standard `sqlite3` module (one connection per process, WAL, `BEGIN IMMEDIATE`),
PostgreSQL with psycopg (a small pool of sync connections). Both read and write the same
rows the ORM does: SQLite keeps UTC datetimes as naive `YYYY-MM-DD HH:MM:SS.ffffff` text
(SQLAlchemy's SQLite format, compared as strings), PostgreSQL uses `timestamptz`.

A redemption is one transaction: the conditional UPDATE that only an unredeemed, unexpired
coupon passes (so of any number of concurrent attempts exactly one changes the row), then
the session INSERT. A failure's audit record is written in the same transaction.
"""

from __future__ import annotations

import asyncio
import json
import queue
import select
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import psycopg
import structlog
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from guestgate import networks
from guestgate.db import libpq_conninfo

SQLITE_BUSY_TIMEOUT_MS = 10_000
# How a sign-in waits for another process's SQLite write lock without holding up the event loop.
SQLITE_BUSY_FIRST_DELAY_SECONDS = 0.001
SQLITE_BUSY_MAX_DELAY_SECONDS = 0.05

T = TypeVar("T")


class StoreBusy(sqlite3.OperationalError):
    """Another connection holds the SQLite write lock; nothing was done, the call can be retried."""


CHECKPOINT_EVERY_COMMITS = 200
CHECKPOINT_INTERVAL_SECONDS = 1.0
# WAL frames (pages) past which the writer finishes a checkpoint itself so the log starts over.
WAL_RESTART_FRAMES = 10_000
# The WAL file is cut back to this size when it starts over after a burst.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

log = structlog.get_logger(__name__)


class Outcome(StrEnum):
    """How a redemption ended."""

    SUCCESS = "success"
    ALREADY_ACTIVE = "already_active"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"


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


class GuestStore(Protocol):
    """The portal's reads and writes; calls block, `offload` says whether to run them in a thread."""

    offload: bool

    def site_networks(self, site_id: str) -> SiteNetworks | None:
        """The site's subnets and instance subnets, or None if there is no such site."""

    def instance(self, instance_id: str) -> InstanceInfo | None:
        """What the instance's page shows, or None if it is gone."""

    def subnet_claims(self) -> list[tuple[int, str, str, str, str]]:
        """Every instance subnet as `(row id, site id, org id, instance id, subnet)`: finding a guest's
        site from its address alone (`portal.resolution`)."""

    def active_session(self, site_id: str, ip: str, mac: str | None, now: datetime) -> GuestSession | None:
        """The guest's active, unexpired session at the site, if any."""

    def session(self, session_id: str, now: datetime) -> GuestSession | None:
        """The session by id if it is active and unexpired."""

    def redeem(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """Redeem a code atomically: a new session, the guest's existing one, or why not."""

    def audit(self, records: list[AuditRecord], now: datetime) -> None:
        """Write audit events."""

    def grant(self, grant: Grant, now: datetime) -> RedeemResult:
        """Start a session for a guest signed in without a coupon, or find its active one."""

    def close(self) -> None:
        """Release connections (the store reconnects if used again)."""


def open_store(database_url: str, *, pg_pool_size: int = 8) -> GuestStore:
    """The store for a SQLAlchemy database URL (SQLite file or PostgreSQL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the guest portal needs a SQLite file, not an in-memory database")
        return SQLiteGuestStore(url.database)
    if url.get_backend_name() == "postgresql":
        conninfo = libpq_conninfo(url)
        return PostgresGuestStore(conninfo, pool_size=pg_pool_size)
    raise ValueError(f"the guest portal does not support '{url.get_backend_name()}' databases")


_SQL_SITE = "SELECT org_id, subnets FROM sites WHERE id = ?"
_SQL_SITE_SUBNETS = "SELECT subnet, instance_id FROM instance_subnets WHERE site_id = ? ORDER BY position"
_SQL_ALL_SUBNETS = (
    "SELECT i.id, i.site_id, s.org_id, i.instance_id, i.subnet "
    "FROM instance_subnets i JOIN sites s ON s.id = i.site_id"
)
_SQL_INSTANCE = (
    "SELECT id, org_id, name, strategy, session_ttl, theme, terms_text, locale, timezone FROM instances "
    "WHERE id = ?"
)
_SQL_IMAGES = "SELECT id, kind, width, height FROM images WHERE instance_id = ?"
_SQL_AUTH_PROVIDER = (
    "SELECT a.type FROM instances i JOIN auth_integrations a ON a.id = i.auth_integration_id WHERE i.id = ?"
)
# On PostgreSQL, `status = 'active'` and the equalities and order spelled as they are here let
# the planner take the partial index ix_site_users_active_guest, whatever its statistics.
_SQL_ACTIVE = (
    "SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id "
    "FROM site_users WHERE site_id = ? AND ip_address = ? AND status = 'active' AND expires_at > ? "
    "ORDER BY expires_at DESC LIMIT 5"
)
# SQLite has no statistics here and would pick the (status, expires_at) index, which matches
# every live session; the unary `+` keeps expires_at out of index choice so the
# (site_id, ip_address, status) index is used.
_SQL_ACTIVE_SQLITE = (
    "SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id "
    "FROM site_users WHERE site_id = ? AND ip_address = ? AND status = 'active' AND +expires_at > ? "
    "ORDER BY +expires_at DESC LIMIT 5"
)
_SQL_SESSION = (
    "SELECT id, site_id, instance_id, ip_address, mac_address, started_at, expires_at, coupon_id "
    "FROM site_users WHERE id = ? AND status = 'active' AND expires_at > ?"
)
_SQL_INSTANCE_TTL = "SELECT org_id, session_ttl FROM instances WHERE id = ?"
# The row is found through the (instance_id, code) unique key first: written as one flat
# WHERE, a planner without fresh statistics may walk the partial "unredeemed" index of the
# whole instance instead. The outer conditions are re-checked on the locked row, so of
# concurrent attempts only the first to commit changes it.
_SQL_REDEEM = (
    "UPDATE coupons SET redeemed_at = ? "
    "WHERE id = (SELECT id FROM coupons WHERE instance_id = ? AND code = ?) "
    "AND redeemed_at IS NULL AND expires_at > ? RETURNING id"
)
_SQL_COUPON_STATE = "SELECT redeemed_at FROM coupons WHERE instance_id = ? AND code = ?"
_SQL_INSERT_SESSION = (
    "INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, mac_address, strategy, "
    "coupon_id, identity, status, started_at, expires_at, ended_at, end_reason) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, NULL, NULL)"
)
# PostgreSQL's redemption: the function `guestgate_redeem_coupon` (migration 0004) takes the
# guest's advisory lock, then, on a fresh snapshot, looks for the guest's active session and,
# if there is none, spends the coupon and inserts the session. Its rows: ('instance', ...,
# org_id, session_ttl) if the instance exists, ('existing', the session's columns ...) or
# ('made', ..., coupon_id, ...). PL/pgSQL keeps the plans of its statements for the life of the
# connection, so a sign-in costs the server the planning of this call only.
_PG_REDEEM = (
    "SELECT * FROM guestgate_redeem_coupon(%(instance)s, %(site)s, %(ip)s, %(mac)s, %(code)s, "
    "%(now)s, %(session)s)"
)
_PG_LOCK_GUEST = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_SQL_INSERT_AUDIT = (
    "INSERT INTO audit_events (org_id, at, actor, action, target_type, target_id, ip_address, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class _SqlGuestStore(ABC):
    """The queries of both databases; subclasses supply connections and value conversions."""

    offload = False
    _placeholder = "?"
    _active_sql = _SQL_ACTIVE

    def _sql(self, text: str) -> str:
        return text if self._placeholder == "?" else text.replace("?", self._placeholder)

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Any]:
        """A connection for single statements (autocommit)."""

    @abstractmethod
    def _writing(self) -> AbstractContextManager[Any]:
        """A connection inside a write transaction, committed on exit."""

    @abstractmethod
    def _ts(self, value: datetime) -> Any:
        """A datetime as the database column takes it."""

    @abstractmethod
    def _from_ts(self, value: Any) -> datetime:
        """A datetime column value as an aware UTC datetime."""

    @abstractmethod
    def _json_in(self, value: Any) -> Any:
        """A JSON document as the database column takes it."""

    @abstractmethod
    def _json_out(self, value: Any) -> Any:
        """A JSON column value as Python data."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (the store reconnects if used again)."""

    @abstractmethod
    def _lock_guest(self, conn: Any, site_id: str, ip: str) -> None:
        """Serialise concurrent sign-ins of one guest inside the write transaction."""

    def site_networks(self, site_id: str) -> SiteNetworks | None:
        """The site's subnets and instance subnets, or None if there is no such site."""
        with self._reading() as conn:
            row = conn.execute(self._sql(_SQL_SITE), (site_id,)).fetchone()
            if row is None:
                return None
            rows = conn.execute(self._sql(_SQL_SITE_SUBNETS), (site_id,)).fetchall()
        subnets = tuple(networks.parse(s) for s in (self._json_out(row[1]) or []))
        mine = tuple((networks.parse(subnet), instance_id) for subnet, instance_id in rows)
        return SiteNetworks(site_id=site_id, org_id=row[0], subnets=subnets, instance_subnets=mine)

    def instance(self, instance_id: str) -> InstanceInfo | None:
        """What the instance's page shows, or None if it is gone."""
        with self._reading() as conn:
            row = conn.execute(self._sql(_SQL_INSTANCE), (instance_id,)).fetchone()
            if row is None:
                return None
            images = {
                kind: ImageRef(id=image_id, width=width, height=height)
                for image_id, kind, width, height in conn.execute(self._sql(_SQL_IMAGES), (instance_id,))
            }
            provider = None
            if row[3] == "oauth2":
                found = conn.execute(self._sql(_SQL_AUTH_PROVIDER), (instance_id,)).fetchone()
                provider = None if found is None else found[0]
        theme = self._json_out(row[5]) or {}
        return InstanceInfo(
            id=row[0],
            org_id=row[1],
            name=row[2],
            strategy=row[3],
            session_ttl=int(row[4]),
            theme={str(k): str(v) for k, v in theme.items() if isinstance(v, str)},
            terms_text=row[6],
            locale=row[7] or "en",
            timezone=row[8],
            logo=images.get("logo"),
            icon=images.get("icon"),
            auth_provider=provider,
        )

    def subnet_claims(self) -> list[tuple[int, str, str, str, str]]:
        """Every instance subnet as `(row id, site id, org id, instance id, subnet)`."""
        with self._reading() as conn:
            rows = conn.execute(self._sql(_SQL_ALL_SUBNETS)).fetchall()
        return [(int(a), str(b), str(c), str(d), str(e)) for a, b, c, d, e in rows]

    def active_session(self, site_id: str, ip: str, mac: str | None, now: datetime) -> GuestSession | None:
        """The guest's active, unexpired session at the site, if any."""
        with self._reading() as conn:
            return self._active(conn, site_id, ip, mac, now)

    def session(self, session_id: str, now: datetime) -> GuestSession | None:
        """The session by id if it is active and unexpired."""
        with self._reading() as conn:
            row = conn.execute(self._sql(_SQL_SESSION), (session_id, self._ts(now))).fetchone()
        return None if row is None else self._session_of(row)

    def redeem(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """Redeem a code atomically: a new session, the guest's existing one, or why not."""
        with self._writing() as conn:
            self._lock_guest(conn, attempt.site_id, attempt.ip)
            instance = conn.execute(self._sql(_SQL_INSTANCE_TTL), (attempt.instance_id,)).fetchone()
            org_id: str | None = None if instance is None else instance[0]
            if instance is not None:
                existing = self._active(conn, attempt.site_id, attempt.ip, attempt.mac, now)
                if existing is not None:
                    return RedeemResult(Outcome.ALREADY_ACTIVE, existing, org_id)
                stamp = self._ts(now)
                won = conn.execute(
                    self._sql(_SQL_REDEEM), (stamp, attempt.instance_id, attempt.code, stamp)
                ).fetchall()
                if won:
                    session = new_session(
                        str(uuid.uuid4()), attempt, now, int(instance[1]), coupon_id=won[0][0]
                    )
                    self._insert_session(conn, session, instance[0], strategy="coupon", identity=None)
                    return RedeemResult(Outcome.SUCCESS, session, org_id)
            return self._refused(conn, attempt, org_id, now)

    def _refused(self, conn: Any, attempt: Redemption, org_id: str | None, now: datetime) -> RedeemResult:
        """Why a code was not redeemed (unknown, used or expired), recorded as an audit event."""
        state = conn.execute(self._sql(_SQL_COUPON_STATE), (attempt.instance_id, attempt.code)).fetchone()
        if state is None:
            outcome = Outcome.UNKNOWN
        elif state[0] is not None:
            outcome = Outcome.USED
        else:
            outcome = Outcome.EXPIRED
        self._insert_audit(conn, [failure_record(attempt, outcome, org_id)], now)
        return RedeemResult(outcome, None, org_id)

    def grant(self, grant: Grant, now: datetime) -> RedeemResult:
        """Start a session for a guest signed in without a coupon, or find its active one."""
        with self._writing() as conn:
            # The same per-guest order as a redemption: one guest never gets two sessions.
            self._lock_guest(conn, grant.site_id, grant.ip)
            instance = conn.execute(self._sql(_SQL_INSTANCE_TTL), (grant.instance_id,)).fetchone()
            if instance is None:
                return RedeemResult(Outcome.UNKNOWN)
            org_id: str = instance[0]
            existing = self._active(conn, grant.site_id, grant.ip, grant.mac, now)
            if existing is not None:
                return RedeemResult(Outcome.ALREADY_ACTIVE, existing, org_id)
            session = new_session(str(uuid.uuid4()), grant, now, int(instance[1]))
            self._insert_session(conn, session, org_id, strategy=grant.strategy, identity=grant.identity)
            return RedeemResult(Outcome.SUCCESS, session, org_id)

    def _insert_session(
        self, conn: Any, session: GuestSession, org_id: str, *, strategy: str, identity: Any
    ) -> None:
        conn.execute(
            self._sql(_SQL_INSERT_SESSION),
            (
                session.id,
                org_id,
                session.site_id,
                session.instance_id,
                session.ip,
                session.mac,
                strategy,
                session.coupon_id,
                None if identity is None else self._json_in(identity),
                self._ts(session.started_at),
                self._ts(session.expires_at),
            ),
        )

    def audit(self, records: list[AuditRecord], now: datetime) -> None:
        """Write audit events."""
        if records:
            with self._writing() as conn:
                self._insert_audit(conn, records, now)

    def _insert_audit(self, conn: Any, records: list[AuditRecord], now: datetime) -> None:
        stamp = self._ts(now)
        for record in records:
            conn.execute(
                self._sql(_SQL_INSERT_AUDIT),
                (
                    record.org_id,
                    stamp,
                    record.actor,
                    record.action,
                    record.target_type,
                    record.target_id,
                    record.ip,
                    self._json_in(record.detail),
                ),
            )

    def _active(
        self, conn: Any, site_id: str, ip: str, mac: str | None, now: datetime
    ) -> GuestSession | None:
        rows = conn.execute(self._sql(self._active_sql), (site_id, ip, self._ts(now))).fetchall()
        for row in rows:
            # A different device behind a reused address is not this guest.
            if mac is None or row[4] is None or row[4] == mac:
                return self._session_of(row)
        return None

    def _session_of(self, row: Any) -> GuestSession:
        return GuestSession(
            id=row[0],
            site_id=row[1],
            instance_id=row[2],
            ip=row[3],
            mac=row[4],
            started_at=self._from_ts(row[5]),
            expires_at=self._from_ts(row[6]),
            coupon_id=row[7],
        )


def _pg_redeem_params(attempt: Redemption, now: datetime) -> tuple[str, dict[str, Any]]:
    """The new session's id and the parameters of `_PG_REDEEM`."""
    session_id = str(uuid.uuid4())
    params = {
        "instance": attempt.instance_id,
        "site": attempt.site_id,
        "ip": attempt.ip,
        "mac": attempt.mac,
        "code": attempt.code,
        "now": now.astimezone(UTC),
        "session": session_id,
    }
    return session_id, params


def _pg_redeemed(
    attempt: Redemption,
    now: datetime,
    session_id: str,
    rows: list[Any],
    session_of: Callable[[Any], GuestSession],
) -> tuple[RedeemResult | None, str | None]:
    """The result of `_PG_REDEEM`'s rows (None if the code was refused) and the instance's org."""
    found = {row[0]: row for row in rows}
    instance = found.get("instance")
    if instance is None:
        return None, None
    org_id: str = instance[9]
    existing = found.get("existing")
    if existing is not None:
        return RedeemResult(Outcome.ALREADY_ACTIVE, session_of(existing[1:9]), org_id), org_id
    made = found.get("made")
    if made is None:
        return None, org_id
    session = new_session(session_id, attempt, now, int(instance[10]), coupon_id=made[8])
    return RedeemResult(Outcome.SUCCESS, session, org_id), org_id


def new_session(
    session_id: str,
    guest: Redemption | Grant,
    now: datetime,
    ttl_seconds: int,
    *,
    coupon_id: str | None = None,
) -> GuestSession:
    """The session a sign-in of `guest` starts at `now`, lasting the instance's `ttl_seconds`."""
    return GuestSession(
        id=session_id,
        site_id=guest.site_id,
        instance_id=guest.instance_id,
        ip=guest.ip,
        mac=guest.mac,
        started_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        coupon_id=coupon_id,
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


class SQLiteGuestStore(_SqlGuestStore):
    """The store on a SQLite file: one connection, used from the event loop (queries take microseconds).

    WAL checkpoints (copying the log back into the database file, with an fsync) would
    otherwise run inside every thousandth-page commit, on the event loop. Here they run in a
    background thread instead, woken every `CHECKPOINT_EVERY_COMMITS` commits and at least
    every `CHECKPOINT_INTERVAL_SECONDS`; the driver releases the GIL while it works.

    The log only starts over when a write transaction begins with every frame of it copied
    back, which a background checkpoint racing a busy writer never achieves: under sustained
    sign-ins the WAL would grow without end (gigabytes an hour), and every read with it. So
    once the background pass finds more than `WAL_RESTART_FRAMES` frames, the writer runs one
    checkpoint itself between two transactions: it copies only what the background pass has
    not, and the next transaction starts the log over.
    """

    offload = False
    _active_sql = _SQL_ACTIVE_SQLITE

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._commits = 0
        self._wake = threading.Event()
        self._restart = threading.Event()
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        # Set while `call` runs a method on the event loop: a busy write lock raises at once.
        self._nowait = threading.local()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the event loop, never blocking it on another process's write lock.

        The store's own connection does not wait in SQLite's busy handler (that would stop the
        whole event loop, every guest of this process, for as long as an operator's batch or a
        worker holds the lock). A write that finds the lock taken gives up before doing anything
        (StoreBusy at BEGIN) and is tried again after an `await`, with a growing pause, until
        `SQLITE_BUSY_TIMEOUT_MS`; then the caller gets the "database is locked" error (a 503).
        """
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = SQLITE_BUSY_FIRST_DELAY_SECONDS
        while True:
            self._nowait.on = True
            try:
                return fn(*args)
            except StoreBusy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise sqlite3.OperationalError("database is locked") from None
            finally:
                self._nowait.on = False
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, SQLITE_BUSY_MAX_DELAY_SECONDS)

    async def redeem_async(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """`redeem` through `call`: the sign-in path's way in."""
        return await self.call(self.redeem, attempt, now)

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock: at once or StoreBusy under `call`, else waiting like SQLite's busy handler."""
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        delay = SQLITE_BUSY_FIRST_DELAY_SECONDS
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if getattr(self._nowait, "on", False):
                    raise StoreBusy(str(exc)) from exc
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
            time.sleep(min(delay, left))
            delay = min(delay * 2, SQLITE_BUSY_MAX_DELAY_SECONDS)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = self._open()
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            # Never wait inside SQLite: `_begin_immediate` waits, and on the event loop it awaits.
            conn.execute("PRAGMA busy_timeout=0")
            self._conn = conn
            self._stop = threading.Event()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop,
                args=(self._stop,),
                name="guestgate-portal-checkpoint",
                daemon=True,
            )
            self._checkpointer.start()
        return self._conn

    def _checkpoint_loop(self, stop: threading.Event) -> None:
        conn = self._open()
        try:
            while not stop.is_set():
                self._wake.wait(CHECKPOINT_INTERVAL_SECONDS)
                self._wake.clear()
                try:
                    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames >= WAL_RESTART_FRAMES:
                        self._restart.set()
                except sqlite3.Error as exc:
                    log.warning("portal.checkpoint_failed", error=str(exc))
        finally:
            conn.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            # IMMEDIATE takes the write lock up front: a deferred transaction that reads first
            # could fail with SQLITE_BUSY on upgrade instead of waiting its turn.
            self._begin_immediate(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY_COMMITS == 0:
                self._wake.set()
            if self._restart.is_set():
                self._finish_checkpoint(conn)

    def _finish_checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy back what the background pass left, so that the next transaction restarts the log."""
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("portal.checkpoint_failed", error=str(exc))
            return
        # Busy: the background pass holds the checkpoint right now; the next commit tries again.
        if not busy and copied >= frames:
            self._restart.clear()

    def _lock_guest(self, conn: Any, site_id: str, ip: str) -> None:
        """Nothing to add: BEGIN IMMEDIATE already serialises every writer."""

    def _ts(self, value: datetime) -> str:
        # Same text as SQLAlchemy's SQLite DateTime ('%Y-%m-%d %H:%M:%S.%f'); isoformat is faster.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def _from_ts(self, value: Any) -> datetime:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    def _json_in(self, value: Any) -> str:
        return json.dumps(value)

    def _json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def close(self) -> None:
        """Close the connection and stop the checkpointer (both restart on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            checkpointer, self._checkpointer = self._checkpointer, None
            self._stop.set()
            self._wake.set()
        if checkpointer is not None:
            checkpointer.join(timeout=10)


class PostgresGuestStore(_SqlGuestStore):
    """The store on PostgreSQL: a small pool of autocommit psycopg connections, used from threads.

    The redemption runs in the database function `guestgate_redeem_coupon` (migration 0004),
    whose statements PL/pgSQL plans once per connection: soon with a generic plan, made
    perhaps while `site_users` is small and without statistics. The guest's-session look-up
    is written to match the partial index ix_site_users_active_guest (site_id, ip_address,
    expires_at WHERE status = 'active'), which every such plan takes; the (status, expires_at)
    and (site_id, started_at) indexes would walk every live session of the site, more with each
    sign-in (tests/portal/test_store_plans.py checks the plans). The store's other statements
    are not prepared (`prepare_threshold=None`): they are small and off the sign-in's path.
    """

    offload = True
    _placeholder = "%s"

    def __init__(self, conninfo: str, *, pool_size: int = 8) -> None:
        self._conninfo = conninfo
        self._pool_size = max(1, pool_size)
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self._pool_size)
        # The sign-in path's async connections (`redeem_async`), as many again, on one event loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aidle: list[psycopg.AsyncConnection[Any]] = []
        self._aslots: asyncio.Semaphore | None = None

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        with self._slots:
            conn = self._checkout()
            healthy = False
            try:
                yield conn
                healthy = True
            finally:
                if healthy and not conn.closed and not conn.broken:
                    self._idle.put(conn)
                else:
                    if conn.broken:
                        # The server went away: its other connections in the pool went with it.
                        self._drop_idle()
                    conn.close()

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Connection[Any]]:
        with self._reading() as conn, conn.transaction():
            yield conn

    def _checkout(self) -> psycopg.Connection[Any]:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None)
            if _usable(conn):
                return conn
            conn.close()

    def _lock_guest(self, conn: Any, site_id: str, ip: str) -> None:
        # READ COMMITTED lets two sign-ins of one guest both see "no session" and both spend
        # a coupon (a double-tapped button); a per-guest advisory lock orders them.
        conn.execute(_PG_LOCK_GUEST, (f"{site_id}|{ip}",))

    def redeem(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """Redeem a code atomically: a new session, the guest's existing one, or why not.

        One network round trip and one transaction: the call of `guestgate_redeem_coupon`,
        which takes the guest's advisory lock and then redeems on a snapshot taken after the
        lock was granted, so it sees the session a concurrent sign-in of the same guest has
        just committed. Only a refused code costs a second trip, to tell unknown from used
        and expired and to write the audit event.
        """
        session_id, params = _pg_redeem_params(attempt, now)
        with self._reading() as conn:
            rows = conn.execute(_PG_REDEEM, params).fetchall()
            done, org_id = _pg_redeemed(attempt, now, session_id, rows, self._session_of)
            if done is not None:
                return done
            with conn.transaction():
                return self._refused(conn, attempt, org_id, now)

    async def redeem_async(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """`redeem` on the event loop with an async connection: the sign-in path's way in.

        A worker thread per redemption costs more than the redemption: the thread hop and the
        event loop and the pool's threads taking the GIL from each other. Only a refused code
        goes to a thread (the second trip, as in `redeem`).
        """
        session_id, params = _pg_redeem_params(attempt, now)
        slots, idle = self._async_pool()
        async with slots:
            conn = idle.pop() if idle else None
            while conn is not None and not _usable(conn):
                conn.pgconn.finish()
                conn = idle.pop() if idle else None
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, prepare_threshold=None
                )
            healthy = False
            try:
                # A simple-protocol message, values bound (quoted) on the client: one send
                # and one reply, the cheapest exchange for the server process (py-spy of
                # bench/signin.py); the function's own statements run from cached plans.
                cursor = psycopg.AsyncClientCursor(conn)
                await cursor.execute(_PG_REDEEM, params)
                rows = await cursor.fetchall()
                healthy = True
            finally:
                if healthy:
                    idle.append(conn)
                else:
                    if conn.broken:
                        self._drop_async()
                    # Perhaps mid-transaction: the server rolls back when the socket closes.
                    conn.pgconn.finish()
        done, org_id = _pg_redeemed(attempt, now, session_id, rows, self._session_of)
        if done is not None:
            return done
        return await anyio.to_thread.run_sync(self._refuse, attempt, org_id, now)

    def _refuse(self, attempt: Redemption, org_id: str | None, now: datetime) -> RedeemResult:
        with self._writing() as conn:
            return self._refused(conn, attempt, org_id, now)

    def _async_pool(self) -> tuple[asyncio.Semaphore, list[psycopg.AsyncConnection[Any]]]:
        """This event loop's connection slots and idle connections (async connections belong to
        the loop that opened them; a test client runs several loops one after another)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._drop_async()
            self._loop = loop
            self._aslots = asyncio.Semaphore(self._pool_size)
            self._aidle = []
        assert self._aslots is not None
        return self._aslots, self._aidle

    def _drop_async(self) -> None:
        idle, self._aidle = self._aidle, []
        for conn in idle:
            conn.pgconn.finish()

    def _ts(self, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def _from_ts(self, value: Any) -> datetime:
        stamp: datetime = value
        return stamp.astimezone(UTC)

    def _json_in(self, value: Any) -> Jsonb:
        return Jsonb(value)

    def _json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def close(self) -> None:
        """Close the idle connections (new ones are opened on next use)."""
        self._drop_async()
        self._drop_idle()

    def _drop_idle(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            conn.close()


def _usable(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection can take a statement, without a round trip.

    An idle connection has nothing to read. A readable socket means the server has spoken
    first, which it does only to end the session: a restart, a failover, an administrator's
    pg_terminate_backend (the FATAL message, then end of file). Such a connection would fail
    the guest's request; it is dropped at checkout instead, at the cost of one poll.
    """
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable
