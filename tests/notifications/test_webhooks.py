"""Webhook delivery against a real HTTP receiver on 127.0.0.1: signing, retries, timeouts, giving up."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta
from urllib.parse import urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient

from guestgate.db import utcnow
from guestgate.notifications import delivery, webhooks
from guestgate.notifications.outbox import DeliveryReport
from tests.notifications.test_delivery import (
    SECRET,
    T0,
    Receiver,
    RuntimeFactory,
    attempts,
    coupon_codes,
    deliveries,
    free_port,
    make_batch,
    make_runtime,
    receiver,
)

__all__ = ["make_runtime", "receiver"]  # fixtures used by name below


def test_signature_is_hex_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"count":2}'
    expected = hmac.new(b"key-0123456789abcdef", body, hashlib.sha256).hexdigest()
    assert webhooks.signature(body, "key-0123456789abcdef") == f"sha256={expected}"
    assert webhooks.signature(body + b" ", "key-0123456789abcdef") != f"sha256={expected}"


def test_webhook_posts_the_signed_batch_with_its_delivery_id(
    make_runtime: RuntimeFactory, receiver: Receiver, client: TestClient
) -> None:
    runtime = make_runtime()
    now = utcnow().replace(microsecond=0)
    batch = make_batch(runtime, now=now, webhooks=(receiver.url,), count=4, valid_minutes=90)
    assert delivery.deliver_due_sync(runtime=runtime, now=now) == DeliveryReport(sent=1)
    [got] = receiver.received
    [row] = deliveries(runtime, batch.run_id)
    assert got.path == "/hooks/coupons"
    assert got.signature_ok
    assert got.headers["X-Guestgate-Delivery"] == row.id
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"].startswith("guestgate-webhooks/")
    assert got.headers["X-Guestgate-Event"] == "coupons.batch_generated"
    body = json.loads(got.body)
    assert body["schedule_name"] == "Daily Guest Passes"
    assert body["instance_name"] == "Lobby Wi-Fi"
    assert (body["count"], body["valid_for_in_minutes"]) == (4, 90)
    assert body["expires_at"] == (now + timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [c["code"] for c in body["coupons"]] == batch.codes
    link = urlsplit(body["coupons_url"])
    response = client.get(f"{link.path}?{link.query}")
    assert response.status_code == 200
    assert sorted(c["code"] for c in response.json()) == batch.codes
    [attempt] = attempts(runtime, row.id)
    assert (attempt.attempt, attempt.ok, attempt.status_code, attempt.error) == (1, True, 204, None)
    assert attempt.duration_ms >= 0


def test_receiver_failing_twice_then_succeeding_gets_three_recorded_attempts(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime()
    receiver.plan = [500, 500]
    receiver.default = 200
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, T0 + timedelta(seconds=30))
    # Our words: the receiver's body ("receiver says no") is never stored.
    assert row.last_error == "the receiver answered HTTP 500"
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=29)) == DeliveryReport()
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=30)) == DeliveryReport(
        retried=1
    )
    [row] = deliveries(runtime, batch.run_id)
    assert row.next_attempt_at == T0 + timedelta(seconds=90)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=90)) == DeliveryReport(
        sent=1
    )
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    log = attempts(runtime, row.id)
    assert [(a.attempt, a.ok, a.status_code) for a in log] == [
        (1, False, 500),
        (2, False, 500),
        (3, True, 200),
    ]
    assert [a.at for a in log] == [T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=90)]
    assert len(receiver.received) == 3
    assert all(r.signature_ok for r in receiver.received)
    assert {r.headers["X-Guestgate-Delivery"] for r in receiver.received} == {row.id}
    assert coupon_codes(runtime, batch.run_id) == batch.codes


def test_slow_receiver_is_a_timed_out_attempt(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    runtime = make_runtime(webhook_timeout_seconds=0.3)
    receiver.delay = 1.5
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    [row] = deliveries(runtime, batch.run_id)
    [attempt] = attempts(runtime, row.id)
    assert not attempt.ok
    assert attempt.status_code is None
    assert attempt.error == "timed out after 0.3 s"
    assert 250 <= attempt.duration_ms < 1500


def test_unreachable_receiver_is_a_failed_attempt_without_the_secret_in_the_log(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime()
    url = f"http://127.0.0.1:{free_port()}/hook"
    batch = make_batch(runtime, now=T0, webhooks=(url,))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    [row] = deliveries(runtime, batch.run_id)
    [attempt] = attempts(runtime, row.id)
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith("could not connect")
    assert SECRET not in attempt.error
    assert row.last_error == attempt.error


def test_redirect_is_not_followed_and_counts_as_a_failure(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime()
    receiver.default = 307
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    [row] = deliveries(runtime, batch.run_id)
    [attempt] = attempts(runtime, row.id)
    assert (attempt.ok, attempt.status_code) == (False, 307)
    assert len(receiver.received) == 1


def test_delivery_fails_for_good_after_the_maximum_attempts(
    make_runtime: RuntimeFactory, receiver: Receiver
) -> None:
    runtime = make_runtime(delivery_max_attempts=3)
    receiver.default = 503
    batch = make_batch(runtime, now=T0, webhooks=(receiver.url,))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=30)) == DeliveryReport(
        retried=1
    )
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=90)) == DeliveryReport(
        failed=1
    )
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(days=2)) == DeliveryReport()
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error is not None
    assert row.last_error.startswith("the receiver answered HTTP 503")
    assert [(a.attempt, a.ok, a.status_code) for a in attempts(runtime, row.id)] == [
        (1, False, 503),
        (2, False, 503),
        (3, False, 503),
    ]
    assert len(receiver.received) == 3
    assert coupon_codes(runtime, batch.run_id) == batch.codes


def test_post_returns_the_status_and_raises_with_the_status_on_failure(receiver: Receiver) -> None:
    body = webhooks.body_of({"count": 1, "name": "Café"})
    assert body == '{"count":1,"name":"Café"}'.encode()

    async def post() -> int:
        async with httpx2.AsyncClient() as client:
            return await webhooks.post(
                receiver.url, body, secret=SECRET, delivery_id="d-1", timeout=5, client=client
            )

    assert asyncio.run(post()) == 204
    receiver.default = 404
    with pytest.raises(webhooks.WebhookFailed) as failed:
        asyncio.run(post())
    assert failed.value.status_code == 404
    assert str(failed.value) == "the receiver answered HTTP 404"
    assert [r.body for r in receiver.received] == [body, body]
    assert all(r.signature_ok for r in receiver.received)
