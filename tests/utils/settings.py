"""Test settings and databases: fixed keys, the PostgreSQL test database, a resolver that never asks DNS.

The fixtures built on them are in tests/conftest.py.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import text

from guestgate.config import Settings
from guestgate.db import make_engine

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN_URL = os.environ.get("GUESTGATE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
# Separate databases let several checkouts run the suite at once on one server.
PG_DB = "guestgate_test_" + os.environ.get("GUESTGATE_TEST_DB_SUFFIX", "main")
PG_URL = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + PG_DB
TEST_KEYS = {
    "jwt_secret": "test-jwt-secret-that-is-at-least-32-bytes-long",
    "signing_key": "test-signing-key-that-is-at-least-32-bytes-long",
    "encryption_key": base64.urlsafe_b64encode(b"k" * 32).decode(),
}


def truncate_pg(url: str) -> None:
    """Empty every table of the PostgreSQL database at `url` and restart every sequence (the
    schema and its version stay).

    Only the tables holding rows are truncated (a test fills a few; TRUNCATE costs milliseconds
    per table), so each test still starts on fresh relations with no dead rows from the last.
    """
    engine = make_engine(url)
    with engine.begin() as conn:
        tables = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename<>'alembic_version'"
                )
            )
        ]
        probe = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in tables)
        filled = [row[0] for row in conn.execute(text(probe))]
        if filled:
            conn.execute(text(f"TRUNCATE {', '.join(filled)} RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false)"
                " FROM pg_sequences WHERE schemaname = 'public'"
            )
        )
    engine.dispose()


# Names the tests use, as a resolver would answer them: tests never ask a real DNS server (and
# never connect to these addresses: deliveries in tests go to receivers on loopback).
TEST_DNS_SUFFIXES = ("example.com", "example.org", "example.net", ".example", ".test")
TEST_DNS_ADDRESS = "93.184.215.14"


def fake_resolver(host: str, port: int) -> list[str]:
    """The outbound policy's resolver in tests: example names resolve to a public address, others fail."""
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    if host.endswith(TEST_DNS_SUFFIXES):
        return [TEST_DNS_ADDRESS]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def make_settings(db_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings for tests: fixed keys, a temporary data directory, no background jobs."""
    values: dict[str, object] = {
        "database_url": db_url,
        "data_dir": data_dir,
        "public_url": "http://testserver",
        "jwt_secret": SecretStr(TEST_KEYS["jwt_secret"]),
        "signing_key": SecretStr(TEST_KEYS["signing_key"]),
        "encryption_key": SecretStr(TEST_KEYS["encryption_key"]),
        "scheduler_enabled": False,
        # Off unless a test asks for it (tests/ops/test_rate_limit.py): a test's burst of requests
        # with one token must not trip it.
        "rate_limit_per_minute": 0,
        # The same for the public coupon links (tests/hostile/test_public_coupon_urls.py turns it on).
        "public_link_rate_per_minute": 0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


TokenFactory = Callable[..., dict[str, str]]
