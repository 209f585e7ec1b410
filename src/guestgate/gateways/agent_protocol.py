"""The agent wire protocol: what `guestgate agent` and the controller's agent API say to each other.

    GET /agent/v1/state?site=<siteId>&since=<version>&wait=<seconds>
    Authorization: Bearer <the site's agent key>
    X-Guestgate-Agent-Error: <why the last state could not be applied>   (optional)

    200 the state (`state_document`), once its version differs from `since`
    304 no body: `wait` seconds passed without a change
    400 401 403 404 the agent is refused (bad request, wrong key, unknown site)

    POST /agent/v1/usage?site=<siteId>        (same key; after each apply, when they changed)
    {"counters": [{"session_id": "...", "bytes_in": 123, "bytes_out": 456}, ...]}
    200 {"written": n, "ended": m}: the counters were added to the sessions' usage

Times travel as seconds left, turned into deadlines on receipt (`read_state`), so the agent's
clock need not agree with the controller's. Both sides import this module; it imports neither
the web framework nor the database models, so an agent on a gateway loads neither
(tests/gateways/test_agent_protocol.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from guestgate.gateways.base import GardenEntry, GardenName, GuestAccess, remaining_seconds
from guestgate.gateways.nftables import LEGACY_TABLE, dnsmasq_config

# The agent API is mounted here by the app; its routes are STATE_ROUTE and USAGE_ROUTE.
MOUNT_PATH = "/agent"
STATE_ROUTE = "/v1/state"
STATE_PATH = MOUNT_PATH + STATE_ROUTE
# The agent's counters after each apply (access plans).
USAGE_ROUTE = "/v1/usage"
USAGE_PATH = MOUNT_PATH + USAGE_ROUTE
ERROR_HEADER = "x-guestgate-agent-error"
DEFAULT_WAIT_SECONDS = 25
MAX_WAIT_SECONDS = 60
# Bounds of what an agent sends: the error it reports, the version it holds, the site id.
MAX_ERROR_CHARS = 500
MAX_VERSION_CHARS = 64
MAX_SITE_ID_CHARS = 36
# Statuses with which the controller refuses an agent: retrying at once will not help.
REFUSED_STATUSES = frozenset({400, 401, 403, 404})


@dataclass(frozen=True)
class LocalState:
    """A state received from the controller, with deadlines on the agent's clock."""

    version: str
    gateway: dict[str, Any]
    guests: list[GuestAccess]
    walled_garden: list[GardenEntry]
    auth_windows: dict[str, datetime]
    walled_garden_names: list[GardenName] = field(default_factory=list)


def state_document(
    *,
    site_id: str,
    version: str,
    gateway: Mapping[str, Any],
    guests: Sequence[GuestAccess],
    walled_garden: Sequence[GardenEntry],
    walled_garden_names: Sequence[GardenName],
    auth_windows: Mapping[str, datetime],
    now: datetime,
) -> dict[str, Any]:
    """The JSON body an agent receives (times as seconds left, so clocks need not agree)."""
    return {
        "site_id": site_id,
        "version": version,
        "generated_at": iso(now),
        "gateway": dict(gateway),
        "guests": [
            {
                "session_id": g.session_id,
                "ip": g.ip,
                "mac": g.mac,
                "expires_at": iso(g.until),
                "seconds_remaining": remaining_seconds(g.until, now=now),
                # Extensions: the session's speed limits in kbit/s (null: none).
                "download_kbps": g.download_kbps,
                "upload_kbps": g.upload_kbps,
            }
            for g in guests
        ],
        "walled_garden": [{"ip_address": e.cidr, "type": e.type} for e in walled_garden],
        # Exact names with the addresses the controller resolved (seconds left: TTL + margin),
        # and wildcards, which the gateway's dnsmasq resolves (`dnsmasq_config`).
        "walled_garden_names": [
            {
                "hostname": n.hostname,
                "type": n.type,
                "addresses": [
                    {"ip": a, "seconds_remaining": remaining_seconds(u, now=now)}
                    for a, u in n.addresses
                    if u > now
                ],
            }
            for n in walled_garden_names
        ],
        "dnsmasq_config": dnsmasq_config(str(gateway.get("table") or LEGACY_TABLE), walled_garden_names),
        "auth_windows": [
            {"ip": ip, "seconds_remaining": remaining_seconds(until, now=now)}
            for ip, until in sorted(auth_windows.items())
        ],
    }


def read_state(document: dict[str, Any], *, received: datetime) -> LocalState:
    """The state in a 200 body, its seconds left counted from `received`; ValueError if unreadable."""
    try:
        guests = [
            GuestAccess(
                session_id=str(g["session_id"]),
                ip=str(g["ip"]),
                mac=g.get("mac"),
                until=received + timedelta(seconds=int(g["seconds_remaining"])),
                download_kbps=_kbps(g.get("download_kbps")),
                upload_kbps=_kbps(g.get("upload_kbps")),
            )
            for g in document.get("guests", [])
        ]
        garden = [GardenEntry(str(e["ip_address"]), e.get("type")) for e in document.get("walled_garden", [])]
        names = [
            GardenName(
                str(n["hostname"]),
                n.get("type"),
                tuple(
                    (str(a["ip"]), received + timedelta(seconds=int(a["seconds_remaining"])))
                    for a in n.get("addresses", [])
                ),
            )
            for n in document.get("walled_garden_names", [])
        ]
        windows = {
            str(w["ip"]): received + timedelta(seconds=int(w["seconds_remaining"]))
            for w in document.get("auth_windows", [])
        }
        return LocalState(
            version=str(document["version"]),
            gateway=dict(document.get("gateway") or {}),
            guests=guests,
            walled_garden=garden,
            auth_windows=windows,
            walled_garden_names=names,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"the controller sent a state the agent cannot read: {exc!r}") from exc


def _kbps(value: Any) -> int | None:
    # A controller from before access plans sends no limits.
    return None if value is None else int(value)


def iso(moment: datetime) -> str:
    """A time as the protocol writes it: ISO 8601 with `Z` for UTC."""
    return moment.isoformat().replace("+00:00", "Z")
