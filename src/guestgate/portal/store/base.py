"""The store's logic on both databases: the queries of `sql`, run and read by column name.

A redemption is one transaction: the code's row read and checked against its plan (sign-ins
left, unexpired, a device free), spent, then the session INSERT with the code's limits; on
SQLite, BEGIN IMMEDIATE has serialised every writer first, so of any number of concurrent
attempts no more win than the plan allows (PostgreSQL: `guestgate_redeem_coupon`). A failure's audit record is written in the same transaction. The
subclasses supply the connections, the value conversions and the per-guest lock.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from guestgate import networks
from guestgate.portal.store import sql
from guestgate.portal.store.records import (
    AuditRecord,
    Grant,
    GuestSession,
    ImageRef,
    InstanceInfo,
    Limits,
    Outcome,
    RedeemResult,
    Redemption,
    SiteNetworks,
    failure_record,
    new_session,
)


def guest_lock_key(site_id: str, ip: str) -> str:
    """The key of a guest's sign-in lock: what concurrent sign-ins of one guest queue on.

    `guestgate_redeem_coupon` builds the same text from its own arguments (`p_site || '|' || p_ip`).
    """
    return f"{site_id}|{ip}"


class SqlGuestStore(ABC):
    """The queries of both databases; subclasses supply connections and value conversions.

    Rows are mappings by column name: `sqlite3.Row` on SQLite, psycopg's `dict_row` on PostgreSQL.
    """

    _placeholder = "?"
    _active_sql = sql.ACTIVE

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
    def _lock_guest(self, conn: Any, key: str) -> None:
        """Serialise concurrent sign-ins of one guest (`guest_lock_key`) inside the write transaction."""

    def site_networks(self, site_id: str) -> SiteNetworks | None:
        """The site's subnets and instance subnets, or None if there is no such site."""
        with self._reading() as conn:
            row = conn.execute(self._sql(sql.SITE), (site_id,)).fetchone()
            if row is None:
                return None
            rows = conn.execute(self._sql(sql.SITE_SUBNETS), (site_id,)).fetchall()
        subnets = tuple(networks.parse(s) for s in (self._json_out(row["subnets"]) or []))
        mine = tuple((networks.parse(r["subnet"]), r["instance_id"]) for r in rows)
        return SiteNetworks(site_id=site_id, org_id=row["org_id"], subnets=subnets, instance_subnets=mine)

    def instance(self, instance_id: str) -> InstanceInfo | None:
        """What the instance's page shows, or None if it is gone."""
        with self._reading() as conn:
            row = conn.execute(self._sql(sql.INSTANCE), (instance_id,)).fetchone()
            if row is None:
                return None
            images = {
                image["kind"]: ImageRef(id=image["id"], width=image["width"], height=image["height"])
                for image in conn.execute(self._sql(sql.IMAGES), (instance_id,)).fetchall()
            }
            provider = None
            if row["strategy"] == "oauth2":
                found = conn.execute(self._sql(sql.AUTH_PROVIDER), (instance_id,)).fetchone()
                provider = None if found is None else found["type"]
        theme = self._json_out(row["theme"]) or {}
        return InstanceInfo(
            id=row["id"],
            org_id=row["org_id"],
            name=row["name"],
            strategy=row["strategy"],
            session_ttl=int(row["session_ttl"]),
            theme={str(k): str(v) for k, v in theme.items() if isinstance(v, str)},
            terms_text=row["terms_text"],
            locale=row["locale"] or "en",
            timezone=row["timezone"],
            logo=images.get("logo"),
            icon=images.get("icon"),
            auth_provider=provider,
        )

    def subnet_claims(self) -> list[tuple[int, str, str, str, str]]:
        """Every instance subnet as `(row id, site id, org id, instance id, subnet)`."""
        with self._reading() as conn:
            rows = conn.execute(self._sql(sql.ALL_SUBNETS)).fetchall()
        return [
            (int(r["id"]), str(r["site_id"]), str(r["org_id"]), str(r["instance_id"]), str(r["subnet"]))
            for r in rows
        ]

    def active_session(self, site_id: str, ip: str, mac: str | None, now: datetime) -> GuestSession | None:
        """The guest's active, unexpired session at the site, if any."""
        with self._reading() as conn:
            return self._active(conn, site_id, ip, mac, now)

    def session(self, session_id: str, now: datetime) -> GuestSession | None:
        """The session by id if it is active and unexpired."""
        with self._reading() as conn:
            row = conn.execute(self._sql(sql.SESSION), (session_id, self._ts(now))).fetchone()
        return None if row is None else self._session_of(row)

    def redeem(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """Redeem a code atomically: a new session, the guest's existing one, or why not.

        The guest's active session comes first: a guest signing in again while its session lasts
        (with this code or another) gets that session back, spending neither a use nor a device.
        """
        with self._writing() as conn:
            self._lock_guest(conn, guest_lock_key(attempt.site_id, attempt.ip))
            instance = conn.execute(self._sql(sql.INSTANCE_TTL), (attempt.instance_id,)).fetchone()
            org_id: str | None = None if instance is None else instance["org_id"]
            if instance is None:
                return self._refused(conn, attempt, org_id, now)
            existing = self._active(conn, attempt.site_id, attempt.ip, attempt.mac, now)
            if existing is not None:
                return RedeemResult(Outcome.ALREADY_ACTIVE, existing, org_id)
            stamp = self._ts(now)
            fast = conn.execute(
                self._sql(sql.SPEND_FAST), (stamp, attempt.instance_id, attempt.code, stamp)
            ).fetchone()
            if fast is not None:
                return self._started(conn, attempt, now, instance, fast)
            coupon = conn.execute(self._sql(sql.COUPON), (attempt.instance_id, attempt.code)).fetchone()
            if coupon is None or self._refusal(conn, coupon, now) is not None:
                return self._refused(conn, attempt, org_id, now)
            redeemed_at = coupon["redeemed_at"]
            expires_at = self._from_ts(coupon["expires_at"])
            if redeemed_at is None and coupon["validity_from"] == "first_use":
                # Valid for as long from its first use as it was from its creation.
                expires_at = now + (expires_at - self._from_ts(coupon["created_at"]))
            conn.execute(
                self._sql(sql.SPEND),
                (redeemed_at if redeemed_at is not None else stamp, self._ts(expires_at), coupon["id"]),
            )
            return self._started(conn, attempt, now, instance, coupon)

    def _started(
        self, conn: Any, attempt: Redemption, now: datetime, instance: Any, coupon: Any
    ) -> RedeemResult:
        """The session a spent code starts, with its limits (`coupon` has its id and limit columns)."""
        limits = Limits(coupon["download_kbps"], coupon["upload_kbps"], coupon["data_limit_mb"])
        session = new_session(
            str(uuid.uuid4()),
            attempt,
            now,
            int(instance["session_ttl"]),
            coupon_id=coupon["id"],
            limits=limits,
        )
        self._insert_session(conn, session, instance["org_id"], strategy="coupon", identity=None)
        return RedeemResult(Outcome.SUCCESS, session, instance["org_id"])

    def _refusal(self, conn: Any, coupon: Any, now: datetime) -> tuple[Outcome, int | None] | None:
        """Why the code (a row with `sql.COUPON_STATE`'s columns) cannot sign a guest in now, and the
        limit it reached; None if it can.

        In this order: used up (every sign-in spent: today's "used" of a single-use code),
        expired, in use on all its devices. Sessions are counted only when they could fill the
        devices: a code used fewer times than it has devices cannot have them all signed in.
        """
        max_uses = coupon["max_uses"]
        if max_uses is not None and coupon["uses"] >= max_uses:
            return Outcome.USED, int(max_uses)
        if self._from_ts(coupon["expires_at"]) <= now:
            return Outcome.EXPIRED, None
        devices = int(coupon["max_devices"])
        if coupon["uses"] >= devices:
            held = conn.execute(self._sql(sql.HOLDERS), (coupon["id"], self._ts(now))).fetchone()
            if int(held["n"]) >= devices:
                return Outcome.IN_USE, devices
        return None

    def _refused(self, conn: Any, attempt: Redemption, org_id: str | None, now: datetime) -> RedeemResult:
        """Why a code was not redeemed (unknown, used up, expired, in use), recorded as an audit event."""
        state = conn.execute(self._sql(sql.COUPON_STATE), (attempt.instance_id, attempt.code)).fetchone()
        if state is None or org_id is None:
            outcome, allowed = Outcome.UNKNOWN, None
        else:
            # A code refused a moment ago may be free now (a session ended): it was in use then.
            outcome, allowed = self._refusal(conn, state, now) or (Outcome.IN_USE, int(state["max_devices"]))
        self._insert_audit(conn, [failure_record(attempt, outcome, org_id)], now)
        return RedeemResult(outcome, None, org_id, allowed)

    def grant(self, grant: Grant, now: datetime) -> RedeemResult:
        """Start a session for a guest signed in without a coupon, or find its active one."""
        with self._writing() as conn:
            # The same per-guest order as a redemption: one guest never gets two sessions.
            self._lock_guest(conn, guest_lock_key(grant.site_id, grant.ip))
            instance = conn.execute(self._sql(sql.INSTANCE_TTL), (grant.instance_id,)).fetchone()
            if instance is None:
                return RedeemResult(Outcome.UNKNOWN)
            org_id: str = instance["org_id"]
            existing = self._active(conn, grant.site_id, grant.ip, grant.mac, now)
            if existing is not None:
                return RedeemResult(Outcome.ALREADY_ACTIVE, existing, org_id)
            session = new_session(str(uuid.uuid4()), grant, now, int(instance["session_ttl"]))
            self._insert_session(conn, session, org_id, strategy=grant.strategy, identity=grant.identity)
            return RedeemResult(Outcome.SUCCESS, session, org_id)

    def _insert_session(
        self, conn: Any, session: GuestSession, org_id: str, *, strategy: str, identity: Any
    ) -> None:
        conn.execute(
            self._sql(sql.INSERT_SESSION),
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
                session.download_kbps,
                session.upload_kbps,
                session.data_limit_mb,
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
                self._sql(sql.INSERT_AUDIT),
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
            if mac is None or row["mac_address"] is None or row["mac_address"] == mac:
                return self._session_of(row)
        return None

    def _session_of(self, row: Any) -> GuestSession:
        """A session from a row with the session columns (`sql.SESSION`'s, or `sql.PG_REDEEM`'s)."""
        return GuestSession(
            id=row["id"],
            site_id=row["site_id"],
            instance_id=row["instance_id"],
            ip=row["ip_address"],
            mac=row["mac_address"],
            started_at=self._from_ts(row["started_at"]),
            expires_at=self._from_ts(row["expires_at"]),
            coupon_id=row["coupon_id"],
            download_kbps=row["download_kbps"],
            upload_kbps=row["upload_kbps"],
            data_limit_mb=row["data_limit_mb"],
        )
