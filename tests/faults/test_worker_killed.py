"""A delivery worker SIGKILLed in the middle of sending a batch's e-mail.

The schedule runner's own kill test is tests/schedules/test_exactly_once.py (every slot runs
exactly once when a runner dies mid-run). Here the worker dies while the SMTP server holds its
message: nothing is lost (the delivery is claimed again when the worker's lease runs out and
sent), and nothing is sent twice unless the server had already accepted the message, the one
repeat that at-least-once delivery allows, which carries the same X-Guestgate-Delivery id.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from guestgate.notifications import delivery, outbox
from guestgate.notifications.outbox import DeliveryReport
from guestgate.runtime import Runtime
from tests.notifications.test_delivery import T0, attempts, deliveries, free_port, make_batch
from tests.utils.settings import make_settings

ROOT = Path(__file__).resolve().parents[2]


class StallingInbox:
    """An SMTP handler that can hang in DATA (before accepting) or in QUIT (after accepting)."""

    def __init__(self) -> None:
        self.stall_in: str | None = None
        self.stalled = threading.Event()
        self.envelopes: list[Envelope] = []

    async def _maybe_stall(self, where: str) -> None:
        if self.stall_in == where:
            self.stalled.set()
            await asyncio.sleep(3600)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        await self._maybe_stall("DATA")
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, _server: Any, _session: Any, _envelope: Envelope) -> str:
        await self._maybe_stall("QUIT")
        return "221 Bye"

    def delivery_ids(self) -> list[str]:
        ids = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            ids.append(
                str(message_from_bytes(envelope.content, policy=policy.default)["X-Guestgate-Delivery"])
            )
        return ids


@pytest.mark.parametrize(("stall_in", "messages"), [("DATA", 1), ("QUIT", 2)])
def test_delivery_worker_killed_mid_send_is_redelivered_after_its_lease(
    db_url: str, tmp_path: Path, stall_in: str, messages: int
) -> None:
    port = free_port()
    inbox = StallingInbox()
    inbox.stall_in = stall_in
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings = make_settings(
        db_url, tmp_path / "var", smtp_host="127.0.0.1", smtp_port=port, smtp_security="none"
    )
    runtime = Runtime.build(settings)
    try:
        batch = make_batch(runtime, now=T0, emails=("desk@hotel.example",))
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.delivery_process",
                db_url,
                T0.isoformat(),
                str(tmp_path / "w"),
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if not inbox.stalled.wait(60):
            worker.kill()
            raise AssertionError(
                f"the worker never reached {stall_in}: {worker.communicate()[1].decode()[-2000:]}"
            )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        inbox.stall_in = None

        [row] = deliveries(runtime, batch.run_id)
        lease_end = T0 + outbox.lease_duration(settings)
        assert (row.status, row.attempts, row.next_attempt_at) == ("sending", 1, lease_end)
        assert attempts(runtime, row.id) == []
        # Another worker leaves it alone while the dead one's lease lasts, then takes it over.
        before = lease_end - outbox.lease_duration(settings) / 2
        assert delivery.deliver_due_sync(runtime=runtime, now=before) == DeliveryReport()
        assert delivery.deliver_due_sync(runtime=runtime, now=lease_end) == DeliveryReport(sent=1)
        assert delivery.deliver_due_sync(
            runtime=runtime, now=lease_end + outbox.lease_duration(settings)
        ) == (DeliveryReport())

        [row] = deliveries(runtime, batch.run_id)
        assert (row.status, row.attempts) == ("sent", 2)
        assert [(a.attempt, a.ok) for a in attempts(runtime, row.id)] == [(2, True)]
        # Killed before the server accepted it: one message. After: the documented single repeat,
        # with the same delivery id for the receiver to drop.
        assert inbox.delivery_ids() == [row.id] * messages
    finally:
        controller.stop()
        runtime.close()
