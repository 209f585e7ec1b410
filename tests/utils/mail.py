"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, keeping what it is sent."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

REMOTE_WORDS = "REMOTE-WORDS-NEVER-SHOWN"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Inbox:
    """aiosmtpd handler: accepts mail, refuses recipients named `refuse@...` with 550 and its own words."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Envelope, address: str, _options: Any
    ) -> str:
        if address.startswith("refuse@"):
            return f"550 {REMOTE_WORDS} mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        """What arrived, parsed."""
        return [
            cast(EmailMessage, message_from_bytes(bytes(e.content or b""), policy=policy.default))
            for e in self.envelopes
        ]


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A running aiosmtpd server: its inbox and port."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
