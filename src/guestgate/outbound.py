"""The outbound-destination policy: where a connection that a tenant's settings aim may go.

Every outbound call whose destination a tenant controls goes through one `OutboundPolicy`:
today the RouterOS REST API of a site's gateway (`gateway.host`), the webhooks of
notification groups (`webhooks[i].url`) and the addresses walled-garden host names resolve to
(purpose `walled-garden`: guests, not guestgate, connect to them, but a tenant must not open the
controller's own networks to unauthenticated guests by naming them) and the OpenID Connect
issuer of an `oidc` auth integration (purpose `identity-provider`: its discovery document,
token endpoint and key set); anything else by naming a new `Purpose`. The deployment's own destinations (the JWKS URL,
the SMTP server, the identity providers' discovery documents) are settings, not tenant input,
and do not pass through it.

A destination is checked twice:

- when it is configured (`check_host`, `check_url`): the spelling must be a canonical IP
  address or a DNS name (no `0x7f000001`, `2130706433`, `0177.0.0.1`, no `localhost`), and
  every address the name resolves to must be allowed; refused -> `ParameterInvalid` naming
  the parameter;
- when a connection is opened (`transport`, `async_transport`: an httpx2 transport whose
  network backend resolves the name, vets every address and connects to a vetted one), so
  a name that resolved to a public address at configuration time and to 127.0.0.1 now (DNS
  rebinding) is refused with `OutboundRefused`. TLS still verifies, and the `Host` header and
  SNI still carry, the name: only the TCP connection is aimed at the vetted address.

Refused unless a deployment setting allows them: loopback, private (RFC 1918), shared
(CGNAT, 100.64.0.0/10), link-local (169.254.0.0/16 with the cloud metadata address,
fe80::/10), unspecified, multicast, reserved and broadcast, documentation and benchmarking
ranges, IPv6 unique-local (fc00::/7), site-local and IETF protocol ranges, and IPv6 forms
that carry an IPv4 address (IPv4-mapped, IPv4-translated, IPv4-compatible, 6to4, NAT64), judged by the IPv4
address they carry. `GUESTGATE_OUTBOUND_ALLOW_NETWORKS` lists ranges every purpose may reach
anyway; `GUESTGATE_OUTBOUND_GATEWAY_NETWORKS` ranges only gateways may reach (a router on a
private management network is normal, a webhook into it is not).

Errors reported to the tenant are in our words (`describe_failure`): what failed, never what
the remote server answered.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import anyio
import httpcore2
import httpx2

from guestgate import networks
from guestgate.errors import ParameterInvalid, ParameterMissing

# `walled-garden`: the addresses a tenant's walled-garden host names resolve to, before guests may reach them.
# `identity-provider`: a tenant's own OpenID Connect issuer (discovery, token endpoint, key set).
Purpose = Literal["gateway", "webhook", "walled-garden", "identity-provider"]
# (host, port) -> every address the name resolves to, as text; raises OSError (socket.gaierror).
Resolver = Callable[[str, int], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# The IANA special-purpose ranges no tenant-aimed connection may reach, with why, in our words.
# Python's `is_global` differs between versions (3.11 calls fec0::/10 and 64:ff9b::/96 global),
# so the table is ours.
_FORBIDDEN: tuple[tuple[networks.Network, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address (cloud metadata lives there)"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved or broadcast address"),
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/23", "an IETF protocol address (Teredo, benchmarking)"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fc00::/7", "a unique local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
# IPv6 forms whose last 32 bits (or bits 16..48, for 6to4) are an IPv4 address the packet reaches.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# SIIT's IPv4-translated form (RFC 2765): on a host that translates, it reaches the IPv4 address.
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# What inet_aton (and so getaddrinfo) reads as an IPv4 address: hex, octal, or fewer than 4 parts.
_INET_ATON = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)

T = TypeVar("T")  # a destination: a URL, or what names a router (host, port, TLS trust)


class OutboundRefused(Exception):
    """A connection the policy does not allow; the message says why, in our words."""


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations tenant-aimed connections may reach, and how names are resolved."""

    allow: tuple[networks.Network, ...] = ()
    gateway_allow: tuple[networks.Network, ...] = ()
    resolver: Resolver = field(default_factory=lambda: system_resolver)

    @classmethod
    def from_settings(
        cls, allow: str, gateway_allow: str, *, resolver: Resolver | None = None
    ) -> OutboundPolicy:
        """The policy of the two settings (comma-separated CIDRs); ValueError names a bad entry."""
        return cls(
            allow=parse_networks(allow, setting="GUESTGATE_OUTBOUND_ALLOW_NETWORKS"),
            gateway_allow=parse_networks(gateway_allow, setting="GUESTGATE_OUTBOUND_GATEWAY_NETWORKS"),
            resolver=resolver or system_resolver,
        )

    def allowed_networks(self, purpose: Purpose) -> tuple[networks.Network, ...]:
        """The ranges the deployment opened for `purpose`."""
        return self.allow + self.gateway_allow if purpose == "gateway" else self.allow

    def refusal(self, address: Address, purpose: Purpose) -> str | None:
        """Why a connection for `purpose` may not reach `address` ("a loopback address"), or None."""
        allowed = self.allowed_networks(purpose)
        carried = _carried_ipv4(address)
        for candidate in (address, carried):
            if candidate is not None and any(candidate in net for net in allowed):
                return None
        if carried is not None:
            why = _forbidden_range(carried)
            if why is not None:
                return f"an IPv6 form of {carried}, {why}"
        return _forbidden_range(address)

    def vet(self, host: str, port: int, purpose: Purpose) -> list[str]:
        """Every address of `host`, if all may be reached for `purpose`; OutboundRefused otherwise."""
        name = canonical_host(host)
        literal = _literal(name)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                found = self.resolver(name, port)
            except (OSError, UnicodeError) as exc:
                raise OutboundRefused(f"'{name}' does not resolve") from exc
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in dict.fromkeys(found)]
            if not addresses:
                raise OutboundRefused(f"'{name}' does not resolve")
        for address in addresses:
            why = self.refusal(address, purpose)
            if why is not None:
                shown = (
                    f"{address} is {why}" if literal is not None else f"'{name}' resolves to {address}, {why}"
                )
                raise OutboundRefused(f"{shown}; {_purpose_hint(purpose)}")
        return [str(a) for a in addresses]

    def check_host(self, host: str, *, port: int, purpose: Purpose, parameter: str) -> None:
        """ParameterInvalid (naming `parameter`) unless `host` may be reached for `purpose`."""
        try:
            self.vet(host, port, purpose)
        except OutboundRefused as exc:
            raise ParameterInvalid(parameter, f"is refused: {exc}") from exc

    def vet_url(self, url: str, purpose: Purpose) -> list[str]:
        """`vet` for the host of an http(s) URL."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError as exc:
            raise OutboundRefused("the URL cannot be read") from exc
        return self.vet(parts.hostname or "", port, purpose)

    def check_url(self, url: str, *, purpose: Purpose, parameter: str) -> None:
        """ParameterInvalid unless the host of an http(s) URL may be reached for `purpose`."""
        try:
            self.vet_url(url, purpose)
        except OutboundRefused as exc:
            raise ParameterInvalid(parameter, f"is refused: {exc}") from exc

    def transport(
        self,
        purpose: Purpose,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx2.Limits = httpx2.Limits(),
    ) -> httpx2.HTTPTransport:
        """A synchronous httpx2 transport that connects only to addresses the policy allows."""
        transport = httpx2.HTTPTransport(verify=verify, limits=limits, trust_env=False)
        # httpx2 takes no network backend; its pool is replaced by one with the same settings that has ours.
        transport._pool = httpcore2.ConnectionPool(
            **_pool_options(verify, limits), network_backend=_GuardedBackend(self, purpose)
        )
        return transport

    def async_transport(
        self,
        purpose: Purpose,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx2.Limits = httpx2.Limits(),
    ) -> httpx2.AsyncHTTPTransport:
        """An asynchronous httpx2 transport that connects only to addresses the policy allows."""
        transport = httpx2.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
        # httpx2 takes no network backend; its pool is replaced by one with the same settings that has ours.
        transport._pool = httpcore2.AsyncConnectionPool(
            **_pool_options(verify, limits), network_backend=_AsyncGuardedBackend(self, purpose)
        )
        return transport


def _pool_options(verify: ssl.SSLContext | bool, limits: httpx2.Limits) -> dict[str, Any]:
    return {
        "ssl_context": httpx2.create_ssl_context(verify=verify, trust_env=False),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of `host` from the system resolver (getaddrinfo), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def canonical_host(host: str) -> str:
    """The host as it is checked and resolved: an address literal, or a lowercase DNS name.

    OutboundRefused for spellings that name an address indirectly (`0x7f000001`, `2130706433`,
    `0177.0.0.1`, `127.1`), for `localhost` and its subdomains, and for anything that is not a
    DNS name of letters, digits and hyphens. Spaces around a pasted name are trimmed; any other
    white space (a trailing newline, a tab) is refused, not trimmed.
    """
    text = host.strip(" ")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    literal = _literal(text)
    if literal is not None:
        return str(literal)
    try:
        name = text.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError as exc:
        raise OutboundRefused(f"'{text}' is not an IP address or a DNS host name") from exc
    if _INET_ATON.fullmatch(name):
        raise OutboundRefused(f"'{text}' is not a canonical IP address (write it as a.b.c.d)")
    if name == "localhost" or name.endswith(".localhost"):
        raise OutboundRefused(f"'{text}' names this host (loopback)")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise OutboundRefused(f"'{text}' is not an IP address or a DNS host name")
    if labels[-1].isdigit():
        raise OutboundRefused(f"'{text}' is not an IP address or a DNS host name")
    return name


def secret_for_destination(
    destination: T, *, given: str | None, stored: Mapping[T, str], parameter: str, reason: str
) -> str:
    """A secret follows its destination: the given one, else the one stored for this same destination.

    A stored credential is never sent somewhere it was not given for: when the destination
    changed (another URL, host, port or TLS trust), the secret must be given again.
    """
    if given is not None:
        return given
    if destination in stored:
        return stored[destination]
    raise ParameterMissing(parameter, reason=reason)


def describe_failure(exc: BaseException, *, timeout: float | None = None) -> str:
    """What went wrong with an outbound request, in our words (never the remote's)."""
    if isinstance(exc, OutboundRefused):
        return f"refused by the outbound policy: {exc}"
    if isinstance(exc, httpx2.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, httpx2.TimeoutException):
        return f"no answer within {timeout:g} s" if timeout else "no answer in time"
    if isinstance(exc, httpx2.ConnectError):
        cause = _os_error(exc)
        if cause is not None and cause.strerror:
            return f"could not connect ({cause.strerror})"
        return "could not connect"
    if isinstance(exc, httpx2.RemoteProtocolError):
        return "the server did not answer with valid HTTP"
    if isinstance(exc, httpx2.ReadError | httpx2.WriteError):
        return "the connection broke"
    return f"the request failed ({type(exc).__name__})"


def parse_networks(value: str, *, setting: str) -> tuple[networks.Network, ...]:
    """Comma-separated CIDRs (or addresses) as networks; ValueError naming the setting and the entry."""
    found: list[networks.Network] = []
    for item in value.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            found.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{setting}: '{text}' is not an IP address or CIDR") from exc
    return tuple(found)


def _literal(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forbidden_range(address: Address) -> str | None:
    for net, why in _FORBIDDEN:
        if address.version == net.version and address in net:
            return why
    return None


def _carried_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _TRANSLATED or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _purpose_hint(purpose: Purpose) -> str:
    if purpose == "gateway":
        return "a deployment can allow it in GUESTGATE_OUTBOUND_GATEWAY_NETWORKS"
    return "a deployment can allow it in GUESTGATE_OUTBOUND_ALLOW_NETWORKS"


def _os_error(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class _GuardedBackend(httpcore2.SyncBackend):
    """Resolves and vets the name at connect time, then connects to a vetted address."""

    def __init__(self, policy: OutboundPolicy, purpose: Purpose) -> None:
        self.policy = policy
        self.purpose = purpose

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.NetworkStream:
        addresses = self.policy.vet(host, port, self.purpose)
        error: Exception | None = None
        for address in addresses:
            # The TLS handshake that follows still uses the name (httpcore passes it as SNI).
            try:
                return super().connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error


class _AsyncGuardedBackend(httpcore2.AnyIOBackend):
    """The asynchronous `_GuardedBackend`: the name is resolved in a worker thread."""

    def __init__(self, policy: OutboundPolicy, purpose: Purpose) -> None:
        self.policy = policy
        self.purpose = purpose

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await anyio.to_thread.run_sync(
                    self.policy.vet, host, port, self.purpose, abandon_on_cancel=True
                )
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"resolving '{host}' took longer than {timeout:g} s") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await super().connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error
