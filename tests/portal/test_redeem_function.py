"""The redemption function a migrated PostgreSQL database holds is the one in the repository's
.sql file (migrations/versions/0011_guestgate_redeem_coupon.sql, loaded by migration 0011, which
replaced 0004's), and
its advisory lock is the one `guest_lock_key` names."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

import guestgate.migrations.versions as versions
from guestgate.db import libpq_conninfo
from guestgate.portal.store import guest_lock_key
from guestgate.portal.store.sql import PG_LOCK_GUEST

SQL_FILE = Path(versions.__file__).parent / "0011_guestgate_redeem_coupon.sql"


def _conninfo(url: str) -> str:
    return libpq_conninfo(make_url(url))


def _body(text: str, quote: str) -> str:
    found = re.search(rf"AS \${quote}\$\n(.*)\${quote}\$", text, re.DOTALL)
    assert found is not None, text
    return found.group(1)


def _squash(text: str) -> str:
    return " ".join(text.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split())


def test_the_migrated_function_is_the_sql_file(pg_database: str) -> None:
    source = SQL_FILE.read_text(encoding="utf-8")
    with psycopg.connect(_conninfo(pg_database)) as conn:
        row = conn.execute(
            "SELECT pg_get_functiondef(p.oid), pg_get_function_arguments(p.oid), "
            "pg_get_function_result(p.oid) FROM pg_proc p WHERE p.proname = 'guestgate_redeem_coupon' "
            "AND pg_get_function_identity_arguments(p.oid) = 'p_instance text, p_site text, p_ip text, "
            "p_mac text, p_code text, p_now timestamp with time zone, p_session text'"
        ).fetchone()
    assert row is not None
    definition, arguments, result = row
    # The body is kept verbatim by the server: byte for byte the file's.
    assert _body(definition, "function") == _body(source, "fn")
    # The signature and the result as the server spells them (types normalised).
    header = source[source.index("guestgate_redeem_coupon(") : source.index("LANGUAGE")]
    spelled = _squash(header.replace("timestamptz", "timestamp with time zone"))
    assert _squash(f"guestgate_redeem_coupon({arguments}) RETURNS {result}") == spelled
    assert "LANGUAGE plpgsql" in definition
    assert "VOLATILE" not in definition  # the default, which pg_get_functiondef leaves unsaid
    assert "VOLATILE" in source


def test_the_function_takes_the_lock_guest_lock_key_names(pg_database: str) -> None:
    """A session holding the guest's lock by `guest_lock_key` holds up the function for that guest."""
    with psycopg.connect(_conninfo(pg_database), autocommit=True) as holder, holder.transaction():
        holder.execute(PG_LOCK_GUEST, (guest_lock_key("site-x", "10.9.8.7"),))
        with psycopg.connect(_conninfo(pg_database), autocommit=True) as other:
            other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(
                    "SELECT * FROM guestgate_redeem_coupon('no-instance', 'site-x', '10.9.8.7', NULL, "
                    "'ABC234', now(), 'no-session')"
                )
            # Another guest of the same site is not held up.
            rows = other.execute(
                "SELECT * FROM guestgate_redeem_coupon('no-instance', 'site-x', '10.9.8.8', NULL, "
                "'ABC234', now(), 'no-session')"
            ).fetchall()
            assert rows == []
