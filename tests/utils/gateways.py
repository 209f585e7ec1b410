"""Gateway test helpers: the fake RouterOS factory type and the loopback routers.

The fixtures built on them are in tests/gateways/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable

from guestgate.gateways.routeros import RouterOSGateway
from guestgate.outbound import OutboundPolicy

RouterOSFactory = Callable[..., RouterOSGateway]
# The fake router listens on loopback, which the outbound policy refuses unless a deployment allows it.
LOOPBACK_ROUTERS = OutboundPolicy.from_settings("", "127.0.0.0/8")
