"""Fixtures of the fault tests: a private PostgreSQL that can be stopped, `guestgate serve` processes,
a seeded coupon portal, and HTTP helpers that never raise on a refused connection.

The shared PostgreSQL on 5432 is never stopped: a test that restarts the database gets its own
server (Debian's initdb and pg_ctl, run as the `postgres` user, on a free port, in a temp dir).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.faults import (
    PrivatePostgres,
    Server,
    pg_bin,
    require,
)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL for the tests that stop and start the database."""
    bindir = pg_bin()
    require(
        bindir is not None,
        "PostgreSQL's initdb is not installed (scripts/system-deps.sh installs postgresql)",
    )
    require(os.geteuid() == 0 and shutil.which("runuser") is not None, "needs root and runuser")
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="guestgate-faults-pg-"))
    shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(bindir, root).init()
    server.start()
    try:
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts are appended here and stopped after it."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every fault test starts processes or servers and waits out real timeouts: `slow` (not in test-fast)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.slow)
