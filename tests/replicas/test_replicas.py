"""Two `serve` replicas and two `worker` processes on one PostgreSQL and one Redis.

Everything is driven through both API processes at once: coupon batches, guest sign-ins (each
code raced by two guests, one entering on each replica and signing in on the other), schedules
falling due together plus run-now on both replicas, duplicate disconnects, and a guesser
spreading wrong codes over both replicas. Afterwards nothing is duplicated and nothing is lost.
The agent test checks what used to live in one process's memory: a change on one replica wakes
an agent long-polling the other at once, and an OAuth auth window opened on one replica is in
the state every replica serves.

PostgreSQL only: this is the replica deployment (SQLite is one host, one server).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from sqlalchemy import func, select, update

from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.gateways.agent import agent_key
from guestgate.notifications.models import Delivery
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from guestgate.security import ALL_SCOPES, mint_token
from guestgate.site_users.models import SiteUser
from tests.replicas import cluster
from tests.utils.portal import token_of
from tests.utils.settings import TEST_KEYS, make_settings

pytestmark = pytest.mark.slow
REDIS_URL = "redis://127.0.0.1:6379/0"
ORG = "org-replicas"
SITE_SUBNET = "10.20.0.0/16"
CLIENT_MAX_FAILURES = 5


@dataclass
class Cluster:
    """The four processes, an operator token and a runtime on their database (for checking)."""

    apis: list[cluster.Process]
    workers: list[cluster.Process]
    runtime: Runtime
    headers: dict[str, str]

    def api(self, i: int) -> str:
        """The base URL of replica `i % 2`."""
        return self.apis[i % len(self.apis)].url

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every process; their exit statuses."""
        return {p.name: p.terminate() for p in [*self.apis, *self.workers]}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Cluster]:
    """Two replicas (no in-process jobs) and two workers, started together on an empty database."""
    prefix = f"guestgate:test:replicas:{secrets.token_hex(4)}:"
    shared = {
        "redis_url": REDIS_URL,
        "portal_redis_prefix": prefix,
        # The test client stands in for the reverse proxy, which names the guest.
        "portal_trusted_proxies": "127.0.0.1/32",
        "portal_client_max_failures": str(CLIENT_MAX_FAILURES),
        # The racing sign-ins lose on purpose; only the per-client limit is under test here.
        "portal_site_max_failures": "100000",
        "public_url": "http://portal.example.test",
        # One operator token drives hundreds of requests here; the per-token limit has its own tests.
        "rate_limit_per_minute": "0",
        "rate_limit_redis_prefix": prefix + "ratelimit:",
    }
    logs = tmp_path / "logs"
    with cluster.fresh_pg_database("replicas") as url:
        apis = [
            cluster.start(
                "serve",
                f"api{i}",
                cluster.environment(url, tmp_path / f"api{i}", scheduler_enabled="false", **shared),
                logs,
                port=cluster.free_port(),
            )
            for i in range(2)
        ]
        workers = [
            cluster.start(
                "worker",
                f"worker{i}",
                cluster.environment(url, tmp_path / f"worker{i}", worker_poll_seconds="0.5", **shared),
                logs,
            )
            for i in range(2)
        ]
        runtime: Runtime | None = None
        try:
            # Four processes migrated one empty database at once: each must come up.
            for api in apis:
                cluster.wait_ready(api)
            for worker in workers:
                assert worker.popen.poll() is None, worker.output()
            runtime = Runtime.build(make_settings(url, tmp_path / "checker"))
            with runtime.sessions() as session:
                org_service.ensure(ORG, session=session)
                session.commit()
            token = mint_token(
                runtime.settings, org=ORG, subject="tester", scopes=ALL_SCOPES, ttl_seconds=3600
            )
            yield Cluster(apis, workers, runtime, {"Authorization": f"Bearer {token}"})
        finally:
            for process in [*apis, *workers]:
                process.kill()
            if runtime is not None:
                runtime.close()
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()


def guest_ip(n: int) -> str:
    """The n-th guest address in the site's subnet."""
    return f"10.20.{n // 250}.{n % 250 + 1}"


def parallel(calls: list[Callable[[], Any]], workers: int = 16) -> list[Any]:
    """Run the calls at once; their results in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda call: call(), calls))


class Operator:
    """The operator API through one replica or the other."""

    def __init__(self, replicas: Cluster, http: httpx2.Client) -> None:
        self.replicas = replicas
        self.http = http

    def post(self, replica: int, path: str, body: Any = None) -> httpx2.Response:
        return self.http.post(
            self.replicas.api(replica) + path, json=body, headers=self.replicas.headers, timeout=60
        )

    def put(self, replica: int, path: str, body: Any) -> httpx2.Response:
        return self.http.put(self.replicas.api(replica) + path, json=body, headers=self.replicas.headers)

    def created(self, replica: int, path: str, body: Any) -> dict[str, Any]:
        response = self.post(replica, path, body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


def coupon_site(op: Operator, *, driver: str = "none") -> tuple[str, str]:
    """A site (created on replica 0) with a coupon instance on its subnet (created on replica 1)."""
    site = op.created(
        0, "/captive/sites", {"name": "Stadium", "subnets": [SITE_SUBNET], "gateway": {"driver": driver}}
    )
    instance = op.created(
        1, "/captive/instances", {"name": "Gate", "strategy": "coupon", "session_ttl": 7200}
    )
    body = {
        "name": "Gate",
        "strategy": "coupon",
        "session_ttl": 7200,
        "sites": [{"id": site["id"], "subnets": [SITE_SUBNET]}],
    }
    assert op.put(0, f"/captive/instances/{instance['id']}", body).status_code == 200
    return site["id"], instance["id"]


def enter(http: httpx2.Client, base: str, site_id: str, ip: str) -> str:
    """The guest's sign-in token from the portal entry, through the proxy naming `ip`."""
    response = http.get(base + "/guest/entry", params={"site": site_id}, headers={"X-Forwarded-For": ip})
    assert response.status_code == 200, response.text
    return token_of(response.text)


def sign_in(http: httpx2.Client, base: str, token: str, ip: str, code: str) -> int:
    """POST the coupon form; the status."""
    response = http.post(
        base + "/guest/signin",
        data={"t": token, "code": code, "accept": "yes"},
        headers={"X-Forwarded-For": ip},
    )
    return response.status_code


def test_two_replicas_and_two_workers_duplicate_nothing_and_lose_nothing(replicas: Cluster) -> None:
    with httpx2.Client(timeout=60, limits=httpx2.Limits(max_connections=64)) as http:
        op = Operator(replicas, http)
        site_id, instance_id = coupon_site(op)

        # Coupon batches, half through each replica, all at once.
        batches = parallel(
            [
                lambda i=i: op.post(
                    i, f"/captive/instances/{instance_id}/coupons", {"count": 25, "minutes_valid": 60}
                )
                for i in range(8)
            ]
        )
        assert [b.status_code for b in batches] == [201] * 8
        codes = [c["code"] for b in batches for c in b.json()]
        assert len(codes) == 200 and len(set(codes)) == 200

        # Every code raced by two guests: one enters on replica 0 and signs in on replica 1, the
        # other the other way round (the sealed token crosses replicas).
        def race(n: int, code: str, first: int) -> tuple[str, str, int]:
            ip = guest_ip(n)
            token = enter(http, replicas.api(first), site_id, ip)
            return code, ip, sign_in(http, replicas.api(first + 1), token, ip, code)

        attempts = parallel(
            [lambda n=n, c=c, k=k: race(2 * n + k, c, k) for n, c in enumerate(codes) for k in (0, 1)]
        )
        by_code: dict[str, list[tuple[str, int]]] = {}
        for code, ip, status in attempts:
            by_code.setdefault(code, []).append((ip, status))
        winners = {}
        for code, tries in by_code.items():
            assert sorted(s for _, s in tries) == [200, 409], (code, tries)
            winners[code] = next(ip for ip, s in tries if s == 200)

        # Schedules created through both replicas, then all due at once for the two workers.
        group = op.created(
            0, "/captive/notification-groups", {"name": "Desk", "emails": ["desk@example.com"]}
        )
        schedule_body = {
            "name": "Match day",
            "count": 20,
            "recurrence_type": "daily",
            "valid_for_in_minutes": 240,
            "timezone": "Europe/Zurich",
            "time_of_day": "08:00",
            "notification_group_id": group["id"],
        }
        schedules = parallel(
            [
                lambda i=i: op.created(i, f"/captive/instances/{instance_id}/coupon-schedules", schedule_body)
                for i in range(40)
            ]
        )
        schedule_ids = [s["id"] for s in schedules]
        slot = utcnow().replace(microsecond=0) - timedelta(minutes=1)
        with replicas.runtime.sessions() as session:
            session.execute(update(CouponSchedule).values(next_run_at=slot))
            session.commit()
        # Run-now on both replicas for a quarter of them, while the workers run the due slots.
        manual = parallel(
            [
                lambda i=i, sid=sid: op.post(
                    i, f"/captive/instances/{instance_id}/coupon-schedules/{sid}/run"
                )
                for sid in schedule_ids[:10]
                for i in (0, 1)
            ]
        )
        assert [m.status_code for m in manual] == [200] * 20, [m.text for m in manual if m.status_code != 200]

        # Disconnects: half of the sessions, each sent to both replicas at the same moment.
        with replicas.runtime.sessions() as session:
            sessions = {row.id: row for row in session.scalars(select(SiteUser))}
        to_end = sorted(sessions)[:100]
        ended = parallel(
            [
                lambda i=i, uid=uid: op.post(i, f"/captive/sites/{site_id}/users/{uid}/disconnect")
                for uid in to_end
                for i in (0, 1)
            ]
        )
        assert [e.status_code for e in ended] == [200] * 200
        assert all(e.json()["status"] == "disconnected" for e in ended)

        # A guesser spreading wrong codes over both replicas is locked out after the limit in
        # total (the counters are in Redis); per-process counters would let it go on.
        guesser = guest_ip(49_000)
        token = enter(http, replicas.api(0), site_id, guesser)
        statuses = [
            sign_in(http, replicas.api(i), token, guesser, "ZZZZZ9") for i in range(CLIENT_MAX_FAILURES + 1)
        ]
        assert all(s not in (200, 429) for s in statuses[: CLIENT_MAX_FAILURES - 1]), statuses
        assert statuses[CLIENT_MAX_FAILURES - 1 :] == [429, 429], statuses

    wait_for(lambda: scheduled_runs(replicas.runtime) >= len(schedule_ids), seconds=90, what="due schedules")
    # A few more worker ticks: nothing runs twice.
    time.sleep(2)

    with replicas.runtime.sessions() as session:
        # Sign-ins: every coupon exactly one session, every winner's session is there.
        rows = list(session.scalars(select(SiteUser)))
        assert len(rows) == 200
        by_coupon = Counter(row.coupon_id for row in rows)
        assert set(by_coupon.values()) == {1}
        coupon_codes = dict(session.execute(select(Coupon.id, Coupon.code)).all())
        assert {coupon_codes[row.coupon_id]: row.ip_address for row in rows} == winners  # type: ignore[index]
        redeemed = session.scalar(
            select(func.count()).select_from(Coupon).where(Coupon.redeemed_at.is_not(None))
        )
        assert redeemed == 200
        # Disconnects: exactly the hundred, each ended once; the others still active.
        status = {row.id: (row.status, row.ended_at) for row in rows}
        assert all(status[uid][0] == "disconnected" and status[uid][1] is not None for uid in to_end)
        assert Counter(s for s, _ in status.values()) == Counter({"disconnected": 100, "active": 100})

        # Schedules: each slot exactly one complete batch with one delivery; run-now one batch a call.
        runs = list(session.scalars(select(ScheduleRun)))
        scheduled = [r for r in runs if r.kind == "scheduled"]
        assert sorted(r.schedule_id for r in scheduled) == sorted(schedule_ids)
        assert all(r.slot_at == slot for r in scheduled)
        assert Counter(r.schedule_id for r in runs if r.kind == "manual") == Counter(
            dict.fromkeys(schedule_ids[:10], 2)
        )
        per_run = dict(
            session.execute(
                select(Coupon.run_id, func.count()).where(Coupon.run_id.is_not(None)).group_by(Coupon.run_id)
            ).all()
        )
        # The API's own batches (25 codes each, kind "api") are runs too; the schedules' are 20.
        assert per_run == {r.id: 25 if r.kind == "api" else 20 for r in runs}
        deliveries = Counter(session.scalars(select(Delivery.run_id)))
        assert deliveries == Counter({r.id: 1 for r in runs if r.kind != "api"})
        for schedule in session.scalars(select(CouponSchedule)):
            assert schedule.next_run_at is not None and schedule.next_run_at > slot + timedelta(minutes=1)

    assert not any("replicas.state_in_process" in p.output() for p in replicas.apis)
    exits = replicas.stop_all()
    assert exits == {"api0": 0, "api1": 0, "worker0": 0, "worker1": 0}, {
        p.name: p.output()[-2000:] for p in [*replicas.apis, *replicas.workers]
    }


def test_agent_changes_and_auth_windows_reach_every_replica_at_once(replicas: Cluster) -> None:
    with httpx2.Client(timeout=60) as http:
        op = Operator(replicas, http)
        site = op.created(
            0,
            "/captive/sites",
            # The replicas listen on different ports of one host, so the portal port is named
            # (by default each replica would hand out its own listening port).
            {
                "name": "Kiosk",
                "subnets": [SITE_SUBNET],
                "gateway": {"driver": "agent", "interface": "wlan0", "portal_port": 8000},
            },
        )
        site_id = site["id"]
        key = {"Authorization": f"Bearer {agent_key(TEST_KEYS['signing_key'], site_id)}"}

        def poll(replica: int, since: str = "", wait: float = 0) -> httpx2.Response:
            return http.get(
                replicas.api(replica) + "/agent/v1/state",
                params={"site": site_id, "since": since, "wait": str(wait)},
                headers=key,
                timeout=wait + 30,
            )

        # A change made on replica 0 wakes a long-poll held by replica 1 within moments, several
        # times over (without the bus, replica 1 would notice only on its periodic re-read).
        for n in range(4):
            version = poll(1).json()["version"]
            answers: list[httpx2.Response] = []

            def long_poll(since: str = version, into: list[httpx2.Response] = answers) -> None:
                into.append(poll(1, since=since, wait=20))

            waiting = threading.Thread(target=long_poll)
            waiting.start()
            time.sleep(0.5)
            changed = time.monotonic()
            op.created(
                0,
                f"/captive/walled-garden/{site_id}",
                {"name": f"IdP {n}", "ip_address": f"203.0.113.{n + 1}"},
            )
            waiting.join(timeout=30)
            latency = time.monotonic() - changed
            [answer] = answers
            assert answer.status_code == 200 and answer.json()["version"] != version
            assert latency < 0.5, f"replica 1 heard of replica 0's change after {latency:.2f} s"

        # An OAuth sign-in started on replica 0 opens the guest's auth window; whichever replica
        # the agent asks next serves it, in the same state with the same version.
        integration = op.created(
            1,
            "/captive/auth-integrations",
            {
                "name": "GitHub",
                "type": "github",
                "config": {"client_id": "replica-test", "client_secret": "s" * 40},
            },
        )
        instance = op.created(
            1,
            "/captive/instances",
            {
                "name": "Staff",
                "strategy": "oauth2",
                "session_ttl": 3600,
                "auth_integration_id": integration["id"],
                "auth_window_ttl": 300,
            },
        )
        body = {
            **{
                k: instance[k]
                for k in ("name", "strategy", "session_ttl", "auth_integration_id", "auth_window_ttl")
            },
            "sites": [{"id": site_id, "subnets": [SITE_SUBNET]}],
        }
        assert op.put(1, f"/captive/instances/{instance['id']}", body).status_code == 200
        ip = guest_ip(7)
        token = enter(http, replicas.api(0), site_id, ip)
        started = http.post(
            replicas.api(0) + "/guest/oauth/start",
            data={"t": token, "accept": "yes"},
            headers={"X-Forwarded-For": ip},
        )
        assert started.status_code == 200, started.text
        assert "github.com/login/oauth/authorize" in started.text
        time.sleep(0.3)
        states = [poll(i).json() for i in (1, 0)]
        assert [w["ip"] for w in states[0]["auth_windows"]] == [ip]
        assert 290 <= states[0]["auth_windows"][0]["seconds_remaining"] <= 300
        assert states[0]["version"] == states[1]["version"]


def scheduled_runs(runtime: Runtime) -> int:
    """How many scheduled (not run-now) batches are committed."""
    with runtime.sessions() as session:
        return (
            session.scalar(
                select(func.count()).select_from(ScheduleRun).where(ScheduleRun.kind == "scheduled")
            )
            or 0
        )


def wait_for(check: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Poll `check` until true; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} not done after {seconds} s"
        time.sleep(0.2)
