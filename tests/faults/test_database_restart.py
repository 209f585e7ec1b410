"""The database restarting under load: every request fails cleanly with 503, and guestgate recovers
by itself once the database is back (same process, no restart).

PostgreSQL: a private server (never the shared one) is stopped and started while a real
`guestgate serve` takes guest coupon sign-ins (the portal's raw psycopg store) and operator
requests (SQLAlchemy). SQLite: a database locked by another process past the busy timeout.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from guestgate import db as guestgate_db
from guestgate.app import create_app
from guestgate.portal.store import sqlite as portal_sqlite
from guestgate.runtime import Runtime
from tests.utils.faults import (
    Answer,
    PrivatePostgres,
    Server,
    guest_ip,
    operator_headers,
    post_sign_in,
    request,
    seed_portal,
    sign_in_form,
)
from tests.utils.settings import make_settings

GUEST_THREADS = 3
DOWN_SECONDS = 3.0
RECOVERY_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Sent:
    """One request of the load and the phase it started and ended in."""

    kind: str  # sign_in, operator_read, operator_write
    started: str
    ended: str
    answer: Answer
    ip: str = ""


class Load:
    """Guests signing in with fresh coupons and an operator reading and writing, until stopped."""

    def __init__(self, server: Server, forms: list[tuple[str, str]], instance_id: str) -> None:
        self.server = server
        self.forms = forms
        self.instance_id = instance_id
        self.headers = operator_headers(server.settings())
        self.phase = "before"
        self.sent: list[Sent] = []
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._guest) for _ in range(GUEST_THREADS)]
        self._threads.append(threading.Thread(target=self._operator))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _record(self, kind: str, started: str, answer: Answer, ip: str = "") -> None:
        with self._lock:
            self.sent.append(Sent(kind, started, self.phase, answer, ip))

    def _guest(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._next >= len(self.forms):
                    return
                ip, form = self.forms[self._next]
                self._next += 1
            started = self.phase
            self._record("sign_in", started, post_sign_in(self.server.port, form, ip), ip)

    def _operator(self) -> None:
        write = False
        while not self._stop.is_set():
            started = self.phase
            if write:
                body = json.dumps({"count": 1, "minutes_valid": 60}).encode()
                headers = {**self.headers, "Content-Type": "application/json"}
                path = f"/captive/instances/{self.instance_id}/coupons"
                self._record(
                    "operator_write",
                    started,
                    request(self.server.port, "POST", path, body=body, headers=headers),
                )
            else:
                answer = request(self.server.port, "GET", "/captive/instances", headers=self.headers)
                self._record("operator_read", started, answer)
            write = not write
            time.sleep(0.01)

    def ok(self, sent: Sent) -> bool:
        return sent.answer.status == (201 if sent.kind == "operator_write" else 200)

    def summary(self) -> str:
        """The last answers of each kind, for a failure message."""
        with self._lock:
            sent = list(self.sent)
        lines = []
        for kind in ("sign_in", "operator_read", "operator_write"):
            last = [s for s in sent if s.kind == kind][-5:]
            lines.append(
                f"{kind}: "
                + "; ".join(
                    f"{s.started}->{s.answer.status} {s.answer.error or s.answer.body[:80]!r}" for s in last
                )
            )
        return "\n".join(lines)

    def recovered(self) -> bool:
        """Each kind of request succeeded three times in a row since the database came back."""
        with self._lock:
            recent = [s for s in self.sent if s.started == "recovering"]
        for kind in ("sign_in", "operator_read", "operator_write"):
            last = [s for s in recent if s.kind == kind][-3:]
            if len(last) < 3 or not all(self.ok(s) for s in last):
                return False
        return True


def assert_operator_503(sent: Sent) -> None:
    answer = sent.answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["retry-after"] == "5"
    body: dict[str, Any] = json.loads(answer.body)
    assert body == {
        "type": "api_error",
        "code": "database_unavailable",
        "message": "The database is unavailable right now. Retry in a few seconds.",
        "doc_url": body["doc_url"],
    }
    assert body["doc_url"].endswith("/errors/database_unavailable")


def assert_guest_503(sent: Sent) -> None:
    answer = sent.answer
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["retry-after"] == "5"
    assert b"The service is busy." in answer.body
    assert b"psycopg" not in answer.body and b"127.0.0.1" not in answer.body


@pytest.mark.slow
def test_postgres_restart_under_load_is_503_then_recovers_without_restarting_guestgate(
    private_pg: PrivatePostgres, servers: list[Server], tmp_path: Path
) -> None:
    url = private_pg.fresh_database("guestgate_restart")
    portal = seed_portal(url, 20_000)
    server = Server(url, tmp_path / "var").start()
    servers.append(server)
    assert server.process is not None
    pid = server.process.pid
    settings = server.settings()
    forms = [
        (guest_ip(i), sign_in_form(settings, portal, guest_ip(i), code))
        for i, code in enumerate(portal.codes)
    ]

    with Load(server, forms, portal.instance_id) as load:
        time.sleep(1.5)
        load.phase = "stopping"
        private_pg.stop("fast")
        load.phase = "down"
        time.sleep(DOWN_SECONDS)
        load.phase = "starting"
        try:
            private_pg.start()
        finally:
            if not private_pg.running():
                private_pg.start()
        load.phase = "recovering"
        deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
        while not load.recovered():
            assert time.monotonic() < deadline, f"no recovery after the database came back: {load.summary()}"
            time.sleep(0.1)
        load.phase = "after"
        time.sleep(1.5)
    sent = load.sent

    # Never a crash, never a dropped connection: success or a clean 503, whatever the phase.
    statuses = {(s.kind, s.answer.status) for s in sent}
    assert statuses <= {
        ("sign_in", 200), ("sign_in", 503),
        ("operator_read", 200), ("operator_read", 503),
        ("operator_write", 201), ("operator_write", 503),
    }, [s for s in sent if s.answer.status not in (200, 201, 503)][:3]  # fmt: skip
    for phase in ("before", "after"):
        during = [s for s in sent if s.started == phase and s.ended == phase]
        assert {s.kind for s in during} == {"sign_in", "operator_read", "operator_write"}
        assert all(load.ok(s) for s in during), f"a request failed {phase} the restart"
    # While the database was down, everything was refused the same, documented way.
    down = [s for s in sent if s.started == "down" and s.ended == "down"]
    assert {s.kind for s in down} == {"sign_in", "operator_read", "operator_write"}
    assert all(s.answer.status == 503 for s in down)
    for s in down:
        (assert_guest_503 if s.kind == "sign_in" else assert_operator_503)(s)
    assert request(server.port, "GET", "/errors/database_unavailable").status == 200
    # The same process served it all.
    assert server.process.poll() is None and server.process.pid == pid

    # Every sign-in answered 200 has its session; a 503 left nothing half done.
    succeeded = {s.ip for s in sent if s.kind == "sign_in" and s.answer.status == 200}
    refused = {s.ip for s in sent if s.kind == "sign_in" and s.answer.status == 503}
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        sessions = {row[0] for row in conn.execute("SELECT ip_address FROM site_users")}
        redeemed = conn.execute(
            "SELECT count(*) FROM coupons WHERE instance_id = %s AND redeemed_at IS NOT NULL",
            (portal.instance_id,),
        ).fetchone()
        orphans = conn.execute(
            "SELECT count(*) FROM site_users u LEFT JOIN coupons c ON c.id = u.coupon_id "
            "WHERE c.redeemed_at IS NULL"
        ).fetchone()
    assert succeeded <= sessions
    # A sign-in cut off after its COMMIT reached the server is the only way to a 503 with a session.
    assert sessions - succeeded <= refused
    assert redeemed == (len(sessions),)
    assert orphans == (0,)


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 300 ms busy timeout for both SQLite paths (the ORM and the portal's store), read at connect."""
    monkeypatch.setattr(guestgate_db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    monkeypatch.setattr(portal_sqlite, "SQLITE_BUSY_TIMEOUT_MS", 300)
    return 300


def test_sqlite_locked_past_the_busy_timeout_is_503_then_works_when_released(
    short_busy_timeout: int, tmp_path: Path, sqlite_template: Path
) -> None:
    path = tmp_path / "guestgate.db"
    path.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{path}"
    portal = seed_portal(url, 10)
    settings = make_settings(url, tmp_path / "var", portal_trusted_proxies="127.0.0.1")
    headers = operator_headers(settings)
    runtime = Runtime.build(settings)
    coupons = f"/captive/instances/{portal.instance_id}/coupons"

    def sign_in(client: TestClient, index: int) -> Any:
        ip = guest_ip(index)
        return client.post(
            "/guest/signin",
            content=sign_in_form(settings, portal, ip, portal.codes[index]),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": ip},
        )

    with TestClient(
        create_app(runtime=runtime), raise_server_exceptions=False, client=("127.0.0.1", 5000)
    ) as client:
        # Both paths have their connections open before the lock is taken.
        assert (
            client.post(coupons, headers=headers, json={"count": 1, "minutes_valid": 60}).status_code == 201
        )
        first = sign_in(client, 0)
        assert first.status_code == 200, first.text[-3000:]
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            write = client.post(coupons, headers=headers, json={"count": 1, "minutes_valid": 60})
            guest = sign_in(client, 1)
            waited = time.monotonic() - started
            # WAL: readers are not blocked by the writer holding the lock.
            read = client.get("/captive/instances", headers=headers)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert write.status_code == 503, write.text
        assert write.headers["retry-after"] == "5"
        assert write.json()["code"] == "database_unavailable"
        assert write.json()["type"] == "api_error"
        assert guest.status_code == 503
        assert "The service is busy." in guest.text
        assert waited >= 2 * short_busy_timeout / 1000, "the busy timeout was not waited out"
        assert read.status_code == 200

        assert (
            client.post(coupons, headers=headers, json={"count": 1, "minutes_valid": 60}).status_code == 201
        )
        assert sign_in(client, 1).status_code == 200
    runtime.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM site_users").fetchone() == (2,)
        redeemed = conn.execute("SELECT count(*) FROM coupons WHERE redeemed_at IS NOT NULL").fetchone()
        assert redeemed == (2,)


def test_sqlite_lock_shorter_than_the_busy_timeout_is_waited_out(
    short_busy_timeout: int, tmp_path: Path, sqlite_template: Path
) -> None:
    path = tmp_path / "guestgate.db"
    path.write_bytes(sqlite_template.read_bytes())
    url = f"sqlite:///{path}"
    portal = seed_portal(url, 10)
    settings = make_settings(url, tmp_path / "var", portal_trusted_proxies="127.0.0.1")
    headers = operator_headers(settings)
    runtime = Runtime.build(settings)
    coupons = f"/captive/instances/{portal.instance_id}/coupons"
    with TestClient(
        create_app(runtime=runtime), raise_server_exceptions=False, client=("127.0.0.1", 5000)
    ) as client:
        assert (
            client.post(coupons, headers=headers, json={"count": 1, "minutes_valid": 60}).status_code == 201
        )
        for _ in range(3):
            holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN EXCLUSIVE")
            release = threading.Timer(
                short_busy_timeout / 3000, lambda h=holder: (h.execute("ROLLBACK"), h.close())
            )
            release.start()
            # A write that reads first must wait for the lock like any other, not give up at once.
            response = client.post(coupons, headers=headers, json={"count": 1, "minutes_valid": 60})
            release.join()
            assert response.status_code == 201, response.text
    runtime.close()
