"""Fixtures shared by every test: a clean database per test (SQLite and PostgreSQL), the app, tokens.

Every test that asks for `db_url` (directly or through `runtime`/`client`) runs twice, once on a
fresh SQLite file and once on PostgreSQL. A missing PostgreSQL fails the run: nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from guestgate.app import create_app
from guestgate.config import Settings, get_settings
from guestgate.db import make_engine
from guestgate.migrate import upgrade
from guestgate.portal.throttle import FailureCounters, MemoryCounters, RedisCounters
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from tests.utils.settings import (
    PG_ADMIN_URL,
    PG_DB,
    PG_URL,
    REDIS_URL,
    TEST_KEYS,
    TokenFactory,
    fake_resolver,
    make_settings,
    truncate_pg,
)


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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A clean, migrated database: SQLite file or PostgreSQL (truncated)."""
    if request.param == "sqlite":
        path = tmp_path / "guestgate.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    truncate_pg(url)
    return url


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
