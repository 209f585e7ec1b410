"""Who may configure which gateway: the rules a site's gateway settings must follow.

One place for them, used when a site is created or replaced (the first broken rule is the
API's 400 or 409) and by `guestgate doctor` and the server's start-up check (every broken rule
of every stored site, so sites saved before a rule existed are named, and keep working until
they are edited).

- `nftables` changes the firewall of the host guestgate runs on: a deployment decision. An org
  may use it only on the places (`interface`, or `netns/interface`) that
  `GUESTGATE_NFTABLES_ALLOW` lists for it (or for `*`); by default no org may. One site per
  place: a second site on an interface another site uses (any org's) is refused.
- The nft table of an `nftables` or `agent` site is `guestgate_<site id>` (`nftables.table_name`),
  never the tenant's choice; `gateway.table` may only repeat it.
- A `routeros` host must pass the outbound policy (`guestgate.outbound`, purpose `gateway`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from guestgate.errors import Conflict, ParameterInvalid
from guestgate.gateways.nftables import LEGACY_TABLE, table_name
from guestgate.outbound import OutboundPolicy, OutboundRefused
from guestgate.sites.models import Site

ANY_ORG = "*"
LOCAL_DRIVER = "nftables"
# Drivers whose gateway holds a guestgate nft table (locally, or on the agent's host).
TABLE_DRIVERS = frozenset({"nftables", "agent"})
DEFAULT_ROUTEROS_PORT = 443
# Serialises the place check and the write that follows across PostgreSQL sessions (SQLite
# write requests hold the database's write lock from BEGIN).
_PLACES_LOCK = int.from_bytes(hashlib.sha256(b"guestgate-nftables-places").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Finding:
    """One broken rule: the parameter it is about and what is wrong, in a sentence."""

    parameter: str
    problem: str
    # True when the settings are fine but clash with another site's (409 rather than 400).
    conflict: bool = False


@dataclass(frozen=True)
class Place:
    """Where an nftables site enforces: a network namespace (None: the host's) and an interface."""

    netns: str | None
    interface: str

    def __str__(self) -> str:
        where = f"network namespace '{self.netns}'" if self.netns else "the host's network namespace"
        return f"interface '{self.interface}' in {where}"


@dataclass(frozen=True)
class LocalTable:
    """An nft table on this host: what `nft` is pointed at to delete it."""

    netns: str | None
    table: str


def effective_table(driver: str, config: Mapping[str, Any]) -> str | None:
    """The nft table a site's gateway uses: the stored one, or the legacy one of an older site."""
    if driver not in TABLE_DRIVERS:
        return None
    return str(config.get("table") or LEGACY_TABLE)


def local_table(driver: str, config: Mapping[str, Any]) -> LocalTable | None:
    """The table an `nftables` site keeps on this host, or None for other drivers."""
    if driver != LOCAL_DRIVER:
        return None
    return LocalTable(
        netns=config.get("netns") or None, table=effective_table(driver, config) or LEGACY_TABLE
    )


class GatewayRules:
    """The deployment's rules for gateway settings (see the module docstring)."""

    def __init__(self, *, nftables_allow: Mapping[str, Sequence[str]], outbound: OutboundPolicy) -> None:
        self.outbound = outbound
        self._places: dict[str, frozenset[Place]] = {
            org: frozenset(_place(entry) for entry in entries) for org, entries in nftables_allow.items()
        }

    def check(
        self, site_id: str, org_id: str, driver: str, config: Mapping[str, Any], *, session: Session
    ) -> None:
        """Raise the first broken rule of settings about to be stored: ParameterInvalid or Conflict."""
        if driver == LOCAL_DRIVER and session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PLACES_LOCK})
        for finding in self.findings(site_id, org_id, driver, config, session=session):
            if finding.conflict:
                raise Conflict(f"The '{finding.parameter}' parameter {finding.problem}.")
            raise ParameterInvalid(finding.parameter, finding.problem)

    def findings(
        self, site_id: str, org_id: str, driver: str, config: Mapping[str, Any], *, session: Session
    ) -> list[Finding]:
        """Every rule the settings break, in the order `check` reports them."""
        found: list[Finding] = []
        if driver == LOCAL_DRIVER:
            found += self._nftables(site_id, org_id, config, session=session)
        if driver in TABLE_DRIVERS:
            table = effective_table(driver, config)
            own = table_name(site_id)
            if table != own:
                found.append(
                    Finding(
                        "gateway.table",
                        f"names the nft table '{table}', but guestgate names each site's table itself "
                        f"('{own}' for this site): omit it",
                    )
                )
        if driver == "routeros" and config.get("host"):
            port = int(config.get("port") or DEFAULT_ROUTEROS_PORT)
            try:
                self.outbound.vet(str(config["host"]), port, "gateway")
            except OutboundRefused as exc:
                found.append(Finding("gateway.host", f"is refused: {exc}"))
        return found

    def place_allowed(self, org_id: str, place: Place) -> bool:
        """Whether the deployment lets `org_id` use the nftables driver at `place`."""
        return place in self._places.get(org_id, frozenset()) or place in self._places.get(
            ANY_ORG, frozenset()
        )

    def _nftables(
        self, site_id: str, org_id: str, config: Mapping[str, Any], *, session: Session
    ) -> list[Finding]:
        place = Place(netns=config.get("netns") or None, interface=str(config.get("interface") or ""))
        found: list[Finding] = []
        if not (self._places.get(org_id) or self._places.get(ANY_ORG)):
            found.append(
                Finding(
                    "gateway.driver",
                    "is 'nftables', which is not enabled for this organisation: it changes the firewall of "
                    "the host guestgate runs on, so only the deployment can allow it "
                    "(GUESTGATE_NFTABLES_ALLOW)",
                )
            )
        elif not self.place_allowed(org_id, place):
            parameter = "gateway.netns" if place.netns else "gateway.interface"
            found.append(
                Finding(
                    parameter,
                    f"names {place}, which the deployment has not allowed this organisation to use "
                    "(GUESTGATE_NFTABLES_ALLOW)",
                )
            )
        table = local_table(LOCAL_DRIVER, config)
        for other_id, other_config in _other_local_sites(site_id, session=session):
            other = Place(
                netns=other_config.get("netns") or None, interface=str(other_config.get("interface"))
            )
            if other == place:
                found.append(
                    Finding("gateway.interface", f"names {place}, which another site uses", conflict=True)
                )
            elif table is not None and local_table(LOCAL_DRIVER, other_config) == table:
                # Only sites made before tables were per site can share one.
                found.append(
                    Finding(
                        "gateway.table",
                        f"names the nft table '{table.table}' that site {other_id} also uses",
                        conflict=True,
                    )
                )
        return found


def _place(entry: str) -> Place:
    netns, _, interface = entry.strip().rpartition("/")
    return Place(netns=netns or None, interface=interface)


def _other_local_sites(site_id: str, *, session: Session) -> list[tuple[str, dict[str, Any]]]:
    rows = session.execute(
        select(Site.id, Site.gateway_config).where(Site.gateway_driver == LOCAL_DRIVER, Site.id != site_id)
    ).all()
    return [(row[0], dict(row[1] or {})) for row in rows]
