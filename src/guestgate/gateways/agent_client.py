"""`guestgate agent`: runs on a remote Linux gateway, pulls its site's state, applies it with nftables.

The agent only makes outgoing HTTP(S) requests, so it works behind NAT. It long-polls the
controller's `GET /agent/v1/state` with the version it holds; a new state is applied in one
`nft -f -` transaction by the nftables driver (`sync`: only the difference, or the whole table
when it is missing or damaged), then the agent polls again with the new version, which tells the
controller the state is applied. Each time a poll ends, even with no change, the agent re-checks
its table, so a flushed ruleset is repaired within one poll interval.

Times come as seconds left, turned into local deadlines on receipt, so the agent's clock need not
agree with the controller's. Settings the controller sends (interface, portal address and port,
table) are overridden by the agent's own options. The table is the site's own
(`guestgate_<site id>`, never a tenant's choice); a site made before that keeps `guestgate` until
it is edited. When the table (or namespace) changes, the agent installs the new one and then
deletes the one it used before, and nothing else.

After each apply the agent posts its guests' byte counters (`POST /agent/v1/usage`, when they
changed since its last report): the controller adds them to the sessions' usage and ends those
over their data limit, which wakes the agent's next poll with a state without them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx2
import structlog

from guestgate.db import utcnow
from guestgate.gateways.agent_protocol import (
    DEFAULT_WAIT_SECONDS,
    ERROR_HEADER,
    MAX_ERROR_CHARS,
    REFUSED_STATUSES,
    STATE_PATH,
    USAGE_PATH,
    LocalState,
    read_state,
)
from guestgate.gateways.base import (
    Gateway,
    GatewayError,
    GatewayMisconfigured,
    GuestCounters,
)
from guestgate.gateways.nftables import LEGACY_TABLE, NftablesGateway

log = structlog.get_logger(__name__)
MAX_BACKOFF_SECONDS = 30.0
# The HTTP timeout is the long-poll's wait plus this much for the answer to arrive.
HTTP_GRACE_SECONDS = 15.0


class AgentRefused(Exception):
    """The controller refused the agent (wrong key, unknown site, bad request): retrying will not help soon."""


@dataclass(frozen=True)
class AgentOptions:
    """How the agent reaches its controller, and the local settings that override the controller's."""

    controller: str
    site_id: str
    key: str
    netns: str | None = None
    interface: str | None = None
    portal_address: str | None = None
    portal_port: int | None = None
    table: str | None = None
    wait_seconds: float = DEFAULT_WAIT_SECONDS


GatewayFactory = Callable[[AgentOptions, dict[str, Any]], Gateway]


def nftables_gateway(options: AgentOptions, sent: dict[str, Any]) -> Gateway:
    """The local nftables driver: the agent's options first, then what the controller sent."""
    interface = options.interface or sent.get("interface")
    if not interface:
        raise GatewayMisconfigured("no guest interface: pass --interface or set the site's gateway.interface")
    return NftablesGateway(
        interface=str(interface),
        portal_port=int(options.portal_port or sent.get("portal_port") or 80),
        portal_address=options.portal_address or sent.get("portal_address"),
        netns=options.netns,
        table=str(options.table or sent.get("table") or LEGACY_TABLE),
    )


class Agent:
    """Pulls one site's state from the controller and keeps the local gateway equal to it."""

    def __init__(
        self,
        options: AgentOptions,
        *,
        http: httpx2.Client | None = None,
        gateway_factory: GatewayFactory = nftables_gateway,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.options = options
        self.clock = clock
        self.gateway_factory = gateway_factory
        self.http = http or httpx2.Client(
            base_url=options.controller.rstrip("/"),
            timeout=httpx2.Timeout(options.wait_seconds + HTTP_GRACE_SECONDS, connect=10.0),
        )
        self.state: LocalState | None = None
        self.applied = ""
        self.error: str | None = None
        self._gateway: tuple[str, Gateway] | None = None
        # The counters of the last apply, and the last ones the controller took.
        self.usage: dict[str, GuestCounters] = {}
        self._reported: dict[str, GuestCounters] = {}
        # Drivers replaced by a change of settings, whose tables go once the new one is in place.
        self._left: list[Gateway] = []

    def poll(self) -> bool:
        """One long-poll; True when it brought a new state (kept in `state`, not applied yet)."""
        headers = {"authorization": f"Bearer {self.options.key}"}
        if self.error:
            headers[ERROR_HEADER] = self.error[:MAX_ERROR_CHARS].replace("\n", " ")
        params = {
            "site": self.options.site_id,
            "since": self.applied,
            "wait": f"{self.options.wait_seconds:g}",
        }
        response = self.http.get(STATE_PATH, params=params, headers=headers)
        if response.status_code == 304:
            return False
        if response.status_code in REFUSED_STATUSES:
            raise AgentRefused(f"the controller answered {response.status_code}: {response.text[:300]}")
        response.raise_for_status()
        self.state = read_state(response.json(), received=self.clock())
        return True

    def apply(self) -> None:
        """Make the local gateway hold the last state received; raises GatewayError."""
        state = self.state
        if state is None:
            return
        now = self.clock()
        try:
            gateway = self._gateway_for(state.gateway)
            synced = gateway.sync(state.guests, state.walled_garden, now=now, names=state.walled_garden_names)
            self.usage = dict(synced.usage)
            for ip, until in state.auth_windows.items():
                seconds = int((until - now).total_seconds())
                if seconds > 0:
                    gateway.open_auth_window(ip, seconds)
        except GatewayError as exc:
            self.error = str(exc)
            raise
        self.error = None
        self.applied = state.version
        self._retire_left(gateway)

    def report_usage(self) -> bool:
        """Post the counters of the last apply if they changed since the last report; True if posted."""
        if not self.usage or self.usage == self._reported:
            return False
        body = {
            "counters": [
                {"session_id": sid, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out}
                for sid, c in sorted(self.usage.items())
            ]
        }
        response = self.http.post(
            USAGE_PATH,
            params={"site": self.options.site_id},
            json=body,
            headers={"authorization": f"Bearer {self.options.key}"},
        )
        if response.status_code in (400, 401, 403, 404):
            raise AgentRefused(f"the controller answered {response.status_code}: {response.text[:300]}")
        response.raise_for_status()
        self._reported = dict(self.usage)
        return True

    def run(self, stop: threading.Event) -> None:
        """Poll and apply until `stop` is set; network and gateway errors are retried with back-off."""
        backoff = 1.0
        while not stop.is_set():
            try:
                changed = self.poll()
                self.apply()
                self.report_usage()
            except AgentRefused as exc:
                log.error("agent.refused", error=str(exc))
                stop.wait(MAX_BACKOFF_SECONDS)
                continue
            except (httpx2.HTTPError, ValueError) as exc:
                log.warning("agent.controller_unreachable", error=str(exc), retry_in=backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            except GatewayError as exc:
                log.warning("agent.apply_failed", error=str(exc), retry_in=backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = 1.0
            if changed and self.state is not None:
                log.info("agent.applied", version=self.state.version, guests=len(self.state.guests))

    def close(self) -> None:
        """Close the HTTP connection and the local drivers."""
        self.http.close()
        for gateway in self._left:
            gateway.close()
        if self._gateway is not None:
            self._gateway[1].close()

    def _gateway_for(self, sent: dict[str, Any]) -> Gateway:
        key = repr(sorted(sent.items()))
        if self._gateway is None or self._gateway[0] != key:
            if self._gateway is not None:
                self._left.append(self._gateway[1])
            self._gateway = (key, self.gateway_factory(self.options, sent))
        return self._gateway[1]

    def _retire_left(self, current: Gateway) -> None:
        for old in self._left:
            if (
                isinstance(old, NftablesGateway)
                and isinstance(current, NftablesGateway)
                and (old.table, old.netns) != (current.table, current.netns)
            ):
                try:
                    old.remove()
                except GatewayError as exc:
                    log.warning("agent.table_remove_failed", table=old.table, error=str(exc))
                else:
                    log.info("agent.table_removed", table=old.table, netns=old.netns)
            old.close()
        self._left.clear()


def run_agent(options: AgentOptions, stop: threading.Event | None = None) -> None:
    """Run an agent until `stop` (or forever)."""
    agent = Agent(options)
    try:
        agent.run(stop or threading.Event())
    finally:
        agent.close()
