"""Fault test helpers: a private PostgreSQL that can be stopped, `guestgate serve` processes, a seeded coupon
portal, and HTTP helpers that never raise on a refused connection (fixtures: tests/faults/conftest.py).

The shared PostgreSQL on 5432 is never stopped: a test that restarts the database gets its own
server (Debian's initdb and pg_ctl, run as the `postgres` user, on a free port, in a temp dir).
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from sqlalchemy import insert

from guestgate.config import Settings
from guestgate.coupons import codes as coupon_codes
from guestgate.coupons.models import Coupon
from guestgate.db import make_engine, new_id, utcnow
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.migrate import upgrade
from guestgate.orgs.models import Org
from guestgate.portal.tokens import GuestIdentity, TokenSealer
from guestgate.security import ALL_SCOPES, mint_token
from guestgate.sites.models import Site
from tests.utils.settings import TEST_KEYS, make_settings

ORG_ID = "org-faults"
SUBNET = "10.0.0.0/8"
GUESTGATE = Path(sys.executable).with_name("guestgate")


def require(ok: bool, what: str) -> None:
    """Fail in CI (a missing prerequisite is a broken CI machine), skip elsewhere."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set: this fault test is part of the suite)")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of our own in a temp dir, on a free loopback port; stop and start at will."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = free_port()

    def _as_postgres(self, *args: str, timeout: float = 120) -> None:
        command = ["runuser", "-u", "postgres", "--", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")

    def init(self) -> PrivatePostgres:
        self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        return self

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"
        )

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def fresh_database(self, name: str) -> str:
        """A migrated, empty database on this server (dropped first if it exists)."""
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        engine = make_engine(self.url(name))
        upgrade(engine)
        engine.dispose()
        return self.url(name)


@dataclass(frozen=True)
class Portal:
    """One org, one site on 10.0.0.0/8 served by one coupon instance, and its unredeemed codes."""

    site_id: str
    instance_id: str
    codes: list[str]


def code_of(index: int) -> str:
    """The `index`-th coupon code: its digits in base 31, written in the code alphabet."""
    symbols = []
    for _ in range(coupon_codes.LENGTH):
        index, digit = divmod(index, len(coupon_codes.ALPHABET))
        symbols.append(coupon_codes.ALPHABET[digit])
    return "".join(reversed(symbols))


def seed_portal(url: str, coupons: int) -> Portal:
    """Seed the org, site, instance and `coupons` valid coupons (distinct, in index order) on `url`."""
    now = utcnow()
    portal = Portal(new_id(), new_id(), [code_of(n) for n in range(coupons)])
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Org), [{"id": ORG_ID, "created_at": now}])
        conn.execute(
            insert(Site),
            [
                {
                    "id": portal.site_id,
                    "org_id": ORG_ID,
                    "name": "Stadium",
                    "subnets": [SUBNET],
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(Instance),
            [
                {
                    "id": portal.instance_id,
                    "org_id": ORG_ID,
                    "name": "Stadium Wi-Fi",
                    "strategy": "coupon",
                    "session_ttl": 3600,
                    "auth_window_ttl": 300,
                    "theme": {},
                    "terms_text": None,
                    "locale": "en",
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(InstanceSubnet),
            [{"instance_id": portal.instance_id, "site_id": portal.site_id, "subnet": SUBNET, "position": 0}],
        )
        conn.execute(
            insert(Coupon),
            [
                {
                    "id": new_id(),
                    "org_id": ORG_ID,
                    "instance_id": portal.instance_id,
                    "code": code,
                    "expires_at": now + timedelta(days=1),
                    "created_at": now,
                }
                for code in portal.codes
            ],
        )
    engine.dispose()
    return portal


def guest_ip(index: int) -> str:
    """A distinct guest address inside 10.0.0.0/8 for each index."""
    n = index + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def sign_in_form(settings: Settings, portal: Portal, ip: str, code: str) -> str:
    """The urlencoded sign-in form a guest at `ip` posts, with the token GET /guest/entry would seal."""
    sealer = TokenSealer.from_settings(settings)
    identity = GuestIdentity(site_id=portal.site_id, instance_id=portal.instance_id, ip=ip, peer=ip)
    token = sealer.seal_guest(identity, expires=int((utcnow() + timedelta(hours=1)).timestamp()))
    return urlencode({"t": token, "code": code, "accept": "yes"})


def operator_headers(settings: Settings) -> dict[str, str]:
    token = mint_token(settings, org=ORG_ID, subject="faults", scopes=ALL_SCOPES, ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Answer:
    """A response, or status 0 with the error when the connection failed."""

    status: int
    body: bytes
    headers: dict[str, str]
    error: str = ""


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Answer:
    """One request on a fresh connection to 127.0.0.1:`port`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    except (OSError, http.client.HTTPException) as exc:
        return Answer(0, b"", {}, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def post_sign_in(port: int, form: str, ip: str) -> Answer:
    """POST /guest/signin through the trusted proxy (127.0.0.1) for the guest at `ip`."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": ip}
    return request(port, "POST", "/guest/signin", body=form.encode(), headers=headers)


class Server:
    """A real `guestgate serve` process on a free port, its output in a log file."""

    def __init__(self, db_url: str, data_dir: Path, **env: str) -> None:
        self.db_url = db_url
        self.data_dir = data_dir
        self.port = free_port()
        self.extra_env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "serve.log"

    def settings(self) -> Settings:
        """The settings this server runs with (same keys: tokens sealed here open there)."""
        return make_settings(self.db_url, self.data_dir, public_url=f"http://127.0.0.1:{self.port}")

    def start(self) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "GUESTGATE_DATABASE_URL": self.db_url,
            "GUESTGATE_DATA_DIR": str(self.data_dir),
            "GUESTGATE_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "GUESTGATE_JWT_SECRET": TEST_KEYS["jwt_secret"],
            "GUESTGATE_SIGNING_KEY": TEST_KEYS["signing_key"],
            "GUESTGATE_ENCRYPTION_KEY": TEST_KEYS["encryption_key"],
            "GUESTGATE_SCHEDULER_ENABLED": "false",
            "GUESTGATE_LOG_LEVEL": "warning",
            "GUESTGATE_PORTAL_TRUSTED_PROXIES": "127.0.0.1",
            # The load of these tests is one operator token at full speed: no per-token limit.
            "GUESTGATE_RATE_LIMIT_PER_MINUTE": "0",
            **self.extra_env,
        }
        env.pop("GUESTGATE_REDIS_URL", None)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(GUESTGATE), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"guestgate serve exited with {self.process.returncode}:\n{self.output()}")
            if request(self.port, "GET", "/healthz", timeout=2).status == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"guestgate serve did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class CuttableProxy:
    """Forwards 127.0.0.1:`port` to a target port; `cut()` closes it (connections refused and
    dropped, as when a router is powered off), `restore()` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> CuttableProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: a bare close() leaves a thread blocked in accept() still listening.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
