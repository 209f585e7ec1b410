"""Access-plan limits on real nftables, with real traffic: client -- gateway -- upstream namespaces.

    client  c0 10.77.0.2 ──veth── g0 10.77.0.1  gateway (guest interface g0)
                                  g1 10.78.0.1 ──veth── u0 10.78.0.2  upstream (HTTP :80: GET /<n>
                                                        answers n bytes, PUT reads the body)

The rate tests measure a bounded curl transfer after a first one has drained the limit's bucket
(nft's byte limit starts with a second's worth of tokens plus the burst), so the figure is the
rate the limit holds, not the burst. The quota tests drive `reconcile_all` on both databases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guestgate.gateways.base import GuestAccess
from guestgate.gateways.nftables import NftablesGateway, object_name, table_name
from guestgate.gateways.reconcile import reconcile_all
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.schemas import GatewayIn
from tests.gateways.netns import HTTP_GET, Namespace, namespaces, veth
from tests.gateways.test_limits_routeros import user
from tests.gateways.test_reconcile import make_site

pytestmark = pytest.mark.netns

CLIENT = "10.77.0.2"
UPSTREAM = "10.78.0.2"
# 8 Mbit/s each way: 1,000,000 bytes a second.
KBPS = 8000
RATE = KBPS * 125
TOLERANCE = 0.15

SINK_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        size = int(self.path.strip("/") or 0)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"x" * 65536
        while size > 0:
            self.wfile.write(chunk[: min(size, len(chunk))])
            size -= len(chunk)
    def do_PUT(self):
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            left -= len(self.rfile.read(min(left, 65536)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


@dataclass
class Lab:
    client: Namespace
    gateway_ns: Namespace
    upstream: Namespace
    tmp: Path

    def download(self, size: int) -> float:
        """Seconds a GET of `size` bytes from upstream takes through the gateway."""
        out = self.client.run(
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            "-w",
            "%{size_download} %{time_total}",
            f"http://{UPSTREAM}/{size}",
        ).stdout
        got, seconds = out.split()
        assert int(got) == size, out
        return float(seconds)

    def upload(self, size: int) -> float:
        """Seconds a PUT of `size` bytes to upstream takes through the gateway."""
        body = self.tmp / f"upload-{size}"
        if not body.exists():
            body.write_bytes(b"u" * size)
        out = self.client.run(
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "30",
            "-H",
            "Expect:",
            "-T",
            str(body),
            "-w",
            "%{size_upload} %{time_total}",
            f"http://{UPSTREAM}/up",
        ).stdout
        sent, seconds = out.split()
        assert int(float(sent)) == size, out
        return float(seconds)

    def http(self) -> str:
        return self.client.python(HTTP_GET, f"{UPSTREAM}/5", "2")


@pytest.fixture
def lab(netns_tools: None, tmp_path: Path) -> Iterator[Lab]:
    with namespaces("c", "g", "u") as ns:
        client, gw, up = ns["c"], ns["g"], ns["u"]
        veth(client, "c0", gw, "g0")
        veth(gw, "g1", up, "u0")
        client.run("ip", "addr", "add", f"{CLIENT}/24", "dev", "c0")
        client.run("ip", "route", "add", "default", "via", "10.77.0.1")
        gw.run("ip", "addr", "add", "10.77.0.1/24", "dev", "g0")
        gw.run("ip", "addr", "add", "10.78.0.1/24", "dev", "g1")
        gw.python("open('/proc/sys/net/ipv4/ip_forward', 'w').write('1')")
        up.run("ip", "addr", "add", f"{UPSTREAM}/24", "dev", "u0")
        up.run("ip", "route", "add", "default", "via", "10.78.0.1")
        up.start(SINK_SERVER, "80")
        up.wait_listening(80)
        yield Lab(client=client, gateway_ns=gw, upstream=up, tmp=tmp_path)


def rate_of(measure: object, warm_up: int, size: int) -> float:
    assert callable(measure)
    measure(warm_up)  # drains the bucket's first second of tokens
    return size / float(measure(size))


def test_the_download_and_upload_limits_hold_within_15_percent(lab: Lab) -> None:
    gateway = NftablesGateway(interface="g0", portal_port=8080, netns=lab.gateway_ns.name)
    gateway.apply()
    now = datetime.now(UTC)
    gateway.allow(
        GuestAccess("s1", CLIENT, None, now + timedelta(hours=1), download_kbps=KBPS, upload_kbps=KBPS),
        now=now,
    )
    down = rate_of(lab.download, 1_500_000, 4_000_000)
    up = rate_of(lab.upload, 1_500_000, 4_000_000)
    assert abs(down - RATE) / RATE <= TOLERANCE, f"download {down:.0f} B/s, limit {RATE} B/s"
    assert abs(up - RATE) / RATE <= TOLERANCE, f"upload {up:.0f} B/s, limit {RATE} B/s"
    # The same guest without limits is far faster: the limit, not the lab, held the rate.
    gateway.sync([GuestAccess("s1", CLIENT, None, now + timedelta(hours=1))], [], now=now)
    assert 4_000_000 / lab.download(4_000_000) > 3 * RATE
    listing = lab.gateway_ns.nft("list", "table", "inet", "guestgate")
    assert "limit name ip saddr map @up_limit4 drop" in listing
    assert object_name("ld", CLIENT) not in listing


def test_counters_count_both_ways_and_the_rules_do_not_grow_with_guests(lab: Lab) -> None:
    gateway = NftablesGateway(interface="g0", portal_port=8080, netns=lab.gateway_ns.name)
    gateway.apply()
    now = datetime.now(UTC)
    others = [
        GuestAccess(f"o{n}", f"10.77.1.{n}", None, now + timedelta(hours=1), download_kbps=1000)
        for n in range(1, 51)
    ]
    me = GuestAccess("me", CLIENT, None, now + timedelta(hours=1), upload_kbps=100_000)
    rules_before = _rules(lab)
    gateway.sync([me, *others], [], now=now)
    assert _rules(lab) == rules_before
    lab.download(300_000)
    lab.upload(200_000)
    counters = gateway.read_counters()
    assert 300_000 <= counters["me"].bytes_out < 400_000
    assert 200_000 <= counters["me"].bytes_in < 300_000
    assert counters["o1"].bytes_in == counters["o1"].bytes_out == 0
    # A new session on the address starts at zero; the old one's counters were its own.
    gateway.sync([GuestAccess("me2", CLIENT, None, now + timedelta(hours=2)), *others], [], now=now)
    assert gateway.read_counters()["me2"].bytes_out == 0


def _rules(lab: Lab) -> int:
    listing = json.loads(lab.gateway_ns.nft("-j", "list", "table", "inet", "guestgate"))
    return sum(1 for item in listing["nftables"] if "rule" in item)


def test_a_guest_over_its_quota_is_ended_and_dropped_in_the_same_pass_and_a_reboot_keeps_usage(
    lab: Lab, runtime: Runtime
) -> None:
    site_id = make_site(
        runtime,
        "Linux",
        GatewayIn(driver="nftables", interface="g0", portal_port=8080, netns=lab.gateway_ns.name),
        subnet="10.77.0.0/24",
    )
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        guest = SiteUser(
            org_id="org-a",
            site_id=site_id,
            instance_id=site_id,
            ip_address=CLIENT,
            strategy="coupon",
            started_at=now,
            expires_at=now + timedelta(hours=1),
            data_limit_mb=2,
        )
        session.add(guest)
        session.commit()
        guest_id = guest.id
    [outcome] = reconcile_all(runtime=runtime, now=now)
    assert outcome.status == "ok", outcome.error
    lab.download(900_000)
    reconcile_all(runtime=runtime, now=now + timedelta(seconds=2))
    first = user(runtime, guest_id)
    assert 900_000 <= first.bytes_out < 1_000_000
    assert first.last_seen_at == now + timedelta(seconds=2)

    # The gateway "reboots": its ruleset and counters are gone; the reconciler rebuilds the table.
    lab.gateway_ns.nft("flush", "ruleset")
    reconcile_all(runtime=runtime, now=now + timedelta(seconds=4))
    lab.download(900_000)
    reconcile_all(runtime=runtime, now=now + timedelta(seconds=6))
    kept = user(runtime, guest_id)
    assert kept.bytes_out >= first.bytes_out + 900_000
    assert kept.status == "active"

    # Past 2 MB: ended and dropped in one pass.
    lab.download(400_000)
    [outcome] = reconcile_all(runtime=runtime, now=now + timedelta(seconds=8))
    assert outcome.result is not None and outcome.result.quota_ended == 1
    ended = user(runtime, guest_id)
    assert (ended.status, ended.end_reason) == ("quota_exceeded", "quota_exceeded")
    assert ended.bytes_in + ended.bytes_out >= 2_000_000
    assert lab.http().startswith("ERROR")  # dropped: the connection times out
    listing = lab.gateway_ns.nft("list", "table", "inet", table_name(site_id))
    assert CLIENT not in listing
