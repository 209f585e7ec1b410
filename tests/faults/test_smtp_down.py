"""SMTP down then back: a real aiosmtpd server stops in the middle of delivering a schedule's batch.

The delivery is retried with backoff (30 s, then doubling), the schedule keeps making its batches
while mail is down, and once the server is back each batch arrives exactly once.
"""

from __future__ import annotations

import asyncio
import csv
import io
import threading
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from guestgate.notifications import delivery
from guestgate.notifications.outbox import DeliveryReport
from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from guestgate.schedules.models import CouponSchedule
from tests.notifications.test_delivery import T0, attempts, coupon_codes, deliveries, free_port
from tests.schedules import factory
from tests.utils.settings import make_settings

DESK = "desk@hotel.example"


class Inbox:
    """What the SMTP server accepted; with `stall`, DATA hangs (the server dies mid-delivery)."""

    def __init__(self, *, stall: bool = False) -> None:
        self.envelopes: list[Envelope] = []
        self.stall = stall
        self.in_data = threading.Event()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        if self.stall:
            self.in_data.set()
            await asyncio.sleep(3600)
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def codes(self) -> list[list[str]]:
        """The coupon codes of each accepted message's CSV, in arrival order."""
        found = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            [csv_part] = [p for p in message.iter_attachments() if p.get_content_type() == "text/csv"]
            payload = csv_part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            rows = list(csv.reader(io.StringIO(payload.decode(), newline="")))
            found.append(sorted(row[0] for row in rows[1:]))
        return found


def start_smtp(inbox: Inbox, port: int) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def next_slot(runtime: Runtime, schedule_id: str) -> datetime:
    with runtime.sessions() as session:
        schedule = session.get(CouponSchedule, schedule_id)
        assert schedule is not None and schedule.next_run_at is not None
        return schedule.next_run_at


def run_slot(runtime: Runtime, schedule_id: str, now: datetime) -> str:
    """Run the schedule's due slot at `now`; the new run's id."""
    [outcome] = jobs.run_due(runtime=runtime, now=now)
    assert outcome.schedule_id == schedule_id
    return str(outcome.run_id)


def test_smtp_stopped_mid_delivery_is_retried_with_backoff_and_delivered_once_when_back(
    db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(
        db_url, tmp_path / "var", smtp_host="127.0.0.1", smtp_port=port, smtp_security="none"
    )
    runtime = Runtime.build(settings)
    controllers: list[Controller] = []
    try:
        with runtime.sessions() as session:
            instance_id, group_id = factory.base_rows(session, emails=[DESK])
            schedule_id = factory.schedule(
                session, instance_id=instance_id, group_id=group_id, after=T0 - timedelta(days=1), count=4
            ).id
            session.commit()
        first_slot = next_slot(runtime, schedule_id)
        up = Inbox()
        controllers.append(start_smtp(up, port))
        run1 = run_slot(runtime, schedule_id, first_slot)
        assert delivery.deliver_due_sync(runtime=runtime, now=first_slot) == DeliveryReport(sent=1)

        # The next batch: the server takes the message's DATA, then stops before accepting it.
        slot2 = next_slot(runtime, schedule_id)
        run2 = run_slot(runtime, schedule_id, slot2)
        dying = Inbox(stall=True)
        controllers[0].stop()
        controllers[0] = start_smtp(dying, port)
        report: list[DeliveryReport] = []
        sender = threading.Thread(
            target=lambda: report.append(delivery.deliver_due_sync(runtime=runtime, now=slot2))
        )
        sender.start()
        assert dying.in_data.wait(30), "the delivery never reached DATA"
        controllers[0].stop()
        sender.join(timeout=60)
        assert report == [DeliveryReport(retried=1)]
        [row] = deliveries(runtime, run2)
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "pending",
            1,
            slot2 + timedelta(seconds=30),
        )

        # Still down (nothing listens): not before the backoff, then again with a doubled wait.
        assert (
            delivery.deliver_due_sync(runtime=runtime, now=slot2 + timedelta(seconds=29)) == DeliveryReport()
        )
        assert delivery.deliver_due_sync(
            runtime=runtime, now=slot2 + timedelta(seconds=30)
        ) == DeliveryReport(retried=1)
        [row] = deliveries(runtime, run2)
        assert (row.attempts, row.next_attempt_at) == (2, slot2 + timedelta(seconds=90))
        assert row.last_error is not None and row.last_error.startswith("SMTPConnectError")

        # Mail being down blocks neither the schedule nor its next batch.
        slot3 = next_slot(runtime, schedule_id)
        run3 = run_slot(runtime, schedule_id, slot3)
        assert len(coupon_codes(runtime, run3)) == 4
        assert delivery.deliver_due_sync(runtime=runtime, now=slot3) == DeliveryReport(retried=2)

        back = Inbox()
        controllers.append(start_smtp(back, port))
        assert delivery.deliver_due_sync(runtime=runtime, now=slot3 + timedelta(hours=1)) == DeliveryReport(
            sent=2
        )
        assert delivery.deliver_due_sync(runtime=runtime, now=slot3 + timedelta(days=1)) == DeliveryReport()

        # Exactly one message per batch, each with its own codes; nothing from the dying server.
        assert up.codes() == [coupon_codes(runtime, run1)]
        assert dying.envelopes == []
        assert sorted(back.codes()) == sorted([coupon_codes(runtime, run2), coupon_codes(runtime, run3)])
        [row2], [row3] = deliveries(runtime, run2), deliveries(runtime, run3)
        assert (row2.status, row2.attempts, row3.status, row3.attempts) == ("sent", 4, "sent", 2)
        log = attempts(runtime, row2.id)
        assert [a.ok for a in log] == [False, False, False, True]
        assert [a.at for a in log] == [
            slot2,
            slot2 + timedelta(seconds=30),
            slot3,
            slot3 + timedelta(hours=1),
        ]
        assert log[0].error is not None and "disconnected" in log[0].error.lower()
    finally:
        for controller in controllers:
            if controller.loop.is_running():
                controller.stop()
        runtime.close()
