"""The lock around every change to one pushed-to gateway, held across processes on PostgreSQL.

The reconciler reads a site's sessions, lists what the gateway holds and removes the
difference. A sign-in that commits and allows its guest between that read and that listing
would be removed again (until the next pass re-adds it): so the reconciler holds the site's
lock from its read to its last write, and everything else that changes the gateway (a
sign-in's allow, a revoke, the walled garden) takes the same lock. Within a process that is the
pool's `site_lock`; with several replicas and workers on PostgreSQL it is also a
transaction-scoped advisory lock keyed by the site, so a worker's reconciler and a sign-in on
any replica exclude each other too. SQLite deployments are one host, usually one process; there
the process lock is the whole lock.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from guestgate.gateways.registry import PUSHED_DRIVERS, GatewayPool
from guestgate.runtime import Runtime
from guestgate.sites.models import Site

log = structlog.get_logger(__name__)


def advisory_key(site_id: str) -> int:
    """The signed 64-bit advisory lock key of a site's gateway."""
    digest = hashlib.sha256(b"guestgate-gateway:" + site_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def gateway_lock(
    runtime: Runtime, site: Site, *, pool: GatewayPool | None = None, timeout: float | None = None
) -> Iterator[bool]:
    """Hold the site's gateway lock; yields False (holding nothing) if it was not had within `timeout`.

    Only gateways guestgate pushes to (nftables, routeros) take the database lock: an agent
    pulls its state and `none` holds nothing that a reconciler could undo.
    """
    local = (pool or runtime.gateways).site_lock(site.id)
    if not local.acquire(timeout=-1 if timeout is None else timeout):
        yield False
        return
    try:
        if site.gateway_driver not in PUSHED_DRIVERS or runtime.engine.dialect.name != "postgresql":
            yield True
            return
        with _advisory(runtime, site.id, timeout=timeout) as held:
            yield held
    finally:
        local.release()


@contextlib.contextmanager
def _advisory(runtime: Runtime, site_id: str, *, timeout: float | None) -> Iterator[bool]:
    try:
        conn = runtime.engine.connect()
    except SQLAlchemyError as exc:
        log.warning("gateway.lock_unavailable", site_id=site_id, error=str(exc))
        yield False
        return
    with conn:
        try:
            if timeout is not None:
                conn.execute(
                    text("SELECT set_config('lock_timeout', :value, true)"),
                    {"value": f"{max(1, round(timeout * 1000))}ms"},
                )
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(site_id)})
        except SQLAlchemyError as exc:
            log.info("gateway.lock_not_taken", site_id=site_id, error=str(exc).splitlines()[0])
            with contextlib.suppress(SQLAlchemyError):
                conn.rollback()
            yield False
            return
        try:
            yield True
        finally:
            # Ending the transaction releases the lock.
            with contextlib.suppress(SQLAlchemyError):
                conn.rollback()
