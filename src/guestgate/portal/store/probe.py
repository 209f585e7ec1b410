"""Whether an idle PostgreSQL connection is still good, without a round trip."""

from __future__ import annotations

import select
from typing import Any

import psycopg


def usable(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
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
