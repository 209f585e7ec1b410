"""Real `guestgate serve` and `guestgate worker` processes on free loopback ports, for replica tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import psycopg

from tests.utils.settings import PG_ADMIN_URL, PG_DB, TEST_KEYS

ROOT = Path(__file__).resolve().parents[2]
GUESTGATE = Path(sys.executable).with_name("guestgate")
READY_SECONDS = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of one guestgate process: the shared secrets, its own data dir, `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUESTGATE_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "GUESTGATE_ENV": "production",
            "GUESTGATE_DATABASE_URL": database_url,
            "GUESTGATE_DATA_DIR": str(data_dir),
            "GUESTGATE_JWT_SECRET": TEST_KEYS["jwt_secret"],
            "GUESTGATE_SIGNING_KEY": TEST_KEYS["signing_key"],
            "GUESTGATE_ENCRYPTION_KEY": TEST_KEYS["encryption_key"],
            "GUESTGATE_LOG_LEVEL": "warning",
        }
    )
    env.update({f"GUESTGATE_{key.upper()}": value for key, value in settings.items()})
    return env


@dataclass
class Process:
    """One running guestgate command, its output in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The base URL of a `serve` process."""
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait for the exit; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL if still running."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)


def start(kind: str, name: str, env: dict[str, str], logs: Path, *, port: int | None = None) -> Process:
    """Start `guestgate <kind>` (serve on `port`) with `env`; output goes to `<logs>/<name>.log`."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    args = [str(GUESTGATE), kind]
    if port is not None:
        args += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Process(name=name, popen=popen, log=log, port=port)


def wait_ready(process: Process, timeout: float = READY_SECONDS) -> None:
    """Wait until a `serve` process answers HTTP; fail with its output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited {process.popen.returncode}:\n{process.output()}")
        try:
            if httpx2.get(process.url + "/openapi.json", timeout=5).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{process.name} not ready after {timeout} s:\n{process.output()}")


def wait_running(process: Process, marker: str, timeout: float = READY_SECONDS) -> None:
    """Wait until the process's output shows `marker`; fail with its output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in process.output():
            return
        if process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited {process.popen.returncode}:\n{process.output()}")
        time.sleep(0.1)
    raise AssertionError(f"{process.name} never logged {marker!r}:\n{process.output()}")


@contextmanager
def fresh_pg_database(suffix: str) -> Iterator[str]:
    """An empty (not migrated) PostgreSQL database of this test run, dropped afterwards."""
    name = f"{PG_DB}_{suffix}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def refuses_connections(port: int) -> bool:
    """True if nothing accepts a TCP connection on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False
