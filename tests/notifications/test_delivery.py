"""Delivery of coupon batches: enqueueing, claiming with leases, retries with backoff, giving up.

The first section holds the rows and servers the e-mail and webhook tests share (imported by
test_email.py and test_webhooks.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from guestgate.coupons import codes
from guestgate.coupons.models import Coupon
from guestgate.instances.models import Instance
from guestgate.instances.schemas import DEFAULT_THEME
from guestgate.notifications import delivery, outbox, payload
from guestgate.notifications.models import Delivery, DeliveryAttempt, NotificationGroup
from guestgate.notifications.outbox import DeliveryReport
from guestgate.notifications.payload import batch_payload
from guestgate.orgs.models import Org
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from tests.utils.settings import fake_resolver, make_settings

ORG = "org-a"
SECRET = "webhook-signing-secret-0123456789"
LOOPBACK = "127.0.0.0/8"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


# --- shared by the notification tests -------------------------------------------------------------

RuntimeFactory = Callable[..., Runtime]


@pytest.fixture
def make_runtime(db_url: str, tmp_path: Path) -> Iterator[RuntimeFactory]:
    """`make_runtime(**settings)`: a runtime on the test's database with settings overridden.

    The receivers listen on loopback, which the outbound policy refuses: these runtimes allow it
    the way a deployment would, with GUESTGATE_OUTBOUND_ALLOW_NETWORKS.
    """
    built: list[Runtime] = []

    def make(**overrides: object) -> Runtime:
        data_dir = overrides.pop("data_dir", tmp_path / "var")
        assert isinstance(data_dir, Path)
        overrides.setdefault("outbound_allow_networks", LOOPBACK)
        runtime = Runtime.build(make_settings(db_url, data_dir, **overrides))
        runtime.outbound = dataclasses.replace(runtime.outbound, resolver=fake_resolver)
        built.append(runtime)
        return runtime

    yield make
    for runtime in built:
        runtime.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Batch:
    """The rows of one generated batch."""

    run_id: str
    schedule_id: str
    instance_id: str
    group_id: str
    codes: list[str]


def make_batch(
    runtime: Runtime,
    *,
    now: datetime,
    emails: tuple[str, ...] = (),
    webhooks: tuple[str, ...] = (),
    secret: str = SECRET,
    count: int = 5,
    valid_minutes: int = 480,
    instance_name: str = "Lobby Wi-Fi",
    schedule_name: str = "Daily Guest Passes",
    accent_color: str = "#0396d5",
    enqueue: bool = True,
) -> Batch:
    """An instance, a group, a schedule and one run of `count` coupons; deliveries enqueued."""
    with runtime.sessions() as session:
        if session.get(Org, ORG) is None:
            session.add(Org(id=ORG))
            session.flush()
        instance = Instance(
            org_id=ORG,
            name=instance_name,
            strategy="coupon",
            session_ttl=3600,
            theme={**DEFAULT_THEME, "accent_color": accent_color},
        )
        group = NotificationGroup(
            id="ng_" + secrets.token_hex(6),
            org_id=ORG,
            name="Front desk",
            emails=list(emails),
            webhooks=[{"url": url, "secret_sealed": runtime.box.seal(secret)} for url in webhooks],
        )
        session.add_all([instance, group])
        session.flush()
        schedule = CouponSchedule(
            org_id=ORG,
            instance_id=instance.id,
            name=schedule_name,
            count=count,
            recurrence_type="daily",
            time_of_day="10:00",
            valid_for_in_minutes=valid_minutes,
            timezone="UTC",
            notification_group_id=group.id,
            next_run_at=now + timedelta(days=1),
            last_run_at=now,
            created_at=now,
        )
        session.add(schedule)
        session.flush()
        run = ScheduleRun(
            org_id=ORG,
            instance_id=instance.id,
            schedule_id=schedule.id,
            slot_at=now,
            kind="scheduled",
            count=count,
            valid_for_in_minutes=valid_minutes,
            ran_at=now,
        )
        session.add(run)
        session.flush()
        drawn: set[str] = set()
        while len(drawn) < count:
            drawn.add(codes.generate())
        session.add_all(
            Coupon(
                org_id=ORG,
                instance_id=instance.id,
                schedule_id=schedule.id,
                run_id=run.id,
                code=code,
                expires_at=now + timedelta(minutes=valid_minutes),
                created_at=now,
            )
            for code in drawn
        )
        schedule.last_run_id = run.id
        if enqueue:
            outbox.enqueue(run.id, group, now=now, session=session)
        session.commit()
        return Batch(run.id, schedule.id, instance.id, group.id, sorted(drawn))


def deliveries(runtime: Runtime, run_id: str) -> list[Delivery]:
    """The run's deliveries, by channel and target."""
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(Delivery).where(Delivery.run_id == run_id).order_by(Delivery.channel, Delivery.target)
            )
        )


def attempts(runtime: Runtime, delivery_id: str) -> list[DeliveryAttempt]:
    """The delivery's attempt log, oldest first."""
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.attempt)
            )
        )


def coupon_codes(runtime: Runtime, run_id: str) -> list[str]:
    """The codes of the run's coupons, sorted."""
    with runtime.sessions() as session:
        return sorted(session.scalars(select(Coupon.code).where(Coupon.run_id == run_id)))


@dataclass
class Received:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers statuses from `plan` (then `default`), may stall."""

    url: str
    secret: str = SECRET
    plan: list[int] = field(default_factory=list)
    default: int = 204
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(headers.get("X-Guestgate-Signature", ""), expected)
        with self.lock:
            self.received.append(Received(path, headers, body, ok))
            return self.plan.pop(0) if self.plan else self.default


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server in a thread that verifies signatures the way a receiver should."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook = state["receiver"]
            if hook.delay:
                time.sleep(hook.delay)
            status = hook.answer(self.path, dict(self.headers.items()), body)
            text = b"" if status == 204 else b'{"error": "receiver says no"}'
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)
            except OSError:
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the concurrency test opens dozens of connections at once

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/coupons")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()


# --- enqueue ----------------------------------------------------------------------------------------


def test_enqueue_makes_one_pending_delivery_per_address_and_webhook(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, enqueue=False)
    with runtime.sessions() as session:
        group = session.get(NotificationGroup, batch.group_id)
        assert group is not None
        group.emails = ["desk@example.com", "night@example.com"]
        group.webhooks = [{"url": "https://hooks.example.com/a", "secret_sealed": runtime.box.seal(SECRET)}]
        rows = outbox.enqueue(batch.run_id, group, now=T0, session=session)
        session.commit()
    assert sorted((row.channel, row.target) for row in rows) == [
        ("email", "desk@example.com"),
        ("email", "night@example.com"),
        ("webhook", "https://hooks.example.com/a"),
    ]
    stored = deliveries(runtime, batch.run_id)
    assert [(d.status, d.attempts, d.next_attempt_at, d.last_error) for d in stored] == [
        ("pending", 0, T0, None)
    ] * 3


def test_enqueue_only_flushes_so_a_rolled_back_run_leaves_no_delivery(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, emails=("desk@example.com",), enqueue=False)
    with runtime.sessions() as session:
        group = session.get(NotificationGroup, batch.group_id)
        assert group is not None
        rows = outbox.enqueue(batch.run_id, group, now=T0, session=session)
        assert session.get(Delivery, rows[0].id) is not None  # flushed: visible in the transaction
        session.rollback()
    assert deliveries(runtime, batch.run_id) == []


def test_enqueue_of_an_empty_group_makes_nothing(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, enqueue=False)
    with runtime.sessions() as session:
        group = session.get(NotificationGroup, batch.group_id)
        assert group is not None
        assert outbox.enqueue(batch.run_id, group, now=T0, session=session) == []


# --- backoff and report ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "seconds"), [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (20, 3600)]
)
def test_backoff_doubles_from_30_seconds_and_is_capped_at_one_hour(attempt: int, seconds: int) -> None:
    assert outbox.backoff(attempt) == timedelta(seconds=seconds)


def test_report_is_false_when_nothing_happened_and_adds_up() -> None:
    assert not DeliveryReport()
    assert DeliveryReport(1, 0, 0)
    assert DeliveryReport(1, 2, 3) + DeliveryReport(1, 1, 1) == DeliveryReport(2, 3, 4)


def test_lease_outlasts_the_send_deadline() -> None:
    settings = make_settings("sqlite://", Path("var"), smtp_timeout_seconds=20, webhook_timeout_seconds=10)
    assert outbox.send_deadline(settings) == 110
    assert outbox.lease_duration(settings) == timedelta(seconds=230)


# --- the batch payload -------------------------------------------------------------------------------


def test_batch_payload_has_names_counts_coupons_and_the_batchs_signed_24h_link(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, count=3, valid_minutes=480)
    send_at = T0 + timedelta(minutes=7)
    with runtime.sessions() as session:
        built = batch_payload(batch.run_id, runtime=runtime, session=session, now=send_at)
    body = built.to_json()
    expires = int(send_at.timestamp()) + 24 * 3600
    assert {k: v for k, v in body.items() if k not in ("coupons", "coupons_url")} == {
        "event": "coupons.batch_generated",
        "run_id": batch.run_id,
        "schedule_id": batch.schedule_id,
        "schedule_name": "Daily Guest Passes",
        "instance_id": batch.instance_id,
        "instance_name": "Lobby Wi-Fi",
        "count": 3,
        "valid_for_in_minutes": 480,
        "generated_at": "2026-11-25T10:00:00Z",
        "expires_at": "2026-11-25T18:00:00Z",
        "coupons_url_expires_at": "2026-11-26T10:07:00Z",
    }
    assert [c["code"] for c in body["coupons"]] == batch.codes
    assert {c["expires_at"] for c in body["coupons"]} == {"2026-11-25T18:00:00Z"}
    assert all(set(c) == {"id", "code", "expires_at"} for c in body["coupons"])
    link = urlsplit(body["coupons_url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == "http://testserver/captive/coupons"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    # The batch's own link: it shows this batch, not whatever the schedule makes later.
    assert set(query) == {"batch", "expires", "signature"}
    assert query["batch"] == batch.run_id
    assert query["expires"] == str(expires)
    assert query["signature"] == runtime.signer.sign("coupon-batch", batch.run_id, str(expires))


def test_batch_payload_of_a_deleted_schedule_keeps_the_batchs_link(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, count=2)
    with runtime.sessions() as session:
        schedule = session.get(CouponSchedule, batch.schedule_id)
        session.delete(schedule)
        session.commit()
        built = batch_payload(batch.run_id, runtime=runtime, session=session, now=T0)
    body = built.to_json()
    assert body["schedule_id"] is None
    assert body["schedule_name"] is None
    assert parse_qs(urlsplit(body["coupons_url"]).query)["batch"] == [batch.run_id]
    assert body["coupons_url_expires_at"] == "2026-11-26T10:00:00Z"
    assert [c["code"] for c in body["coupons"]] == batch.codes


# --- deliver_due ---------------------------------------------------------------------------------------


def test_due_delivery_is_sent_once_and_not_again(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(sent=1)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(days=1)) == DeliveryReport()
    assert len(receiver.received) == 1
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts, row.last_error, row.updated_at) == ("sent", 1, None, T0)


def test_delivery_not_yet_due_waits(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    runtime = make_runtime()
    make_batch(runtime, now=T0, webhooks=(receiver.url,))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 - timedelta(seconds=1)) == DeliveryReport()
    assert receiver.received == []


def test_limit_bounds_one_call_and_the_rest_follow(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    runtime = make_runtime()
    hooks = tuple(f"{receiver.url}/{i}" for i in range(13))
    make_batch(runtime, now=T0, webhooks=hooks)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0, limit=12) == DeliveryReport(sent=12)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0, limit=12) == DeliveryReport(sent=1)
    assert sorted(r.path for r in receiver.received) == sorted(urlsplit(h).path for h in hooks)


def test_concurrent_workers_never_send_the_same_delivery(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime()
    receiver.delay = 0.05
    hooks = tuple(f"{receiver.url}/{i}" for i in range(24))
    make_batch(runtime, now=T0, webhooks=hooks)
    workers = [make_runtime() for _ in range(3)]
    reports: list[DeliveryReport] = []
    start = threading.Barrier(len(workers))

    def work(worker: Runtime) -> None:
        start.wait()
        reports.append(delivery.deliver_due_sync(runtime=worker, now=T0, limit=24))

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    paths = sorted(r.path for r in receiver.received)
    assert paths == sorted(urlsplit(h).path for h in hooks)  # each exactly once
    assert sum((r for r in reports), DeliveryReport()) == DeliveryReport(sent=24)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 24


def test_sending_delivery_of_a_dead_worker_is_claimed_again_when_its_lease_expires(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    lease_end = T0 + outbox.lease_duration(runtime.settings)
    with runtime.sessions() as session:
        [row] = session.scalars(select(Delivery).where(Delivery.run_id == batch.run_id))
        # What a worker killed in the middle of its first attempt leaves behind.
        row.status, row.attempts, row.next_attempt_at = "sending", 1, lease_end
        session.commit()
    assert (
        delivery.deliver_due_sync(runtime=runtime, now=lease_end - timedelta(seconds=1)) == DeliveryReport()
    )
    assert receiver.received == []
    assert delivery.deliver_due_sync(runtime=runtime, now=lease_end) == DeliveryReport(sent=1)
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [(a.attempt, a.ok) for a in attempts(runtime, row.id)] == [(2, True)]


def test_dead_worker_on_the_last_allowed_attempt_is_given_up(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime(delivery_max_attempts=3)
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    with runtime.sessions() as session:
        [row] = session.scalars(select(Delivery).where(Delivery.run_id == batch.run_id))
        row.status, row.attempts, row.next_attempt_at = "sending", 3, T0
        session.commit()
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(failed=1)
    [row] = deliveries(runtime, batch.run_id)
    assert row.status == "failed"
    assert row.last_error is not None
    assert "did not finish" in row.last_error
    assert receiver.received == []


def test_pending_delivery_beyond_a_lowered_attempt_limit_is_given_up(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime(delivery_max_attempts=2)
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    with runtime.sessions() as session:
        [row] = session.scalars(select(Delivery).where(Delivery.run_id == batch.run_id))
        row.attempts = 5
        session.commit()
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(failed=1)
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.last_error) == ("failed", "gave up: delivery_max_attempts (2) reached")


def test_a_lost_lease_does_not_overwrite_the_next_workers_outcome(
    make_runtime: RuntimeFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    real_send = delivery._send

    async def slow_send(*args: Any, **kwargs: Any) -> Any:
        outcome = await real_send(*args, **kwargs)
        # Meanwhile this worker's lease ran out and another worker sent the delivery.
        with runtime.sessions() as session:
            [row] = session.scalars(select(Delivery).where(Delivery.run_id == batch.run_id))
            row.status, row.attempts = "sent", 2
            session.commit()
        return outcome

    monkeypatch.setattr(delivery, "_send", slow_send)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport()
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [(a.attempt, a.ok) for a in attempts(runtime, row.id)] == [(1, True)]  # still logged


def test_failures_never_touch_the_batch_nor_block_other_deliveries(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime()  # no SMTP host: e-mail goes to the outbox
    dead = f"http://127.0.0.1:{free_port()}/hook"
    batch = make_batch(runtime, now=T0, emails=("desk@example.com",), webhooks=(dead, receiver.url))
    other = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    before = coupon_codes(runtime, batch.run_id)
    report = delivery.deliver_due_sync(runtime=runtime, now=T0)
    assert report == DeliveryReport(sent=3, retried=1)
    by_target = {d.target: d for d in deliveries(runtime, batch.run_id)}
    assert by_target["desk@example.com"].status == "sent"
    assert by_target[receiver.url].status == "sent"
    assert by_target[dead].status == "pending"
    assert [d.status for d in deliveries(runtime, other.run_id)] == ["sent"]
    assert coupon_codes(runtime, batch.run_id) == before == batch.codes


def test_deliver_due_never_raises_when_the_database_fails(
    make_runtime: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime()

    def broken(*_args: Any) -> Any:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(outbox, "claim", broken)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport()


def test_a_message_that_cannot_be_built_is_a_recorded_failed_attempt(
    make_runtime: RuntimeFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, emails=("desk@example.com",), webhooks=(receiver.url,))

    def broken_pdf(*_args: Any, **_kwargs: Any) -> bytes:
        raise ValueError("no paper")

    monkeypatch.setattr(payload, "render_pdf", broken_pdf)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(sent=1, retried=1)
    by_channel = {d.channel: d for d in deliveries(runtime, batch.run_id)}
    assert by_channel["webhook"].status == "sent"
    mail = by_channel["email"]
    assert (mail.status, mail.next_attempt_at) == ("pending", T0 + timedelta(seconds=30))
    [attempt] = attempts(runtime, mail.id)
    assert not attempt.ok
    assert attempt.error == "could not prepare the message: ValueError: no paper"


def test_webhook_removed_from_its_group_fails_at_once_without_sending(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    with runtime.sessions() as session:
        group = session.get(NotificationGroup, batch.group_id)
        assert group is not None
        group.webhooks = []
        session.commit()
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(failed=1)
    [row] = deliveries(runtime, batch.run_id)
    assert row.status == "failed"
    assert row.last_error == "no signing secret: the URL is no longer a webhook of a notification group"
    assert receiver.received == []


def test_webhook_of_a_deleted_schedule_is_still_signed_with_its_groups_secret(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    with runtime.sessions() as session:
        session.delete(session.get(CouponSchedule, batch.schedule_id))
        session.commit()
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(sent=1)
    [got] = receiver.received
    assert got.signature_ok
    body = json.loads(got.body)
    assert body["schedule_id"] is None
    assert "batch=" in body["coupons_url"]
    assert [c["code"] for c in body["coupons"]] == batch.codes
