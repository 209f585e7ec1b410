"""The `routeros` driver: MikroTik RouterOS v7 through its REST API (HTTPS, Basic auth, JSON).

State on the router is firewall address lists (IPv4 under /ip, IPv6 under /ipv6):

    guestgate-allowed             guests let through; `timeout` = time left, comment `guestgate:<session>`
    guestgate-auth-window         guests in their OAuth auth window (timeout)
    guestgate-walled-garden       captive-portal destinations, open to everyone
    guestgate-walled-garden-auth  captive-auth destinations, open to guests in their auth window

Host-name entries of the walled garden are left to the router's own DNS: an exact name is an
address-list entry whose `address` is the name (RouterOS resolves it and keeps dynamic entries
of its addresses, refreshed as their TTL runs out: RouterOS 6.36 and later, all of v7; IPv4 lists
only), and a `*.` wildcard is a `/ip/dns/static` entry `type=FWD`, `match-subdomain=yes`,
`address-list=<list>` (RouterOS v7.6 and later), so every address the router answers for the
domain or a name below it joins the list. Guests must use the router as their DNS server for
wildcards to work. A FWD entry must name where it forwards (`forward-to`): the router's own
upstream, read from `/ip/dns` (its first static `servers` entry, else the first of its
`dynamic-servers`, learnt from DHCP or PPP; RouterOS prefers static servers the same way), so the
wildcards resolve exactly as the router resolves everything else, and an entry is rewritten when
that upstream changes. A router with no upstream at all cannot forward: the sync fails as
misconfigured, naming `/ip dns servers`.

Speed limits and byte counters are one simple queue per guest (`/queue/simple`), whatever its
limits: `name=guestgate-<session>`, `target=<ip>/32` (or `/128`), `max-limit=<upload>/<download>`
in bits per second (`0` is no limit), `comment=guestgate:<session>`. Its `bytes`
("<upload>/<download>") are the session's counters; RouterOS keeps static queues across a reboot
but starts their counters again at 0, and a new session gets a new queue, so its counters start
at 0 too. Queues guestgate did not create are never touched.

The NAT and filter rules that use them come from `rsc.render_script`. RouterOS facts the code
relies on: every value is a string; `.id`s (`*1A`) change across reboots, so entries are always
looked up by list + address or by comment and never cached; an entry with a `timeout` is dynamic
and disappears on expiry and on reboot; adding an address already in a list fails with 400
"already have such entry" (handled by finding the entry and updating it).

TLS is verified by default (system CAs, or the site's CA PEM). With a pinned SHA-256 fingerprint the
chain is not checked; instead the handshake itself compares the peer certificate with the pin (a
custom SSLSocket class on the SSL context), so no request, and no credential, is sent to a router
that does not present the pinned certificate.

The router's address is a tenant's setting: connections go through the outbound policy
(`guestgate.outbound`), which resolves the host when the connection opens and connects only to
an allowed address. Errors name what failed in our words (`the router answered HTTP 401: check
username and password`); the router's own answer is never copied into them, since
`gateway_status.last_error` is shown to the tenant and a host that is not a router would
otherwise read its page back through it. The router's text goes to the log, shortened.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx2
import structlog

from guestgate.gateways.base import (
    GARDEN_ALWAYS,
    GardenEntry,
    GardenName,
    Gateway,
    GatewayHealth,
    GatewayMisconfigured,
    GatewayRejected,
    GatewayUnreachable,
    GuestAccess,
    GuestCounters,
    HeldGuest,
    SyncResult,
    UsageCheck,
    active_guests,
    default_now,
    is_ipv6,
    normalize_ip,
    plan_sync,
    remaining_seconds,
    session_of,
    session_tag,
    split_garden,
    with_fresh_counters,
    without,
)
from guestgate.outbound import OutboundPolicy, OutboundRefused, canonical_host, describe_failure

log = structlog.get_logger(__name__)

ALLOWED_LIST = "guestgate-allowed"
AUTH_WINDOW_LIST = "guestgate-auth-window"
GARDEN_LIST = "guestgate-walled-garden"
AUTH_GARDEN_LIST = "guestgate-walled-garden-auth"
GARDEN_COMMENT = "guestgate:walled-garden"
AUTH_WINDOW_COMMENT = "guestgate:auth-window"
MENUS = {4: "ip/firewall/address-list", 6: "ipv6/firewall/address-list"}
DNS_STATIC = "ip/dns/static"
QUEUES = "queue/simple"
QUEUE_PREFIX = "guestgate-"
_QUEUE_PROPLIST = ".id,name,target,max-limit,bytes,comment"
_RATE = re.compile(r"(\d+)([kMG]?)")
_RATE_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3}
DNS_SETTINGS = "ip/dns"
_PROPLIST = ".id,list,address,timeout,comment,dynamic"
_DNS_PROPLIST = ".id,name,type,address-list,match-subdomain,forward-to,comment"
_DUPLICATE = "already have such entry"
_DURATION_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_CLOCK = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(\d+):(\d{2}):(\d{2})")
# How much of a router's refusal is logged (never stored or shown through the API).
_LOGGED_DETAIL_CHARS = 200
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


class _NotFound(GatewayRejected):
    """404: the `.id` is gone (expired or removed since it was read)."""


class _Duplicate(GatewayRejected):
    """400 "already have such entry"."""


class RouterOSGateway(Gateway):
    """Enforces access on a MikroTik router through its REST API, over one reused HTTPS connection."""

    driver = "routeros"

    def __init__(
        self,
        *,
        host: str,
        username: str,
        password: str,
        outbound: OutboundPolicy,
        port: int = 443,
        tls_verify: bool = True,
        ca_pem: str | None = None,
        pinned_sha256: str | None = None,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        dns_forward_to: str | None = None,
    ) -> None:
        self.host = host
        # Where wildcard FWD entries forward; None: the router's own upstream (see the module docstring).
        self.dns_forward_to = dns_forward_to
        # Static DNS entries are read on the first push, then only while wildcards exist.
        self._dns_checked = False
        self.port = port
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        try:
            name = canonical_host(host)
        except OutboundRefused as exc:
            raise GatewayMisconfigured(f"the router host is not usable: {exc}") from exc
        netloc = f"[{name}]" if ":" in name else name
        self.timeout = timeout
        self._client = httpx2.Client(
            base_url=f"https://{netloc}:{port}/rest",
            auth=httpx2.BasicAuth(username, password),
            timeout=httpx2.Timeout(timeout, connect=connect_timeout),
            transport=outbound.transport(
                "gateway",
                verify=tls_context(tls_verify=tls_verify, ca_pem=ca_pem, pinned_sha256=pinned_sha256),
                limits=httpx2.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=30.0),
            ),
            headers={"Accept": "application/json"},
            # The router is reached directly: a proxy from the environment would see the credentials.
            trust_env=False,
        )

    # -- the interface ---------------------------------------------------------------------

    def allow(self, guest: GuestAccess, *, now: datetime | None = None) -> None:
        """Add the guest to guestgate-allowed with the time it has left (or update its entry)."""
        seconds = remaining_seconds(guest.until, now=default_now(now))
        self._upsert(ALLOWED_LIST, guest.ip, seconds=seconds, comment=session_tag(guest.session_id))
        self._put_queue(guest)

    def revoke(self, session_id: str, ip: str) -> None:
        """Remove the session's entries for `ip` (found by their comment)."""
        key = normalize_ip(ip)
        family = _family(key)
        found = self._get(MENUS[family], {"list": ALLOWED_LIST, "comment": session_tag(session_id)})
        for entry in found:
            if normalize_ip(entry["address"]) == key:
                self._remove(family, entry[".id"])
        for queue in self._queues({"comment": session_tag(session_id)}):
            self._remove_queue(queue[".id"])

    def open_auth_window(self, ip: str, seconds: int) -> None:
        """Add `ip` to guestgate-auth-window for `seconds`."""
        self._upsert(AUTH_WINDOW_LIST, ip, seconds=max(1, seconds), comment=AUTH_WINDOW_COMMENT)

    def replace_walled_garden(
        self, entries: Sequence[GardenEntry | tuple[str, str | None]], names: Sequence[GardenName] = ()
    ) -> None:
        """Make both walled-garden lists hold exactly `entries` and `names` (entries guestgate did not add stay)."""
        always, auth = split_garden(entries)
        for name, values in ((GARDEN_LIST, always), (AUTH_GARDEN_LIST, auth)):
            exact = {n.hostname for n in names if not n.wildcard and _list_of(n) == name}
            for family, menu in MENUS.items():
                want = {v for v in values if _family(v) == family}
                have: set[str] = set()
                have_names: set[str] = set()
                for entry in self._get(menu, {"list": name}):
                    if entry.get("dynamic") == "true":
                        continue  # what RouterOS resolved for a name entry: it keeps those itself
                    address = _address_or_name(entry["address"])
                    if address in want or (family == 4 and address in exact):
                        (have if address in want else have_names).add(address)
                    elif entry.get("comment") == GARDEN_COMMENT:
                        self._remove(family, entry[".id"])
                for address in sorted(want - have):
                    self._upsert(name, address, seconds=None, comment=GARDEN_COMMENT)
                if family == 4:
                    for hostname in sorted(exact - have_names):
                        body = {"list": name, "address": hostname, "comment": GARDEN_COMMENT}
                        with contextlib.suppress(_Duplicate):
                            self._request("PUT", menu, json=body)
        self._replace_wildcards(names)

    def _replace_wildcards(self, names: Sequence[GardenName]) -> None:
        want = {(n.hostname[2:], _list_of(n)) for n in names if n.wildcard}
        if not want and self._dns_checked:
            return
        have: set[tuple[str, str]] = set()
        forward_to = self._forward_to() if want else ""
        found = self._request(
            "GET", DNS_STATIC, params={"comment": GARDEN_COMMENT, ".proplist": _DNS_PROPLIST}
        )
        for entry in found if isinstance(found, list) else []:
            key = (str(entry.get("name", "")), str(entry.get("address-list", "")))
            if key in want and entry.get("type") == "FWD" and entry.get("forward-to") == forward_to:
                have.add(key)
            else:
                with contextlib.suppress(_NotFound):
                    self._request("DELETE", f"{DNS_STATIC}/{entry['.id']}")
        for domain, list_name in sorted(want - have):
            self._request(
                "PUT",
                DNS_STATIC,
                json={
                    "name": domain,
                    "type": "FWD",
                    "forward-to": forward_to,
                    "address-list": list_name,
                    "match-subdomain": "yes",
                    "comment": GARDEN_COMMENT,
                },
            )
        self._dns_checked = not want

    def _forward_to(self) -> str:
        """Where FWD entries forward: the configured override, else the router's own first upstream."""
        if self.dns_forward_to:
            return self.dns_forward_to
        settings = self._request("GET", DNS_SETTINGS, params={".proplist": "servers,dynamic-servers"})
        settings = settings if isinstance(settings, dict) else {}
        for key in ("servers", "dynamic-servers"):
            servers = [s.strip() for s in str(settings.get(key) or "").split(",") if s.strip()]
            if servers:
                return servers[0]
        raise GatewayMisconfigured(
            "the router has no DNS server (/ip dns servers, or one learnt by DHCP): wildcard walled-garden "
            "names are forwarded to it"
        )

    def list_allowed(self) -> list[HeldGuest]:
        """The entries of guestgate-allowed tagged with a session, with the timeout they have left."""
        return self._held()[0]

    def read_counters(self) -> dict[str, GuestCounters]:
        """The `bytes` of guestgate's queues, by session id."""
        return _queue_usage(self._queues())

    def health(self) -> GatewayHealth:
        """Check the REST API answers with these credentials."""
        resource = self._request("GET", "system/resource")
        version = resource.get("version", "?") if isinstance(resource, dict) else "?"
        board = resource.get("board-name", "?") if isinstance(resource, dict) else "?"
        return GatewayHealth(state="ok", detail=f"RouterOS {version} on {board}")

    def close(self) -> None:
        """Close the HTTPS connection pool."""
        self._client.close()

    def sync(
        self,
        desired_guests: Sequence[GuestAccess],
        walled_garden: Sequence[GardenEntry | tuple[str, str | None]],
        *,
        now: datetime,
        names: Sequence[GardenName] = (),
        check: UsageCheck | None = None,
    ) -> SyncResult:
        """Read each list and the queues once, then send only the changes (updates go straight to the `.id` just read).

        The sessions `check` picks from the queues' counters are left out, so they are dropped
        in this same sync.

        One request per change, so thousands of them take a while; each timeout is computed when
        its request leaves (`now` plus the time spent so far), or the last entries would outlive
        their sessions by the length of the run.
        """
        started = time.monotonic()

        def current() -> datetime:
            return now + timedelta(seconds=time.monotonic() - started)

        ours, foreign = self._held()
        queues = self._queues()
        usage = with_fresh_counters(_queue_usage(queues), desired_guests)
        dropped = frozenset(check(usage)) if check is not None else frozenset()
        desired = without(desired_guests, dropped)
        plan = plan_sync(ours, desired, now=now, foreign=foreign)
        for held in plan.remove:
            family, entry_id = _split_ref(held)
            self._remove(family, entry_id)
        for held, guest in plan.update:
            family, entry_id = _split_ref(held)
            seconds = remaining_seconds(guest.until, now=current())
            body = {"timeout": format_duration(seconds), "comment": session_tag(guest.session_id)}
            try:
                self._request("PATCH", f"{MENUS[family]}/{entry_id}", json=body)
            except _NotFound:
                self.allow(guest, now=current())
        for guest in plan.add:
            seconds = remaining_seconds(guest.until, now=current())
            self._upsert(ALLOWED_LIST, guest.ip, seconds=seconds, comment=session_tag(guest.session_id))
        taken = {normalize_ip(ip) for ip in foreign}
        wanted = [g for k, g in active_guests(desired, now=now).items() if k not in taken]
        self._sync_queues(queues, wanted)
        self.replace_walled_garden(walled_garden, names)
        return SyncResult(
            added=len(plan.add),
            removed=len(plan.remove),
            updated=len(plan.update),
            usage=usage,
            dropped=dropped,
        )

    # -- simple queues ---------------------------------------------------------------------

    def _queues(self, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """guestgate's simple queues (tagged with a session)."""
        found = self._request("GET", QUEUES, params={**(params or {}), ".proplist": _QUEUE_PROPLIST})
        if not isinstance(found, list):
            raise GatewayRejected(f"RouterOS answered GET /{QUEUES} with {type(found).__name__}, not a list")
        return [q for q in found if session_of(q.get("comment")) is not None]

    def _sync_queues(self, queues: list[dict[str, Any]], wanted: Sequence[GuestAccess]) -> None:
        by_session: dict[str, dict[str, Any]] = {}
        for queue in queues:
            session_id = session_of(queue.get("comment"))
            if session_id is None or session_id in by_session:
                self._remove_queue(queue[".id"])
                continue
            by_session[session_id] = queue
        keep = {g.session_id for g in wanted}
        for session_id, queue in by_session.items():
            if session_id not in keep:
                self._remove_queue(queue[".id"])
        for guest in wanted:
            found = by_session.get(guest.session_id)
            if found is None:
                self._put_queue(guest)
                continue
            queue = found
            body = _queue_body(guest)
            same_target = _target_of(str(queue.get("target", ""))) == normalize_ip(guest.ip)
            if not same_target or parse_max_limit(str(queue.get("max-limit", ""))) != max_limit_of(guest):
                try:
                    self._request(
                        "PATCH",
                        f"{QUEUES}/{queue['.id']}",
                        json={"target": body["target"], "max-limit": body["max-limit"]},
                    )
                except _NotFound:
                    self._put_queue(guest)

    def _put_queue(self, guest: GuestAccess) -> None:
        body = _queue_body(guest)
        try:
            self._request("PUT", QUEUES, json=body)
            return
        except _NotFound:
            raise
        except GatewayRejected:
            # Refused (a queue of that name exists: the session's own, from an earlier add): set
            # that one instead; anything else is raised again.
            found = self._queues({"comment": body["comment"]})
            if not found:
                raise
        self._request(
            "PATCH",
            f"{QUEUES}/{found[0]['.id']}",
            json={"target": body["target"], "max-limit": body["max-limit"]},
        )

    def _remove_queue(self, queue_id: str) -> None:
        with contextlib.suppress(_NotFound):
            self._request("DELETE", f"{QUEUES}/{queue_id}")

    # -- address-list entries --------------------------------------------------------------

    def _held(self) -> tuple[list[HeldGuest], list[str]]:
        ours: list[HeldGuest] = []
        foreign: list[str] = []
        for family, menu in MENUS.items():
            for entry in self._get(menu, {"list": ALLOWED_LIST}):
                session_id = session_of(entry.get("comment"))
                if session_id is None:
                    foreign.append(entry["address"])
                    continue
                ours.append(
                    HeldGuest(
                        session_id=session_id,
                        ip=normalize_ip(entry["address"]),
                        remaining=parse_duration(entry["timeout"]) if entry.get("timeout") else None,
                        ref=f"{family}:{entry['.id']}",
                    )
                )
        return ours, foreign

    def _upsert(self, list_name: str, address: str, *, seconds: int | None, comment: str) -> None:
        key = normalize_ip(address)
        family = _family(key)
        body = {"list": list_name, "address": key, "comment": comment}
        if seconds is not None:
            body["timeout"] = format_duration(seconds)
        try:
            self._request("PUT", MENUS[family], json=body)
            return
        except _Duplicate:
            pass
        for entry in self._find(family, list_name, key):
            if not (entry.get("comment") or "").startswith("guestgate:"):
                # Someone else listed this address on purpose; their entry already lets it through.
                log.warning("gateway.routeros.foreign_entry", list=list_name, address=key, host=self.host)
                return
            patch = {k: v for k, v in body.items() if k in ("timeout", "comment")}
            try:
                self._request("PATCH", f"{MENUS[family]}/{entry['.id']}", json=patch)
                return
            except _NotFound:
                break
        # The entry expired between the failed add and the lookup: add it again.
        self._request("PUT", MENUS[family], json=body)

    def _find(self, family: int, list_name: str, address: str) -> list[dict[str, Any]]:
        found = [
            e
            for e in self._get(MENUS[family], {"list": list_name, "address": address})
            if normalize_ip(e["address"]) == address
        ]
        if found:
            return found
        # RouterOS may print an address in another form (`/128`); compare parsed addresses instead.
        return [
            e for e in self._get(MENUS[family], {"list": list_name}) if normalize_ip(e["address"]) == address
        ]

    def _remove(self, family: int, entry_id: str) -> None:
        # A 404 means it is already gone: expired or removed meanwhile.
        with contextlib.suppress(_NotFound):
            self._request("DELETE", f"{MENUS[family]}/{entry_id}")

    def _get(self, menu: str, params: dict[str, str]) -> list[dict[str, Any]]:
        found = self._request("GET", menu, params={**params, ".proplist": _PROPLIST})
        if not isinstance(found, list):
            raise GatewayRejected(f"RouterOS answered GET /{menu} with {type(found).__name__}, not a list")
        return found

    # -- HTTP ------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> Any:
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, "/" + path, params=params, json=json)
            except OutboundRefused as exc:
                raise GatewayMisconfigured(
                    f"the router at {self.host}:{self.port} is {describe_failure(exc)}"
                ) from exc
            except httpx2.TransportError as exc:
                tls = _tls_error(exc)
                if tls is not None:
                    raise GatewayMisconfigured(
                        f"TLS verification of {self.host}:{self.port} failed: {tls}"
                    ) from exc
                failure = describe_failure(exc, timeout=self.timeout)
                continue
            if response.status_code >= 500:
                self._log_refusal(response, method, path)
                failure = f"the router answered HTTP {response.status_code}"
                continue
            return self._answer(response, method, path)
        raise GatewayUnreachable(
            f"RouterOS at {self.host}:{self.port} did not answer {method} /{path} "
            f"after {self.retries + 1} attempts ({failure})"
        )

    def _answer(self, response: httpx2.Response, method: str, path: str) -> Any:
        status = response.status_code
        if status == 401:
            raise GatewayMisconfigured(
                f"the router at {self.host} answered HTTP 401: check username and password"
            )
        if status == 403:
            raise GatewayMisconfigured(
                f"the router at {self.host} answered HTTP 403: the user needs the read, write, api and "
                "rest-api policies"
            )
        if status == 404:
            raise _NotFound(f"the router has no /{path} (HTTP 404)")
        if 300 <= status < 400:
            # Not followed (the policy would vet the new address, but a REST API does not redirect);
            # an empty 302 must not pass for a done PUT.
            raise GatewayMisconfigured(
                f"{self.host}:{self.port} answered HTTP {status} (redirects are not followed); "
                "is it the RouterOS REST API?"
            )
        if status >= 400:
            if _DUPLICATE in _detail(response):
                raise _Duplicate(f"the router already holds that entry ({method} /{path})")
            self._log_refusal(response, method, path)
            raise GatewayRejected(
                f"the router refused {method} /{path} with HTTP {status}; the log has its reason"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise GatewayMisconfigured(
                f"{self.host}:{self.port} did not answer with JSON; is it the RouterOS REST API?"
            ) from exc

    def _log_refusal(self, response: httpx2.Response, method: str, path: str) -> None:
        # The router's words go to the deployment's log only, shortened and on one line.
        detail = " ".join(_detail(response)[:_LOGGED_DETAIL_CHARS].split())
        log.warning(
            "gateway.routeros.refused",
            host=self.host,
            method=method,
            path=path,
            status=response.status_code,
            detail=detail,
        )


def tls_context(*, tls_verify: bool, ca_pem: str | None, pinned_sha256: str | None) -> ssl.SSLContext:
    """The SSL context for a router: a pinned certificate, a given CA, the system CAs, or (opt-out) none."""
    if pinned_sha256:
        digest = _parse_fingerprint(pinned_sha256)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.sslsocket_class = type("PinnedSSLSocket", (_PinnedSSLSocket,), {"pinned": digest})
    elif not tls_verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_pem:
        try:
            context = ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise GatewayMisconfigured(f"the CA certificate is not usable PEM: {exc}") from exc
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _PinnedSSLSocket(ssl.SSLSocket):
    """Fails the handshake unless the peer's certificate has the pinned SHA-256 digest."""

    pinned: ClassVar[bytes] = b""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        der = self.getpeercert(binary_form=True)
        if der is None or not hmac.compare_digest(hashlib.sha256(der).digest(), self.pinned):
            seen = hashlib.sha256(der).hexdigest() if der else "none"
            raise ssl.SSLCertVerificationError(
                f"certificate SHA-256 {seen} does not match the pinned fingerprint"
            )


def _parse_fingerprint(text: str) -> bytes:
    cleaned = text.replace(":", "").replace(" ", "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", cleaned):
        raise GatewayMisconfigured("pinned_sha256 must be 64 hex digits (colons allowed)")
    return bytes.fromhex(cleaned)


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _detail(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("message") or body)
    return str(body)[:200]


def _list_of(name: GardenName) -> str:
    return GARDEN_LIST if name.type == GARDEN_ALWAYS else AUTH_GARDEN_LIST


def _address_or_name(value: str) -> str:
    try:
        return normalize_ip(value)
    except ValueError:
        return value.strip().lower().rstrip(".")


def _family(value: str) -> int:
    return 6 if is_ipv6(value) else 4


def _split_ref(held: HeldGuest) -> tuple[int, str]:
    assert held.ref is not None, "held entries of this driver carry their .id"
    family, entry_id = held.ref.split(":", 1)
    return int(family), entry_id


def max_limit_of(guest: GuestAccess) -> tuple[int, int]:
    """The guest's (upload, download) limits in bits per second; 0 is no limit."""
    return (
        (guest.upload_kbps or 0) * 1000 if (guest.upload_kbps or 0) > 0 else 0,
        (guest.download_kbps or 0) * 1000 if (guest.download_kbps or 0) > 0 else 0,
    )


def parse_rate(text: str) -> int:
    """A RouterOS rate in bits per second, as written or printed (`2000000`, `2M`, `512k`)."""
    match = _RATE.fullmatch(text.strip())
    if match is None:
        raise GatewayRejected("the router printed a rate that is not one RouterOS prints")
    return int(match.group(1)) * _RATE_UNITS[match.group(2)]


def parse_max_limit(text: str) -> tuple[int, int] | None:
    """A queue's `max-limit` (`<upload>/<download>`) in bits per second, or None when it is unreadable."""
    up, sep, down = text.partition("/")
    try:
        return (parse_rate(up), parse_rate(down)) if sep else None
    except GatewayRejected:
        return None


def parse_bytes(text: str) -> tuple[int, int] | None:
    """A queue's `bytes` (`<upload>/<download>`), or None when it is unreadable."""
    up, sep, down = text.partition("/")
    if not sep or not up.strip().isdigit() or not down.strip().isdigit():
        return None
    return int(up), int(down)


def _queue_body(guest: GuestAccess) -> dict[str, str]:
    key = normalize_ip(guest.ip)
    up, down = max_limit_of(guest)
    return {
        "name": QUEUE_PREFIX + guest.session_id,
        "target": f"{key}/{128 if _family(key) == 6 else 32}",
        "max-limit": f"{up}/{down}",
        "comment": session_tag(guest.session_id),
    }


def _target_of(text: str) -> str | None:
    # One address (RouterOS may list several, comma-separated); a queue of several is not ours.
    try:
        return normalize_ip(text) if "," not in text else None
    except ValueError:
        return None


def _queue_usage(queues: Sequence[dict[str, Any]]) -> dict[str, GuestCounters]:
    found: dict[str, GuestCounters] = {}
    for queue in queues:
        session_id = session_of(queue.get("comment"))
        counts = parse_bytes(str(queue.get("bytes", "")))
        if session_id is not None and counts is not None:
            found[session_id] = GuestCounters(bytes_in=counts[0], bytes_out=counts[1])
    return found


def format_duration(seconds: int) -> str:
    """A RouterOS duration: 5430 -> `1h30m30s`, 86400 -> `1d`."""
    seconds = max(0, int(seconds))
    if seconds == 0:
        return "0s"
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        amount, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def parse_duration(text: str) -> timedelta:
    """A RouterOS duration as printed (`1w2d3h4m5s`, `59m58s`, `500ms`, `1d02:03:04`)."""
    value = text.strip()
    clock = _CLOCK.fullmatch(value)
    if clock:
        weeks, days, hours, minutes, secs = (int(g) if g else 0 for g in clock.groups())
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=secs)
    total = timedelta()
    position = 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        amount, unit = int(match.group(1)), match.group(2)
        total += (
            timedelta(milliseconds=amount)
            if unit == "ms"
            else timedelta(seconds=amount * _UNIT_SECONDS[unit])
        )
        position = match.end()
    if position != len(value) or not value:
        # Not quoted: the message reaches last_error, and the host answering may not be a router.
        raise GatewayRejected("the router printed a duration that is not one RouterOS prints")
    return total
