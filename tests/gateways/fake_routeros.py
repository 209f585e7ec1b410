"""A fake MikroTik RouterOS v7 REST server, for driving the routeros gateway driver in tests.

It follows the documented behaviour of `/rest/ip/firewall/address-list` (and `/ipv6/...`):
HTTP Basic auth (401 otherwise); every value is a string; `.id`s look like `*1A`; GET takes query
filters (`?list=..&address=..`, `.proplist`); PUT adds and returns the created object; adding an
address already in the list answers 400 `failure: already have such entry`; an unknown `.id`
answers 404; PATCH sets, DELETE removes. An entry with a `timeout` is dynamic: it disappears when
the timeout runs out (on the fake's clock) and on `reboot()`, which also gives every remaining
entry a new `.id` and drops open connections. `/rest/system/resource` answers like a CHR.

Walled-garden host names, as RouterOS documents them: an IPv4 address-list entry's `address` may
be a DNS name (6.36+); the router resolves it (here: through `dns`, name -> addresses, set by
the test) and adds a dynamic entry per address to the same list. `/rest/ip/dns` answers the DNS
settings (`servers`, and the read-only `dynamic-servers`). `/rest/ip/dns/static` holds
static DNS entries (v7): `type=FWD` needs `forward-to`; with `address-list=` every address the
router answers for `name` (and, with `match-subdomain=yes`, for names below it) joins that list
as a dynamic entry; `answer(name)` stands for a guest's query through the router's DNS.

`/rest/queue/simple` holds simple queues (static: they survive `reboot()`, but their counters
start again at 0 and their `.id`s change): PUT needs `target` (addresses, stored as `a.b.c.d/32`)
and takes `name` (unique: a second one answers 400 `failure: already have such name`; without
one the router names it `queue<N>`), `max-limit` (`<upload>/<download>` bits per second, `k`/`M`/`G`
suffixes allowed, printed with them, `0` for unlimited), `comment`; `bytes` and `packets` are
`<upload>/<download>` and read-only; `traffic(ip, up, down)` stands for a guest's traffic through
the queue that targets it.

A single IPv6 address is printed with its `/128`, so a client cannot rely on the string it sent.
Every request is counted (`requests`), as are TLS connections (`connections`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from guestgate.sites.schemas import GatewayIn

MENUS = ("ip/firewall/address-list", "ipv6/firewall/address-list")
DNS_STATIC = "ip/dns/static"
_HOSTNAME = re.compile(r"(?=.*[a-z])[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})+")
DUPLICATE = "failure: already have such entry"
QUEUES = "queue/simple"
DUPLICATE_NAME = "failure: already have such name"
_RATE = re.compile(r"(\d+)([kMG]?)")
_RATE_SIZES = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3}
_QUEUE_READ_ONLY = ("bytes", "packets", "dynamic", ".id")
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


class FakeClock:
    """Seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Tls:
    """A CA and a server certificate for 127.0.0.1 signed by it, as files and PEM text."""

    ca_pem: str
    cert_file: Path
    key_file: Path
    fingerprint: str


def make_tls(directory: Path, *, common_name: str = "fake-routeros") -> Tls:
    """A fresh CA and a server certificate (SAN 127.0.0.1) written to `directory`."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{common_name}.crt"
    key_file = directory / f"{common_name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Tls(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert_file=cert_file,
        key_file=key_file,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


def routeros_duration(seconds: float) -> str:
    """Seconds as RouterOS prints a duration: `1w2d3h4m5s`, `59m58s`."""
    left = int(seconds)
    if left <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        amount, left = divmod(left, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def read_duration(text: str) -> int:
    """A RouterOS duration argument (`1h30m`, `45s`, `00:01:00`) in seconds; ValueError otherwise."""
    clock = re.fullmatch(r"(\d+):(\d{2}):(\d{2})", text)
    if clock:
        hours, minutes, secs = (int(g) for g in clock.groups())
        return hours * 3600 + minutes * 60 + secs
    if not re.fullmatch(r"(\d+[wdhms])+", text):
        raise ValueError(text)
    sizes = dict(_UNITS)
    return sum(int(n) * sizes[u] for n, u in re.findall(r"(\d+)([wdhms])", text))


class FakeRouterOS:
    """The router: address lists per menu, a clock, credentials, and the HTTPS server in a thread."""

    def __init__(self, tls: Tls, *, username: str = "guestgate", password: str = "s3cret!") -> None:
        self.username = username
        self.password = password
        self.tls = tls
        self.clock = FakeClock()
        self.lists: dict[str, dict[str, dict[str, Any]]] = {menu: {} for menu in MENUS}
        self.dns_static: dict[str, dict[str, str]] = {}
        self.queues: dict[str, dict[str, str]] = {}
        self._queue_names: dict[str, str] = {}
        # What the router's resolver answers: name -> IPv4 addresses (set by the test).
        self.dns: dict[str, list[str]] = {}
        # `/ip dns` (as printed: comma-separated lists); `dynamic-servers` is read-only, learnt by DHCP.
        self.dns_settings: dict[str, str] = {
            "servers": "",
            "dynamic-servers": "192.0.2.53,192.0.2.54",
            "allow-remote-requests": "true",
        }
        self.requests: list[tuple[str, str]] = []
        self.connections = 0
        self.failures: list[int] = []
        self._next_id = 0x1A
        self._lock = threading.RLock()
        self._open: set[socket.socket] = set()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        self._server = _Server(("127.0.0.1", 0), _Handler, router=self, context=context)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> FakeRouterOS:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._drop_connections()

    # -- what tests use to arrange and inspect ------------------------------------------------

    def site_gateway(self, *, port: int | None = None) -> GatewayIn:
        """A site's gateway settings for this router (or a proxy in front of it on `port`), trusting its CA."""
        return GatewayIn(
            driver="routeros",
            host="127.0.0.1",
            port=port or self.port,
            username=self.username,
            password=self.password,
            ca_pem=self.tls.ca_pem,
        )

    def add(self, menu: str = MENUS[0], **fields: str) -> dict[str, Any]:
        """Put an entry straight into the router, as an operator would."""
        with self._lock:
            return self._add(menu, dict(fields))

    def entries(self, list_name: str, menu: str = MENUS[0]) -> list[dict[str, Any]]:
        """What `print where list=...` shows now."""
        with self._lock:
            self._expire()
            return [self._show(e) for e in self.lists[menu].values() if e["list"] == list_name]

    def queue_entries(self) -> list[dict[str, str]]:
        """The simple queues, as printed."""
        with self._lock:
            return [dict(q) for q in self.queues.values()]

    def traffic(self, ip: str, upload: int, download: int) -> None:
        """Bytes from (`upload`) and to (`download`) the guest `ip` through the first queue targeting it."""
        with self._lock:
            for queue in self.queues.values():
                if any(ipaddress.ip_address(ip) in net for net in _targets(queue["target"])):
                    up, down = (int(v) for v in queue["bytes"].split("/"))
                    queue["bytes"] = f"{up + upload}/{down + download}"
                    return

    def reboot(self) -> None:
        """Dynamic (timeout) entries vanish, the rest get new `.id`s, queue counters restart, connections drop."""
        with self._lock:
            self._next_id += 0x100
            queues = list(self.queues.values())
            self.queues = {}
            for queue in queues:
                queue.update({".id": self._new_id(), "bytes": "0/0", "packets": "0/0"})
                self.queues[queue[".id"]] = queue
                self._queue_names[queue["name"]] = queue[".id"]
            for menu, entries in self.lists.items():
                kept = [e for e in entries.values() if e["_deadline"] is None]
                self.lists[menu] = {}
                for entry in kept:
                    entry[".id"] = self._new_id()
                    self.lists[menu][entry[".id"]] = entry
        self._drop_connections()

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next `count` requests with `status` (e.g. 503 while the router is busy, or 400)."""
        with self._lock:
            self.failures.extend([status] * count)

    def count(self, method: str | None = None) -> int:
        """Requests received (of one method)."""
        return sum(1 for m, _ in self.requests if method is None or m == method)

    # -- the REST behaviour -------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        with self._lock:
            self.requests.append((method, path))
            if self.failures:
                status = self.failures.pop(0)
                if status >= 500:
                    return status, {"error": status, "message": "Internal Server Error"}
                return status, {
                    "error": status,
                    "message": "Bad Request",
                    "detail": "failure: injected by the test",
                }
            self._expire()
            if path == "system/resource" and method == "GET":
                return 200, {
                    "version": "7.16.2 (stable)",
                    "board-name": "CHR",
                    "uptime": "1d2h3m4s",
                    "cpu-load": "1",
                }
            if path == "ip/dns" and method == "GET":
                wanted = query.get(".proplist")
                shown = {k: v for k, v in self.dns_settings.items() if not wanted or k in wanted.split(",")}
                return 200, shown
            menu, _, entry_id = path.partition("/*")
            entry_id = "*" + entry_id if entry_id else ""
            if menu == DNS_STATIC:
                return self._dns_static(method, entry_id, query, body)
            if menu == QUEUES:
                return self._queue(method, entry_id, query, body)
            if menu not in self.lists:
                return 400, {"error": 400, "message": "Bad Request", "detail": "no such command or directory"}
            entries = self.lists[menu]
            if not entry_id:
                if method == "GET":
                    return 200, self._print(entries, query)
                if method == "PUT":
                    return self._put(menu, body)
                return 400, {"error": 400, "message": "Bad Request", "detail": "no such command"}
            entry = entries.get(entry_id)
            if entry is None:
                return 404, {"error": 404, "message": "Not Found"}
            if method == "GET":
                return 200, self._show(entry)
            if method == "DELETE":
                del entries[entry_id]
                return 204, None
            if method == "PATCH":
                return self._patch(menu, entry, body)
            return 400, {"error": 400, "message": "Bad Request", "detail": "no such command"}

    def answer(self, name: str) -> list[str]:
        """A guest's query for `name` through the router's DNS: FWD entries' address lists fill up."""
        with self._lock:
            found = list(self.dns.get(name, []))
            for entry in self.dns_static.values():
                domain = entry["name"]
                matches = name == domain or (
                    entry.get("match-subdomain") == "yes" and name.endswith("." + domain)
                )
                if entry.get("type") == "FWD" and matches and entry.get("address-list"):
                    for address in found:
                        self._add_dynamic(MENUS[0], entry["address-list"], address)
            return found

    def dns_entries(self) -> list[dict[str, str]]:
        """The static DNS entries, as printed."""
        with self._lock:
            return [dict(e) for e in self.dns_static.values()]

    def _dns_static(self, method: str, entry_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not entry_id:
            if method == "GET":
                wanted = query.get(".proplist")
                filters = {k: v for k, v in query.items() if not k.startswith(".")}
                shown = [
                    {k: v for k, v in e.items() if not wanted or k in wanted.split(",")}
                    for e in self.dns_static.values()
                    if all(e.get(k) == v for k, v in filters.items())
                ]
                return 200, shown
            if method == "PUT":
                problem = _invalid_dns(body)
                if problem:
                    return 400, {"error": 400, "message": "Bad Request", "detail": problem}
                entry = {".id": self._new_id(), **body, "disabled": "false", "dynamic": "false"}
                entry.setdefault("match-subdomain", "no")
                self.dns_static[entry[".id"]] = entry
                return 200, dict(entry)
            return 400, {"error": 400, "message": "Bad Request", "detail": "no such command"}
        if entry_id not in self.dns_static:
            return 404, {"error": 404, "message": "Not Found"}
        if method == "DELETE":
            del self.dns_static[entry_id]
            return 204, None
        if method == "GET":
            return 200, dict(self.dns_static[entry_id])
        return 400, {"error": 400, "message": "Bad Request", "detail": "no such command"}

    def _queue(self, method: str, entry_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        bad = {"error": 400, "message": "Bad Request"}
        if not entry_id:
            if method == "GET":
                wanted = query.get(".proplist")
                filters = {k: v for k, v in query.items() if not k.startswith(".")}
                return 200, [
                    {k: v for k, v in q.items() if not wanted or k in wanted.split(",")}
                    for q in self.queues.values()
                    if all(q.get(k) == v for k, v in filters.items())
                ]
            if method == "PUT":
                problem = _invalid_queue(body, creating=True)
                if problem:
                    return 400, {**bad, "detail": problem}
                name = body.get("name") or f"queue{len(self.queues) + 1}"
                if self._queue_named(name) is not None:
                    return 400, {**bad, "detail": DUPLICATE_NAME}
                queue = {
                    ".id": self._new_id(),
                    "name": name,
                    "target": "",
                    "parent": "none",
                    "max-limit": "0/0",
                    "limit-at": "0/0",
                    "bytes": "0/0",
                    "packets": "0/0",
                    "disabled": "false",
                    "dynamic": "false",
                }
                _set_queue(queue, body)
                self.queues[queue[".id"]] = queue
                self._queue_names[queue["name"]] = queue[".id"]
                return 200, dict(queue)
            return 400, {**bad, "detail": "no such command"}
        queue = self.queues.get(entry_id)
        if queue is None:
            return 404, {"error": 404, "message": "Not Found"}
        if method == "GET":
            return 200, dict(queue)
        if method == "DELETE":
            del self.queues[entry_id]
            return 204, None
        if method == "PATCH":
            problem = _invalid_queue(body, creating=False)
            if problem:
                return 400, {**bad, "detail": problem}
            if "name" in body and self._queue_named(body["name"]) not in (None, queue):
                return 400, {**bad, "detail": DUPLICATE_NAME}
            _set_queue(queue, body)
            self._queue_names[queue["name"]] = queue[".id"]
            return 200, dict(queue)
        return 400, {**bad, "detail": "no such command"}

    def _queue_named(self, name: str) -> dict[str, str] | None:
        # An index by name (kept on add and rename, checked on use), so 10,000 adds are not
        # 10,000 scans of the queues (the bench).
        found = self._queue_names.get(name)
        queue = self.queues.get(found) if found is not None else None
        if queue is None or queue["name"] != name:
            self._queue_names.pop(name, None)
            return None
        return queue

    def _add_dynamic(self, menu: str, list_name: str, address: str) -> None:
        stored = _stored_address(address)
        if any(e["list"] == list_name and e["address"] == stored for e in self.lists[menu].values()):
            return
        entry = self._add(menu, {"list": list_name, "address": stored})
        entry["_dynamic"] = True

    def _print(self, entries: dict[str, dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
        shown = []
        wanted = query.get(".proplist")
        filters = {k: v for k, v in query.items() if not k.startswith(".")}
        for entry in entries.values():
            view = self._show(entry)
            if all(view.get(k) == v for k, v in filters.items()):
                if wanted:
                    view = {k: v for k, v in view.items() if k in wanted.split(",")}
                shown.append(view)
        return shown

    def _put(self, menu: str, body: Any) -> tuple[int, Any]:
        problem = self._invalid(body, creating=True)
        if problem:
            return 400, {"error": 400, "message": "Bad Request", "detail": problem}
        address = _stored_address(body["address"])
        for entry in self.lists[menu].values():
            if entry["list"] == body["list"] and entry["address"] == address:
                return 400, {"error": 400, "message": "Bad Request", "detail": DUPLICATE}
        added = self._add(menu, body)
        if _HOSTNAME.fullmatch(address):
            # The router resolves the name and lists each address as a dynamic entry.
            for resolved in self.dns.get(address, []):
                self._add_dynamic(menu, body["list"], resolved)
        return 200, self._show(added)

    def _patch(self, menu: str, entry: dict[str, Any], body: Any) -> tuple[int, Any]:
        problem = self._invalid(body, creating=False)
        if problem:
            return 400, {"error": 400, "message": "Bad Request", "detail": problem}
        for key, value in body.items():
            if key == "timeout":
                entry["_deadline"] = self.clock() + read_duration(value)
            elif key == "address":
                entry["address"] = _stored_address(value)
            else:
                entry[key] = value
        return 200, self._show(entry)

    def _invalid(self, body: Any, *, creating: bool) -> str | None:
        if not isinstance(body, dict):
            return "expected a JSON object"
        for key, value in body.items():
            if not isinstance(value, str):
                return f"value of {key} must be a string"
        if creating and ("list" not in body or "address" not in body):
            return "missing value(s) of argument(s) list, address"
        if "address" in body:
            try:
                ipaddress.ip_network(body["address"], strict=False)
            except ValueError:
                if not _HOSTNAME.fullmatch(body["address"].strip().lower()):
                    return "invalid value for argument address"
        if "timeout" in body:
            try:
                read_duration(body["timeout"])
            except ValueError:
                return "invalid value for argument timeout"
        return None

    def _add(self, menu: str, fields: dict[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            ".id": self._new_id(),
            "list": fields["list"],
            "address": _stored_address(fields["address"]),
            "creation-time": "2026-05-01 10:00:00",
            "disabled": "false",
            "_deadline": self.clock() + read_duration(fields["timeout"]) if "timeout" in fields else None,
        }
        if "comment" in fields:
            entry["comment"] = fields["comment"]
        self.lists[menu][entry[".id"]] = entry
        return entry

    def _show(self, entry: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in entry.items() if not k.startswith("_")}
        view["dynamic"] = "true" if entry["_deadline"] is not None or entry.get("_dynamic") else "false"
        if entry["_deadline"] is not None:
            view["timeout"] = routeros_duration(entry["_deadline"] - self.clock())
        return view

    def _expire(self) -> None:
        now = self.clock()
        for entries in self.lists.values():
            for entry_id in [
                i for i, e in entries.items() if e["_deadline"] is not None and e["_deadline"] <= now
            ]:
                del entries[entry_id]

    def _new_id(self) -> str:
        self._next_id += 1
        return f"*{self._next_id:X}"

    def _drop_connections(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self._open.add(sock)


def _invalid_dns(body: Any) -> str | None:
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        return "expected a JSON object of strings"
    if "name" not in body and "regexp" not in body:
        return "missing value(s) of argument(s) name"
    if body.get("type", "A") == "FWD" and not body.get("forward-to"):
        return "missing value(s) of argument(s) forward-to"
    if body.get("match-subdomain", "no") not in ("yes", "no"):
        return "invalid value for argument match-subdomain"
    return None


def _invalid_queue(body: Any, *, creating: bool) -> str | None:
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        return "expected a JSON object of strings"
    if creating and "target" not in body:
        return "missing value(s) of argument(s) target"
    for key in body:
        if key in _QUEUE_READ_ONLY:
            return f"{key} is read-only"
    if "target" in body:
        try:
            _targets(body["target"])
        except ValueError:
            return "invalid value for argument target"
    if "max-limit" in body:
        parts = body["max-limit"].split("/")
        if len(parts) != 2 or not all(_RATE.fullmatch(p) for p in parts):
            return "invalid value for argument max-limit"
    return None


def _set_queue(queue: dict[str, str], body: dict[str, str]) -> None:
    for key, value in body.items():
        if key == "target":
            queue["target"] = ",".join(str(n) for n in _targets(value))
        elif key == "max-limit":
            queue["max-limit"] = "/".join(_print_rate(_read_rate(p)) for p in value.split("/"))
        else:
            queue[key] = value


def _targets(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]


def _read_rate(text: str) -> int:
    match = _RATE.fullmatch(text)
    assert match is not None
    return int(match.group(1)) * _RATE_SIZES[match.group(2)]


def _print_rate(bits: int) -> str:
    # As RouterOS prints rates: with the largest suffix that divides them.
    for suffix, size in (("G", 1000**3), ("M", 1000**2), ("k", 1000)):
        if bits and bits % size == 0:
            return f"{bits // size}{suffix}"
    return str(bits)


def _stored_address(text: str) -> str:
    if _HOSTNAME.fullmatch(text.strip().lower()):
        return text.strip().lower()
    network = ipaddress.ip_network(text.strip(), strict=False)
    if network.version == 4 and network.prefixlen == 32:
        return str(network.network_address)
    return str(network)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type, *, router: FakeRouterOS, context: ssl.SSLContext
    ):
        self.router = router
        self.context = context
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        # The handshake runs in the handler's thread, so a client that gives up cannot block accept().
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Failed handshakes (wrong CA, pin mismatch) are part of the tests; keep stderr quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write (flushed per request), so no delayed-ACK stalls.
    wbufsize = 65536
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(10)
        self.request.do_handshake()
        self.server.router._opened(self.request)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._authorized():
            self._send(
                401, {"error": 401, "message": "Unauthorized"}, {"WWW-Authenticate": 'Basic realm="rest"'}
            )
            return
        if not parts.path.startswith("/rest/"):
            self._send(404, {"error": 404, "message": "Not Found"})
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"error": 400, "message": "Bad Request", "detail": "invalid JSON"})
            return
        status, answer = self.server.router.handle(
            self.command, parts.path[len("/rest/") :], dict(parse_qsl(parts.query)), body
        )
        self._send(status, answer)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        router = self.server.router
        return user == router.username and password == router.password

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    # http.server dispatches on these names.
    do_GET = _serve  # noqa: N815
    do_PUT = _serve  # noqa: N815
    do_PATCH = _serve  # noqa: N815
    do_DELETE = _serve  # noqa: N815
    do_POST = _serve  # noqa: N815
