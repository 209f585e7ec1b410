"""End to end with real nftables: a guest signs in through the portal and the gateway opens and closes.

    client  c0 10.77.0.2 ──veth── g0 10.77.0.1  gateway: `guestgate serve` on :8080 (portal + API + jobs)
                                  g1 10.78.0.1 ──veth── u0 10.78.0.2 / .3  upstream (HTTP :80, tcp :22)

10.78.0.3 becomes a captive-portal walled-garden address through the operator API. The journey
runs twice: with the site's driver `nftables` (the server applies the table in its own
namespace) and with `agent` (the server never touches nft; `guestgate agent`, in the gateway
namespace too, pulls the state from the server over loopback HTTP and applies it).

Nothing leaves the namespaces the test creates; they are deleted with their processes afterwards.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from guestgate.config import Settings
from guestgate.db import make_engine
from guestgate.gateways.agent import agent_key
from guestgate.gateways.nftables import table_name
from guestgate.migrate import upgrade
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from guestgate.sites.schemas import GatewayIn
from tests.gateways.netns import ECHO_SERVER, HTTP_GET, HTTP_SERVER, TCP_CONNECT, Namespace, namespaces, veth
from tests.gateways.world import ACTIVATING, CONNECTED, GuestSite, make_guest_site
from tests.utils.settings import TEST_KEYS, make_settings

pytestmark = pytest.mark.netns

CLIENT = "10.77.0.2"
GATEWAY = "10.77.0.1"
UPSTREAM = "10.78.0.2"
GARDEN = "10.78.0.3"
PORT = 8080
PORTAL = f"http://{GATEWAY}:{PORT}"
GUESTGATE = str(Path(sys.executable).with_name("guestgate"))
FORM = 'name="code"'

# Runs in the client namespace: the guest opens the portal, then sends the coupon form.
SIGN_IN = """
import re, sys, urllib.parse, urllib.request
base, site, code = sys.argv[1:4]
page = urllib.request.urlopen(f"{base}/guest/entry?site={site}", timeout=10).read().decode()
token = re.search(r'name="t" value="([^"]+)"', page).group(1)
form = urllib.parse.urlencode({"t": token, "code": code, "accept": "yes"}).encode()
print(urllib.request.urlopen(urllib.request.Request(f"{base}/guest/signin", data=form), timeout=10).read().decode())
"""
# Runs in the gateway namespace: one operator API call over loopback.
API_CALL = """
import sys, urllib.error, urllib.request
method, url, token, body = sys.argv[1:5]
request = urllib.request.Request(url, method=method, data=body.encode() or None,
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.status, answer.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
"""
# Runs anywhere: GET a URL and print the body (used for the status page the activating page refreshes to).
GET_PAGE = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"""


def until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Wait until `check()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


@dataclass
class Lab:
    """The three namespaces, the server's database and how to drive the journey."""

    client: Namespace
    gateway: Namespace
    upstream: Namespace
    settings: Settings
    world: GuestSite
    token: str
    logs: Path

    def http(self, host: str) -> str:
        return self.client.python(HTTP_GET, host, "2")

    def tcp(self, host: str, port: int = 22) -> str:
        return self.client.python(TCP_CONNECT, host, str(port), "1")

    def api(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        out = self.gateway.python(
            API_CALL, method, f"http://127.0.0.1:{PORT}{path}", self.token, json.dumps(body) if body else ""
        )
        status, _, text = out.partition(" ")
        return int(status), json.loads(text) if text.strip() else None

    def sign_in(self, code: str) -> str:
        return html.unescape(self.client.python(SIGN_IN, PORTAL, self.world.site_id, code, timeout=30))

    def page(self, url: str) -> str:
        return html.unescape(self.client.python(GET_PAGE, url))

    def table(self) -> str:
        # The site's own table, `guestgate_<site id>`.
        return self.gateway.run(
            "nft", "list", "table", "inet", table_name(self.world.site_id), check=False
        ).stdout

    def start(self, *args: str, name: str) -> None:
        """Start a `guestgate` command in the gateway namespace with the server's settings in its environment."""
        env = {
            **os.environ,
            "GUESTGATE_DATABASE_URL": self.settings.database_url,
            "GUESTGATE_DATA_DIR": str(self.settings.data_dir),
            "GUESTGATE_PUBLIC_URL": PORTAL,
            "GUESTGATE_HOST": "0.0.0.0",
            "GUESTGATE_PORT": str(PORT),
            "GUESTGATE_JWT_SECRET": TEST_KEYS["jwt_secret"],
            "GUESTGATE_SIGNING_KEY": TEST_KEYS["signing_key"],
            "GUESTGATE_ENCRYPTION_KEY": TEST_KEYS["encryption_key"],
            "GUESTGATE_SCHEDULER_ENABLED": "true",
            "GUESTGATE_WORKER_POLL_SECONDS": "1",
            "GUESTGATE_LOG_LEVEL": "warning",
        }
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.gateway.name, GUESTGATE, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.gateway.processes.append(process)


@pytest.fixture
def lab(netns_tools: None, tmp_path: Path) -> Iterator[Callable[[GatewayIn], Lab]]:
    """`lab(gateway)` -> the namespaces wired up, a migrated SQLite database with the site, and the server running."""
    with namespaces("c", "g", "u") as ns:
        client, gw, up = ns["c"], ns["g"], ns["u"]
        veth(client, "c0", gw, "g0")
        veth(gw, "g1", up, "u0")
        client.run("ip", "addr", "add", f"{CLIENT}/24", "dev", "c0")
        client.run("ip", "route", "add", "default", "via", GATEWAY)
        gw.run("ip", "addr", "add", f"{GATEWAY}/24", "dev", "g0")
        gw.run("ip", "addr", "add", "10.78.0.1/24", "dev", "g1")
        gw.python("open('/proc/sys/net/ipv4/ip_forward', 'w').write('1')")
        for address in (UPSTREAM, GARDEN):
            up.run("ip", "addr", "add", f"{address}/24", "dev", "u0")
        up.run("ip", "route", "add", "default", "via", "10.78.0.1")
        up.start(HTTP_SERVER, "80", "upstream")
        up.start(ECHO_SERVER, "22")
        up.wait_listening(80)
        up.wait_listening(22)
        database = tmp_path / "guestgate.db"
        settings = make_settings(f"sqlite:///{database}", tmp_path / "var", public_url=PORTAL, port=PORT)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
        runtimes: list[Runtime] = []

        def make(gateway: GatewayIn) -> Lab:
            runtime = Runtime.build(settings)
            runtimes.append(runtime)
            world = make_guest_site(runtime, gateway, subnet="10.77.0.0/24")
            token = mint_token(settings, org="org-a", subject="e2e", scopes=ALL_SCOPES, ttl_seconds=3600)
            built = Lab(client, gw, up, settings, world, token, tmp_path)
            built.start("serve", name="server")
            gw.wait_listening(PORT, timeout=30)
            return built

        try:
            yield make
        finally:
            for runtime in runtimes:
                runtime.close()
            for log in sorted(tmp_path.glob("*.log")):
                # Shown by pytest only when the test failed.
                print(f"--- {log.name}\n{log.read_text()[-4000:]}")


def journey(lab: Lab, *, agent: bool) -> None:
    """Redirect, drop, walled garden, sign-in, disconnect, flush: the gateway follows the database."""
    world = lab.world
    world.coupon("ABC234")
    world.coupon("DEF567")

    # Not signed in: web requests land on the portal's sign-in page, everything else is dropped.
    until(lambda: FORM in lab.http(UPSTREAM), timeout=15, what="the upstream request lands on the portal")
    assert lab.tcp(UPSTREAM) == "ERROR TimeoutError"
    assert lab.http(GARDEN) != "upstream"

    # A captive-portal walled-garden entry opens within seconds of the API call.
    status, _ = lab.api(
        "POST",
        f"/captive/walled-garden/{world.site_id}",
        {"name": "Docs", "ip_address": GARDEN, "type": "captive-portal"},
    )
    assert status == 201
    until(lambda: lab.http(GARDEN) == "upstream", timeout=5, what="the walled-garden address answers")
    assert lab.tcp(UPSTREAM) == "ERROR TimeoutError"

    # Coupon sign-in: the upstream answers (an agent site shows "activating" until its agent applied it).
    page = lab.sign_in("ABC234")
    if agent:
        assert ACTIVATING in page
        refresh = re.search(r'http-equiv="refresh" content="\d+;url=([^"]+)"', page)
        assert refresh is not None
        status_url = PORTAL + refresh.group(1)
        until(
            lambda: ACTIVATING not in lab.page(status_url),
            timeout=10,
            what="the status page stops saying activating",
        )
        assert "Time remaining" in lab.page(status_url)
    else:
        assert CONNECTED in page and ACTIVATING not in page
    until(
        lambda: lab.http(UPSTREAM) == "upstream", timeout=5, what="the signed-in guest reaches the upstream"
    )
    assert lab.tcp(UPSTREAM) == "OPEN hello"
    [user] = world.users()
    assert user.gateway_applied_at is not None

    # Disconnect through the operator API: blocked again within seconds.
    status, body = lab.api("POST", f"/captive/sites/{world.site_id}/users/{user.id}/disconnect")
    assert status == 200 and isinstance(body, dict) and body["status"] == "disconnected"
    until(
        lambda: FORM in lab.http(UPSTREAM),
        timeout=5,
        what="the disconnected guest is sent to the portal again",
    )
    assert lab.tcp(UPSTREAM) == "ERROR TimeoutError"

    # A new session, then the whole ruleset flushed: the table and the guest come back by themselves.
    lab.sign_in("DEF567")
    until(
        lambda: lab.http(UPSTREAM) == "upstream", timeout=10, what="the second session reaches the upstream"
    )
    active = [u for u in world.users() if u.status == "active"]
    assert len(active) == 1
    lab.gateway.run("nft", "flush", "ruleset")
    assert "guestgate" not in lab.gateway.run("nft", "list", "tables").stdout
    until(
        lambda: f'comment "guestgate:{active[0].id}"' in lab.table(),
        timeout=10,
        what="the table is restored with the active guest",
    )
    table = lab.table()
    assert f"redirect to :{PORT}" in table
    assert "10.78.0.3" in table
    assert lab.http(UPSTREAM) == "upstream"
    site = world.site()
    assert site.gateway_status == "ok"


def test_a_guest_goes_through_the_nftables_gateway_the_server_drives(lab: Callable[[GatewayIn], Lab]) -> None:
    built = lab(GatewayIn(driver="nftables", interface="g0", portal_port=PORT))
    # The server installs the table at start, before any guest arrives.
    until(lambda: "gg_prerouting" in built.table(), timeout=10, what="the server applies the table at start")
    journey(built, agent=False)


def test_a_guest_goes_through_the_gateway_of_guestgate_agent(lab: Callable[[GatewayIn], Lab]) -> None:
    built = lab(GatewayIn(driver="agent", interface="g0", portal_port=PORT))
    # The server does not touch nft for an agent site: no table until the agent has pulled its state.
    time.sleep(1.5)
    assert built.table() == ""
    key = agent_key(TEST_KEYS["signing_key"], built.world.site_id)
    built.start(
        "agent",
        "--controller",
        f"http://127.0.0.1:{PORT}",
        "--site",
        built.world.site_id,
        "--key",
        key,
        "--wait",
        "2",
        name="agent",
    )
    until(lambda: "gg_prerouting" in built.table(), timeout=15, what="the agent applies the table")
    assert f"redirect to :{PORT}" in built.table()
    journey(built, agent=True)
