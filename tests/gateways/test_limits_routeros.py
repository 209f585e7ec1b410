"""Access-plan limits on RouterOS: one `/queue/simple` per guest, its counters as usage, the quota end.

Driven through the reconciler against the fake RouterOS (documented REST semantics of
`/queue/simple`), on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from guestgate.audit.models import AuditEvent
from guestgate.db import new_id
from guestgate.gateways import registry
from guestgate.gateways.reconcile import reconcile_all
from guestgate.gateways.routeros import parse_max_limit
from guestgate.ops import metrics as ops_metrics
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from tests.gateways.fake_routeros import FakeRouterOS, Tls
from tests.gateways.test_reconcile import make_site, routeros_gateway

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ORG = "org-a"


def add_guest(runtime: Runtime, site_id: str, ip: str, **limits: int | None) -> str:
    with runtime.sessions() as session:
        user = SiteUser(
            org_id=ORG,
            site_id=site_id,
            instance_id=new_id(),
            ip_address=ip,
            strategy="coupon",
            started_at=NOW - timedelta(minutes=5),
            expires_at=NOW + timedelta(hours=1),
            **limits,
        )
        session.add(user)
        session.commit()
        return user.id


def user(runtime: Runtime, user_id: str) -> SiteUser:
    with runtime.sessions() as session:
        found = session.get(SiteUser, user_id)
        assert found is not None
        session.expunge(found)
        return found


def queues(router: FakeRouterOS) -> dict[str, dict[str, str]]:
    return {q["comment"]: q for q in router.queue_entries()}


def quota_ends() -> float:
    return (
        ops_metrics.REGISTRY.get_sample_value(
            "guestgate_sessions_quota_exceeded_total", {"driver": "routeros"}
        )
        or 0.0
    )


def test_a_limited_guest_gets_a_queue_whose_counters_become_usage_across_a_reboot_until_its_quota_ends(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, fast_gateways: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    limited = add_guest(runtime, site_id, "10.0.0.5", upload_kbps=2000, download_kbps=10000, data_limit_mb=5)
    free = add_guest(runtime, site_id, "10.0.0.6")
    router.add(**{"list": "x"}, address="10.0.0.250")  # unrelated router state stays

    [outcome] = reconcile_all(runtime=runtime, now=NOW, pool=fast_gateways)
    assert outcome.status == "ok"
    held = queues(router)
    assert set(held) == {f"guestgate:{limited}", f"guestgate:{free}"}
    queue = held[f"guestgate:{limited}"]
    assert queue["target"] == "10.0.0.5/32"
    # upload/download in bits per second (the router prints them with suffixes)
    assert queue["max-limit"] == "2M/10M"
    assert parse_max_limit(queue["max-limit"]) == (2_000_000, 10_000_000)
    assert held[f"guestgate:{free}"]["max-limit"] == "0/0"

    router.traffic("10.0.0.5", upload=200_000, download=1_800_000)
    router.traffic("10.0.0.6", upload=10, download=20)
    [outcome] = reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=5), pool=fast_gateways)
    assert outcome.result is not None and outcome.result.usage_written == 2
    first = user(runtime, limited)
    assert (first.bytes_in, first.bytes_out) == (200_000, 1_800_000)
    assert (first.gateway_bytes_in, first.gateway_bytes_out) == (200_000, 1_800_000)
    assert first.last_seen_at == NOW + timedelta(seconds=5)

    # Nothing moved: nothing is written, last_seen_at stays.
    [outcome] = reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=10), pool=fast_gateways)
    assert outcome.result is not None and outcome.result.usage_written == 0
    assert user(runtime, limited).last_seen_at == NOW + timedelta(seconds=5)

    # The router reboots: static queues stay, their counters start again at 0.
    router.reboot()
    router.traffic("10.0.0.5", upload=100_000, download=900_000)
    reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=15), pool=fast_gateways)
    after = user(runtime, limited)
    assert (after.bytes_in, after.bytes_out) == (300_000, 2_700_000)
    assert (after.gateway_bytes_in, after.gateway_bytes_out) == (100_000, 900_000)
    assert after.status == "active"

    # Past 5 MB both ways: the session ends and the router drops the guest in the same pass.
    ends = quota_ends()
    router.traffic("10.0.0.5", upload=0, download=2_000_001)
    [outcome] = reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=20), pool=fast_gateways)
    assert outcome.result is not None and outcome.result.quota_ended == 1
    ended = user(runtime, limited)
    assert (ended.status, ended.end_reason) == ("quota_exceeded", "quota_exceeded")
    assert ended.ended_at == NOW + timedelta(seconds=20)
    assert ended.bytes_in + ended.bytes_out == 5_000_001
    assert f"guestgate:{limited}" not in queues(router)
    assert [e["address"] for e in router.entries("guestgate-allowed")] == ["10.0.0.6"]
    assert quota_ends() == ends + 1
    with runtime.sessions() as session:
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "site_user.quota_exceeded"))
        )
    assert [e.target_id for e in events] == [limited]
    # The unlimited guest is never ended, whatever it uses.
    assert user(runtime, free).status == "active"
    assert [e["address"] for e in router.entries("x")] == ["10.0.0.250"]


def test_changed_limits_patch_the_queue_and_keep_its_counters(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, fast_gateways: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    guest = add_guest(runtime, site_id, "10.0.0.5", upload_kbps=512, download_kbps=1000)
    reconcile_all(runtime=runtime, now=NOW, pool=fast_gateways)
    router.traffic("10.0.0.5", upload=10, download=20)
    with runtime.sessions() as session:
        row = session.get(SiteUser, guest)
        assert row is not None
        row.download_kbps = 4000
        row.upload_kbps = None
        session.commit()
    reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=5), pool=fast_gateways)
    [queue] = router.queue_entries()
    assert (queue["max-limit"], queue["bytes"]) == ("0/4M", "10/20")
    assert router.count("PATCH") >= 1
    # Converged: a further pass (at the same time, so no timeout drifts) sends nothing.
    writes = router.count() - router.count("GET")
    reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=5), pool=fast_gateways)
    assert router.count() - router.count("GET") == writes


def test_queues_guestgate_did_not_create_are_left_alone_and_its_stale_ones_removed(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, fast_gateways: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    router.handle(
        "PUT", "queue/simple", {}, {"name": "office", "target": "10.0.0.0/24", "max-limit": "50M/50M"}
    )
    router.handle(
        "PUT",
        "queue/simple",
        {},
        {"name": "guestgate-old", "target": "10.0.0.9/32", "comment": "guestgate:old"},
    )
    add_guest(runtime, site_id, "10.0.0.5")
    reconcile_all(runtime=runtime, now=NOW, pool=fast_gateways)
    names = {q["name"] for q in router.queue_entries()}
    assert "office" in names
    assert "guestgate-old" not in names
    assert len(names) == 2


def test_allowing_a_session_twice_keeps_one_queue_and_sets_it(
    router: FakeRouterOS, tls: Tls, runtime: Runtime, fast_gateways: registry.GatewayPool
) -> None:
    from guestgate.gateways.base import GuestAccess
    from guestgate.gateways.routeros import RouterOSGateway
    from tests.utils.gateways import LOOPBACK_ROUTERS

    gateway = RouterOSGateway(
        host="127.0.0.1",
        port=router.port,
        username=router.username,
        password=router.password,
        outbound=LOOPBACK_ROUTERS,
        ca_pem=tls.ca_pem,
    )
    try:
        gateway.allow(
            GuestAccess("s1", "10.0.0.5", None, NOW + timedelta(hours=1), download_kbps=1000), now=NOW
        )
        gateway.allow(
            GuestAccess("s1", "10.0.0.5", None, NOW + timedelta(hours=1), download_kbps=3000), now=NOW
        )
    finally:
        gateway.close()
    [queue] = router.queue_entries()
    # The second add was refused (a queue of that name exists), so the driver set that one.
    assert (queue["name"], queue["max-limit"]) == ("guestgate-s1", "0/3M")
