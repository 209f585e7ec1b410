"""SSRF through the destinations a tenant sets: a RouterOS `gateway.host`, webhook URLs and the
issuer of an `oidc` auth integration.

Reproductions of issue 9, item 2: a tenant pointed its "router" at 127.0.0.1 / localhost /
0x7f000001 / 169.254.169.254 and read the answer back in `gateway_status.last_error`; it pointed
a webhook at loopback and fired it with `/run`. Every such destination is refused when it is
saved (400 naming the parameter) and again when a connection opens (a name that resolved to a
public address when it was saved and to loopback now is not connected to), and no remote answer
is copied into an API field.

Names resolve through the test's resolver (tests never ask a real DNS server); the servers a
tenant "reaches" here listen on loopback, as the controller's own services would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from guestgate import doctor
from guestgate.auth_integrations.models import AuthIntegration
from guestgate.db import utcnow
from guestgate.gateways import registry
from guestgate.gateways.base import Gateway
from guestgate.gateways.reconcile import reconcile_all
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.notifications import delivery
from guestgate.notifications.models import Delivery, DeliveryAttempt, NotificationGroup
from guestgate.notifications.service import new_group_id
from guestgate.outbound import OutboundPolicy
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE
from guestgate.sites.models import Site
from tests.core.test_errors import assert_error
from tests.gateways.fake_routeros import Tls, make_tls
from tests.notifications.test_delivery import Receiver, receiver
from tests.utils.hostile import Tenant
from tests.utils.settings import TokenFactory

__all__ = ["receiver"]  # a fixture, used by name

# What the controller's own internal service would answer: it must never be read back.
INTERNAL_PAGE = "INTERNAL-ADMIN-PAGE root:x:0:0 aws_secret_access_key=AKIAEXAMPLE"
LOOPBACK_HOSTS = [
    "127.0.0.1",
    "localhost",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "127.1",
    "[::ffff:127.0.0.1]",
    "::1",
    "169.254.169.254",
    "10.0.0.1",
    "100.64.0.1",
    "0.0.0.0",
    "fd00::1",
    "64:ff9b::7f00:1",
    "intranet.example.com",  # resolves to 127.0.0.1 below
]


@dataclasses.dataclass
class Internal:
    """An HTTPS service on loopback that counts what reaches it."""

    port: int
    status: int = 200
    body: str = INTERNAL_PAGE
    content_type: str = "text/html"
    requests: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("internal-tls"), common_name="internal")


@pytest.fixture
def internal(tls: Tls) -> Iterator[Internal]:
    """The controller host's own HTTPS service a hostile "router" setting aims at."""
    state: dict[str, Internal] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            service = state["service"]
            with service.lock:
                service.requests += 1
            self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            body = service.body.encode()
            self.send_response(service.status)
            self.send_header("Content-Type", service.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_PUT(self) -> None:
            self._answer()

        def do_PATCH(self) -> None:
            self._answer()

        def do_DELETE(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state["service"] = Internal(port=int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state["service"]
    server.shutdown()
    server.server_close()


class Dns:
    """A resolver the test can change between the API's check and the connection (DNS rebinding)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {"intranet.example.com": ["127.0.0.1"]}

    def __call__(self, host: str, port: int) -> list[str]:
        if host in self.answers:
            return self.answers[host]
        if host.endswith("example.com"):
            return ["93.184.215.14"]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def dns(runtime: Runtime) -> Dns:
    """The runtime's resolver, as the test controls it (set before any gateway is built)."""
    resolver = Dns()
    runtime.outbound = dataclasses.replace(runtime.outbound, resolver=resolver)
    return resolver


def routeros(host: str, *, port: int = 443, **extra: Any) -> dict[str, Any]:
    return {
        "driver": "routeros",
        "host": host,
        "port": port,
        "username": "admin",
        "password": "tenant-password-1",
        "tls_verify": False,
        **extra,
    }


def site_count(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Site)) or 0)


def quick_pool(runtime: Runtime) -> registry.GatewayPool:
    """The reconciler's pool with RouterOS retries in milliseconds."""

    def fast(site: Site, **kwargs: Any) -> Gateway:
        gateway = registry.build(site, **kwargs)
        if isinstance(gateway, RouterOSGateway):
            gateway.backoff, gateway.retries = 0.01, 1
        return gateway

    return registry.GatewayPool(box=runtime.box, outbound=runtime.outbound, builder=fast)


def reconcile_status(runtime: Runtime, site_id: str) -> tuple[str, str | None]:
    pool = quick_pool(runtime)
    try:
        reconcile_all(runtime=runtime, now=utcnow(), pool=pool)
    finally:
        pool.close()
    with runtime.sessions() as session:
        site = session.get(Site, site_id)
        assert site is not None
        return site.gateway_status, site.gateway_last_error


# -- refused when saved ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_a_router_host_on_the_controllers_networks_is_refused_naming_gateway_host(
    client: TestClient, org_a: Tenant, runtime: Runtime, dns: Dns, host: str
) -> None:
    before = site_count(runtime)
    body = {"name": "Evil", "subnets": ["10.88.0.0/16"], "gateway": routeros(host)}
    created = client.post("/captive/sites", headers=org_a.headers, json=body)
    error = assert_error(created, 400, "invalid_request_error", "parameter_invalid")
    assert error["message"].startswith("The 'gateway.host' parameter is refused: ")
    replaced = client.put(
        f"/captive/sites/{org_a.ids['siteId']}",
        headers=org_a.headers,
        json={**body, "subnets": ["10.10.0.0/16"]},
    )
    assert_error(replaced, 400, "invalid_request_error", "parameter_invalid")
    assert site_count(runtime) == before


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_a_webhook_on_the_controllers_networks_is_refused_naming_the_url(
    client: TestClient, org_a: Tenant, dns: Dns, host: str
) -> None:
    netloc = f"[{host.strip('[]')}]" if ":" in host else host
    body = {
        "name": "Evil",
        "webhooks": [
            {"url": "https://hooks.example.com/fine", "secret": "s" * 16},
            {"url": f"http://{netloc}:8000/captive/instances", "secret": "s" * 16},
        ],
    }
    created = client.post("/captive/notification-groups", headers=org_a.headers, json=body)
    error = assert_error(created, 400, "invalid_request_error", "parameter_invalid")
    assert error["message"].startswith("The 'webhooks[1].url' parameter is refused: ")
    replaced = client.put(
        f"/captive/notification-groups/{org_a.ids['groupId']}", headers=org_a.headers, json=body
    )
    assert_error(replaced, 400, "invalid_request_error", "parameter_invalid")


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_an_oidc_issuer_on_the_controllers_networks_is_refused_and_never_fetched(
    client: TestClient, org_a: Tenant, dns: Dns, internal: Internal, host: str
) -> None:
    netloc = f"[{host.strip('[]')}]" if ":" in host else host
    body = {
        "name": "Evil SSO",
        "type": "oidc",
        "config": {
            "client_id": "c",
            "client_secret": "s",
            "issuer": f"https://{netloc}:{internal.port}/realm",
        },
    }
    created = client.post("/captive/auth-integrations", headers=org_a.headers, json=body)
    error = assert_error(created, 400, "invalid_request_error", "parameter_invalid")
    assert error["message"].startswith("The 'config.issuer' parameter is refused: "), error["message"]
    assert INTERNAL_PAGE not in created.text
    assert internal.requests == 0


def test_a_deployment_allows_a_routers_management_network_and_only_for_routers(
    client: TestClient, org_a: Tenant, runtime: Runtime, dns: Dns
) -> None:
    runtime.outbound = OutboundPolicy.from_settings("", "10.20.0.0/16", resolver=dns)
    body = {"name": "Branch", "subnets": ["10.88.0.0/16"], "gateway": routeros("10.20.0.1")}
    assert client.post("/captive/sites", headers=org_a.headers, json=body).status_code == 201
    hook = {"name": "Desk", "webhooks": [{"url": "http://10.20.0.9/hook", "secret": "s" * 16}]}
    refused = client.post("/captive/notification-groups", headers=org_a.headers, json=hook)
    assert_error(refused, 400, "invalid_request_error", "parameter_invalid")


# -- refused when connecting (DNS rebinding) ------------------------------------------------------


def test_a_router_name_that_rebinds_to_loopback_is_not_connected_to(
    client: TestClient, org_a: Tenant, runtime: Runtime, dns: Dns, internal: Internal
) -> None:
    body = {
        "name": "Rebind",
        "subnets": ["10.88.0.0/16"],
        "gateway": routeros("router.rebind.example.com", port=internal.port),
    }
    site = client.post("/captive/sites", headers=org_a.headers, json=body)
    assert site.status_code == 201, site.text
    # After the check: the attacker's DNS now answers with the controller's loopback.
    dns.answers["router.rebind.example.com"] = ["127.0.0.1"]

    status, error = reconcile_status(runtime, site.json()["id"])

    assert status == "misconfigured"
    assert error is not None and "refused by the outbound policy" in error
    assert "resolves to 127.0.0.1, a loopback address" in error
    assert internal.requests == 0


def test_a_webhook_name_that_rebinds_to_loopback_is_not_posted_to(
    client: TestClient, org_a: Tenant, runtime: Runtime, dns: Dns, auth: TokenFactory, internal: Internal
) -> None:
    url = f"https://hooks.rebind.example.com:{internal.port}/collect"
    group = {"name": "Desk", "webhooks": [{"url": url, "secret": "s" * 16}]}
    assert (
        client.put(
            f"/captive/notification-groups/{org_a.ids['groupId']}", headers=org_a.headers, json=group
        ).status_code
        == 200
    )
    dns.answers["hooks.rebind.example.com"] = ["127.0.0.1"]
    # The front desk's token (coupons:issue) may run the schedule: the delivery still goes nowhere.
    desk = auth(org="org-a", scopes=(SCOPE_ISSUE,))
    path = f"/captive/instances/{org_a.ids['instanceId']}/coupon-schedules/{org_a.ids['scheduleId']}/run"
    assert client.post(path, headers=desk).status_code == 200

    delivery.deliver_due_sync(runtime=runtime, now=utcnow() + timedelta(seconds=1))

    with runtime.sessions() as session:
        rows = session.scalars(select(Delivery).where(Delivery.target == url)).all()
        assert rows
        errors = [
            a.error
            for a in session.scalars(
                select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_([r.id for r in rows]))
            )
        ]
    assert errors and all(
        e and e.startswith("refused by the outbound policy: 'hooks.rebind.example.com' resolves to 127.0.0.1")
        for e in errors
    )
    assert internal.requests == 0


# -- nothing a remote answers is read back -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "wording"),
    [
        (401, "answered HTTP 401: check username and password"),
        (403, "answered HTTP 403: the user needs the read, write, api and rest-api policies"),
        (400, "refused GET /ip/firewall/address-list with HTTP 400"),
        (500, "the router answered HTTP 500"),
        (200, "did not answer with JSON"),
    ],
)
def test_a_reachable_host_that_is_not_a_router_is_not_read_back_through_last_error(
    client: TestClient, org_a: Tenant, runtime: Runtime, internal: Internal, status: int, wording: str
) -> None:
    # Even where the deployment allows the network (a management LAN), the answer stays out.
    runtime.outbound = OutboundPolicy.from_settings("", "127.0.0.0/8")
    internal.status = status
    body = {
        "name": "Probe",
        "subnets": ["10.88.0.0/16"],
        "gateway": routeros("127.0.0.1", port=internal.port),
    }
    site = client.post("/captive/sites", headers=org_a.headers, json=body)
    assert site.status_code == 201, site.text

    state, _ = reconcile_status(runtime, site.json()["id"])

    shown = client.get(f"/captive/sites/{site.json()['id']}", headers=org_a.headers).json()["gateway_status"]
    assert state == shown["state"] and state in ("misconfigured", "unreachable")
    assert wording in shown["last_error"]
    assert "INTERNAL" not in shown["last_error"] and "AKIA" not in shown["last_error"]
    assert internal.requests >= 1


@pytest.mark.parametrize(
    "answer",
    [
        '[{".id": "*1", "comment": "guestgate:s-1", "address": "AKIA-ADDRESS", "timeout": "1h"}]',
        '[{".id": "*1", "comment": "guestgate:s-1", "address": "10.0.0.1", "timeout": "AKIA-TIMEOUT"}]',
        '[{".id": "*1", "comment": "guestgate:s-1", "address": "10.0.0.1", "timeout": ["AKIA-LIST"]}]',
        '{"AKIA-KEY": "AKIA-VALUE"}',
    ],
)
def test_a_json_answer_that_is_not_a_routers_is_not_read_back_through_last_error(
    client: TestClient, org_a: Tenant, runtime: Runtime, internal: Internal, answer: str
) -> None:
    runtime.outbound = OutboundPolicy.from_settings("", "127.0.0.0/8")
    internal.body, internal.content_type = answer, "application/json"
    body = {"name": "Probe", "subnets": [], "gateway": routeros("127.0.0.1", port=internal.port)}
    site = client.post("/captive/sites", headers=org_a.headers, json=body)
    assert site.status_code == 201, site.text

    state, error = reconcile_status(runtime, site.json()["id"])

    assert internal.requests >= 1
    assert state == "misconfigured" and error is not None and "AKIA" not in error, error


def test_a_webhook_receivers_answer_is_not_stored(
    client: TestClient, org_a: Tenant, runtime: Runtime, receiver: Receiver
) -> None:
    runtime.outbound = OutboundPolicy.from_settings("127.0.0.0/8", "")
    receiver.default = 500  # answering '{"error": "receiver says no"}'
    group = {"name": "Desk", "webhooks": [{"url": receiver.url, "secret": "s" * 16}]}
    assert (
        client.put(
            f"/captive/notification-groups/{org_a.ids['groupId']}", headers=org_a.headers, json=group
        ).status_code
        == 200
    )
    path = f"/captive/instances/{org_a.ids['instanceId']}/coupon-schedules/{org_a.ids['scheduleId']}/run"
    assert client.post(path, headers=org_a.headers).status_code == 200

    delivery.deliver_due_sync(runtime=runtime, now=utcnow() + timedelta(seconds=1))

    with runtime.sessions() as session:
        [row] = session.scalars(select(Delivery).where(Delivery.target == receiver.url)).all()
        [attempt] = session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == row.id)
        ).all()
    assert len(receiver.received) == 1
    assert row.last_error == attempt.error == "the receiver answered HTTP 500"


# -- the password does not follow a host change ----------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"host": "attacker.example.com"},
        {"port": 8443},
        {"tls_verify": True},
        {"ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
        {"pinned_sha256": "ab" * 32},
    ],
)
def test_a_router_password_is_not_reused_for_another_router(
    client: TestClient, org_a: Tenant, runtime: Runtime, dns: Dns, change: dict[str, Any]
) -> None:
    gateway = routeros("router.example.com")
    site = client.post(
        "/captive/sites",
        headers=org_a.headers,
        json={"name": "R", "subnets": ["10.88.0.0/16"], "gateway": gateway},
    )
    assert site.status_code == 201, site.text
    site_id = site.json()["id"]
    with runtime.sessions() as session:
        sealed_before = session.get(Site, site_id).gateway_secrets_sealed  # type: ignore[union-attr]
    without_password = {k: v for k, v in gateway.items() if k != "password"}

    moved = client.put(
        f"/captive/sites/{site_id}",
        headers=org_a.headers,
        json={"name": "R", "subnets": ["10.88.0.0/16"], "gateway": {**without_password, **change}},
    )

    error = assert_error(moved, 400, "invalid_request_error", "parameter_missing")
    assert error["message"] == (
        "The 'gateway.password' parameter is required for this request: the router's host, port or TLS "
        "settings changed, and the stored password is only ever sent to the router it was given for."
    )
    with runtime.sessions() as session:
        row = session.get(Site, site_id)
        assert row is not None and row.gateway_secrets_sealed == sealed_before
        assert row.gateway_config["host"] == "router.example.com"
    # The same router without the password keeps it; a new router with one is fine.
    same = client.put(
        f"/captive/sites/{site_id}",
        headers=org_a.headers,
        json={"name": "R2", "subnets": ["10.88.0.0/16"], "gateway": without_password},
    )
    assert same.status_code == 200 and same.json()["gateway"]["password_set"] is True
    given = client.put(
        f"/captive/sites/{site_id}",
        headers=org_a.headers,
        json={
            "name": "R",
            "subnets": ["10.88.0.0/16"],
            "gateway": {**gateway, **change, "password": "new-one-2"},
        },
    )
    assert given.status_code == 200, given.text


# -- settings stored before the policy (or before the deployment narrowed it) ---------------------


def test_destinations_stored_before_the_policy_are_named_by_doctor_and_not_connected_to(
    org_a: Tenant, runtime: Runtime, internal: Internal
) -> None:
    with runtime.sessions() as session:
        site = Site(
            org_id="org-a",
            name="Old router",
            subnets=[],
            gateway_driver="routeros",
            gateway_config={"host": "127.0.0.1", "port": internal.port, "username": "a", "tls_verify": False},
            gateway_secrets_sealed=runtime.box.seal(json.dumps({"password": "p"})),
        )
        group = NotificationGroup(
            id=new_group_id(),
            org_id="org-a",
            name="Old desk",
            emails=[],
            webhooks=[{"url": "http://[::1]:8000/x"}],
        )
        sso = AuthIntegration(
            org_id="org-a",
            name="Old SSO",
            type="oidc",
            client_id="c",
            client_secret_sealed=runtime.box.seal("s"),
            issuer="https://169.254.169.254/realm",
        )
        session.add_all([site, group, sso])
        session.commit()
        ids = (site.id, group.id, sso.id)

    problems = {(p.kind, p.id, p.parameter): p.problem for p in doctor.diagnose(runtime)}

    assert problems == {
        ("site", ids[0], "gateway.host"): "is refused: 127.0.0.1 is a loopback address; a deployment can "
        "allow it in GUESTGATE_OUTBOUND_GATEWAY_NETWORKS",
        ("notification_group", ids[1], "webhooks[0].url"): "is refused: ::1 is a loopback address; a "
        "deployment can allow it in GUESTGATE_OUTBOUND_ALLOW_NETWORKS",
        ("auth_integration", ids[2], "config.issuer"): "is refused: 169.254.169.254 is a link-local address "
        "(cloud metadata lives there); a deployment can allow it in GUESTGATE_OUTBOUND_ALLOW_NETWORKS",
    }
    state, error = reconcile_status(runtime, ids[0])
    assert state == "misconfigured" and error is not None and "refused by the outbound policy" in error
    assert internal.requests == 0


# -- a redirect from an allowed destination is not followed --------------------------------------


@dataclasses.dataclass
class Redirector:
    """A server on 127.0.0.2 (the address the deployment allows) that redirects to `location`."""

    port: int
    location: str = ""
    requests: int = 0


@contextlib.contextmanager
def redirecting(tls: Tls | None) -> Iterator[Redirector]:
    """A `Redirector`, over HTTPS when given `tls`."""
    state: dict[str, Redirector] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state["it"].requests += 1
            self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            self.send_response(302)
            self.send_header("Location", state["it"].location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def do_PUT(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    state["it"] = Redirector(port=int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state["it"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_routers_redirect_to_loopback_is_not_followed(
    client: TestClient, org_a: Tenant, runtime: Runtime, internal: Internal, tls: Tls
) -> None:
    runtime.outbound = OutboundPolicy.from_settings("", "127.0.0.2/32")
    with redirecting(tls) as redirector:
        redirector.location = f"https://127.0.0.1:{internal.port}/rest/ip/firewall/address-list"
        gateway = routeros("127.0.0.2", port=redirector.port)
        site = client.post(
            "/captive/sites", headers=org_a.headers, json={"name": "Hop", "subnets": [], "gateway": gateway}
        )
        assert site.status_code == 201, site.text

        state, error = reconcile_status(runtime, site.json()["id"])

    assert redirector.requests >= 1 and internal.requests == 0
    assert (state, error) == (
        "misconfigured",
        f"127.0.0.2:{redirector.port} answered HTTP 302 (redirects are not followed); is it the RouterOS REST API?",
    )


def test_a_webhooks_redirect_to_loopback_is_not_followed(
    client: TestClient, org_a: Tenant, runtime: Runtime, internal: Internal
) -> None:
    runtime.outbound = OutboundPolicy.from_settings("127.0.0.2/32", "")
    with redirecting(None) as redirector:
        redirector.location = f"https://127.0.0.1:{internal.port}/collect"
        url = f"http://127.0.0.2:{redirector.port}/hook"
        group = {"name": "Desk", "webhooks": [{"url": url, "secret": "s" * 16}]}
        saved = client.put(
            f"/captive/notification-groups/{org_a.ids['groupId']}", headers=org_a.headers, json=group
        )
        assert saved.status_code == 200, saved.text
        path = f"/captive/instances/{org_a.ids['instanceId']}/coupon-schedules/{org_a.ids['scheduleId']}/run"
        assert client.post(path, headers=org_a.headers).status_code == 200

        delivery.deliver_due_sync(runtime=runtime, now=utcnow() + timedelta(seconds=1))

    with runtime.sessions() as session:
        [row] = session.scalars(select(Delivery).where(Delivery.target == url)).all()
    assert redirector.requests == 1 and internal.requests == 0
    assert row.last_error == "the receiver answered HTTP 302 (redirects are not followed)"
