"""Request and response shapes of sites [extension]."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from guestgate import networks
from guestgate.schemas import CIDR, Between, MaxItems, Name, Timestamp, invalid

Driver = Literal["none", "nftables", "routeros", "agent"]
# Subnets one site may have (every check of them is O(n log n), and n is capped).
MAX_SITE_SUBNETS = 256
# The broadest guest subnet a site may claim: a tenant's site is a place, not the internet.
MIN_PREFIX = {4: 8, 6: 32}


def _check_breadth(value: str) -> str:
    network = networks.parse(value)
    if network.prefixlen < MIN_PREFIX[network.version]:
        raise invalid(
            f"is too broad for a site (at most /{MIN_PREFIX[4]} for IPv4, /{MIN_PREFIX[6]} for IPv6)"
        )
    return value


def _check_site_subnets(values: list[str]) -> list[str]:
    """The subnets without repeats (first kept); no two of them may overlap."""
    unique = list(dict.fromkeys(values))
    parsed = [networks.parse(value) for value in unique]
    overlap = networks.first_overlap(parsed)
    if overlap is not None:
        first, second = unique[overlap[0]], unique[overlap[1]]
        raise invalid(f"has overlapping subnets {first} and {second}")
    return unique


SiteSubnet = Annotated[CIDR, AfterValidator(_check_breadth)]
SiteSubnetList = Annotated[
    list[SiteSubnet], MaxItems(MAX_SITE_SUBNETS, "subnets"), AfterValidator(_check_site_subnets)
]


class GatewayIn(BaseModel):
    """The gateway that enforces access at a site; which fields apply depends on `driver`."""

    driver: Driver = Field(
        "none",
        description="`none` records only; `nftables` (only where the deployment allows it), `routeros` or "
        "`agent` enforce.",
    )
    interface: str | None = Field(
        None,
        description="nftables/agent: the guest-facing interface (e.g. `wlan0`). nftables: one the deployment "
        "allows the organisation (GUESTGATE_NFTABLES_ALLOW), used by no other site.",
    )
    portal_address: str | None = Field(
        None, description="nftables/agent: address unauthenticated web traffic is redirected to."
    )
    portal_port: Annotated[int, Between(1, 65535)] | None = Field(
        None, description="nftables/agent: portal port."
    )
    netns: str | None = Field(None, description="nftables: network namespace to apply the rules in.")
    table: str | None = Field(
        None,
        description="nftables/agent: read-only. guestgate names each site's table `guestgate_<site id without "
        "dashes>`; omit it, or send back the value read.",
    )
    host: str | None = Field(
        None,
        description="routeros: router address or name; loopback, private, link-local and other internal "
        "addresses are refused unless the deployment allows them (GUESTGATE_OUTBOUND_GATEWAY_NETWORKS).",
    )
    port: Annotated[int, Between(1, 65535)] | None = Field(None, description="routeros: REST API port (443).")
    username: str | None = Field(None, description="routeros: API user.")
    password: str | None = Field(
        None,
        description="routeros: API password (write-only). Omitted, the stored one is kept unless `host`, "
        "`port`, `tls_verify`, `ca_pem` or `pinned_sha256` change: then it must be given again.",
    )
    tls_verify: bool = Field(True, description="routeros: verify the router's certificate.")
    ca_pem: str | None = Field(None, description="routeros: CA certificate (PEM) to verify the router with.")
    pinned_sha256: str | None = Field(
        None, description="routeros: SHA-256 fingerprint of the router's certificate to pin."
    )

    @model_validator(mode="after")
    def _driver_fields(self) -> GatewayIn:
        if self.driver == "routeros" and not (self.host and self.username):
            raise invalid("needs 'host' and 'username' for the routeros driver")
        if self.driver == "nftables" and not self.interface:
            raise invalid("needs 'interface' for the nftables driver")
        return self


class GatewayStatus(BaseModel):
    """How the site's gateway last answered the reconciler."""

    state: str = Field(
        description="`ok`, `unreachable`, `misconfigured`, `unknown`, or `not_enforcing` (driver none)."
    )
    last_error: str | None
    last_sync_at: Timestamp | None


class GatewayOut(BaseModel):
    """The gateway settings, secrets left out."""

    driver: Driver
    interface: str | None = None
    portal_address: str | None = None
    portal_port: int | None = None
    netns: str | None = None
    table: str | None = Field(None, description="nftables/agent: the site's nft table (named by guestgate).")
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password_set: bool = False
    tls_verify: bool = True
    ca_pem: str | None = None
    pinned_sha256: str | None = None


class SiteIn(BaseModel):
    """A site to create or replace."""

    name: Name = Field(description="A human-readable name for the site.")
    subnets: SiteSubnetList = Field(
        default_factory=list,
        description=f"The guest subnets of the site (CIDR): at most {MAX_SITE_SUBNETS}, none overlapping "
        f"another, none broader than /{MIN_PREFIX[4]} (IPv4) or /{MIN_PREFIX[6]} (IPv6). A repeated subnet "
        "is kept once.",
    )
    gateway: GatewayIn = Field(default_factory=GatewayIn, description="The site's gateway.")


class Site(BaseModel):
    """A site where a gateway enforces guest access."""

    id: str
    name: str
    subnets: list[str]
    gateway: GatewayOut
    gateway_status: GatewayStatus
    created_at: Timestamp


class AgentKey(BaseModel):
    """A site's new agent key [extension]: shown this once; the previous key no longer works."""

    site_id: str
    agent_key: str = Field(description="The key `guestgate agent` must now send as its bearer token.")
