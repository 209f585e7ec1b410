"""Fixtures shared by every test: a clean database per test (SQLite and PostgreSQL), the app, tokens.

Every test that asks for `db_url` (directly or through `runtime`/`client`) runs twice, once on a
fresh SQLite file and once on PostgreSQL. A missing PostgreSQL fails the run: nothing is skipped.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from typer.testing import CliRunner

from guestgate.app import create_app
from guestgate.config import Settings, get_settings
from guestgate.db import make_engine
from guestgate.migrate import upgrade
from guestgate.portal.throttle import FailureCounters, MemoryCounters, RedisCounters
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token

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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> str:
    """A freshly migrated PostgreSQL database for this run."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DB}"')
    engine = make_engine(PG_URL)
    upgrade(engine)
    engine.dispose()
    return PG_URL


def _truncate_pg(url: str) -> None:
    """Empty every table and restart every sequence.

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
        probe = " UNION ALL ".join(
            f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in tables
        )
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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A clean, migrated database: SQLite file or PostgreSQL (truncated)."""
    if request.param == "sqlite":
        path = tmp_path / "guestgate.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    _truncate_pg(url)
    return url


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


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Test settings on the test's database."""
    return make_settings(db_url, tmp_path / "var")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime on the test's database."""
    built = Runtime.build(settings)
    built.outbound = dataclasses.replace(built.outbound, resolver=fake_resolver)
    yield built
    built.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """An HTTP client of the app (no background jobs)."""
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose `guestgate` reads the test's settings from the environment."""
    values = {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "PUBLIC_URL": "https://wifi.example.com",
        "JWT_SECRET": TEST_KEYS["jwt_secret"],
        "SIGNING_KEY": TEST_KEYS["signing_key"],
        "ENCRYPTION_KEY": TEST_KEYS["encryption_key"],
    }
    for name, value in values.items():
        monkeypatch.setenv(f"GUESTGATE_{name}", value)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


TokenFactory = Callable[..., dict[str, str]]


@pytest.fixture
def auth(runtime: Runtime) -> TokenFactory:
    """`auth(org="org-a", scopes=(...))` -> Authorization headers of a fresh token (org created)."""
    from guestgate.orgs import service as org_service

    def make(org: str = "org-a", scopes: tuple[str, ...] = ALL_SCOPES, ttl: int = 3600) -> dict[str, str]:
        with runtime.sessions() as session:
            org_service.ensure(org, session=session)
            session.commit()
        token = mint_token(runtime.settings, org=org, subject="tester", scopes=scopes, ttl_seconds=ttl)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def headers(auth: TokenFactory) -> dict[str, str]:
    """Headers of an all-scopes token for org-a."""
    return auth()


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[FailureCounters]:
    """Sign-in throttle counters: in process, and in Redis under a key prefix of this test's own."""
    if request.param == "memory":
        yield MemoryCounters()
        return
    import uuid

    import redis

    prefix = f"guestgate:test:{uuid.uuid4().hex}:"
    yield RedisCounters(REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()
