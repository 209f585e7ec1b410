"""Subnet lists are capped and checked in O(n log n) (issue 9, item 4).

The report: 3,000 subnets in one site request held SQLite's write lock for 62 s (every pair of
subnets compared, inside the request's transaction) and sign-ins got 503. Now a site lists at
most 256 subnets, an instance at most 256 per site, 1,000 sites and 4,096 subnets in all; a
request over a cap is refused before its transaction begins (no statement reaches the
database), and one at the caps makes a number of network comparisons proportional to its size,
not to its square.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from guestgate.instances.schemas import MAX_INSTANCE_SITES, MAX_INSTANCE_SUBNETS, MAX_SITE_ENTRY_SUBNETS
from guestgate.notifications.schemas import MAX_EMAILS, MAX_WEBHOOKS
from guestgate.runtime import Runtime
from guestgate.sites.schemas import MAX_SITE_SUBNETS, MIN_PREFIX
from guestgate.walled_garden.service import MAX_ENTRIES_PER_SITE

README = Path(__file__).resolve().parents[2] / "README.md"
LOBBY = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}


def slash24s(count: int, second_octet: int = 0) -> list[str]:
    """`count` disjoint /24s: 10.<second>.0.0/24, 10.<second>.1.0/24, ..."""
    base = int(ipaddress.IPv4Address(f"10.{second_octet}.0.0"))
    return [str(ipaddress.IPv4Network((base + i * 256, 24))) for i in range(count)]


@contextmanager
def pairwise_comparisons() -> Iterator[list[int]]:
    """Counts calls of the `ipaddress` methods that compare two networks (what a pairwise check uses)."""
    counted = [0]
    base = ipaddress._BaseNetwork  # type: ignore[attr-defined]
    patched: dict[str, Callable[..., Any]] = {}
    for name in ("overlaps", "subnet_of", "supernet_of", "__contains__"):
        original = getattr(base, name)
        patched[name] = original

        def counting(self: Any, other: Any, _original: Callable[..., Any] = original) -> Any:
            counted[0] += 1
            return _original(self, other)

        setattr(base, name, counting)
    try:
        yield counted
    finally:
        for name, original in patched.items():
            setattr(base, name, original)


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL statements run on the runtime's engine meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)


def assert_refused(response: Any, parameter: str, cap: int) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "parameter_invalid"
    assert f"'{parameter}'" in body["message"] and str(cap) in body["message"], body["message"]


def test_a_site_at_the_cap_is_checked_in_a_number_of_comparisons_linear_in_its_size(
    client: TestClient, headers: dict[str, str]
) -> None:
    subnets = slash24s(MAX_SITE_SUBNETS)
    with pairwise_comparisons() as counted:
        created = client.post("/captive/sites", headers=headers, json={"name": "Campus", "subnets": subnets})
    assert created.status_code == 201, created.text
    assert created.json()["subnets"] == subnets
    # Every pair would be 32,640 comparisons; the sort-and-sweep makes none of them.
    assert counted[0] <= 2 * MAX_SITE_SUBNETS


def test_a_site_over_the_cap_is_refused_before_any_statement_and_nothing_is_written(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    client.get("/captive/sites", headers=headers)  # the org exists; the token is known
    for count in (MAX_SITE_SUBNETS + 1, 3000):
        with statements(runtime) as seen:
            refused = client.post(
                "/captive/sites", headers=headers, json={"name": "Campus", "subnets": slash24s(count)}
            )
        assert_refused(refused, "subnets", MAX_SITE_SUBNETS)
        assert seen == []  # no transaction, so no write lock: the check ran before it
    assert client.get("/captive/sites", headers=headers).json() == []


def test_a_site_update_over_the_cap_or_with_overlaps_leaves_the_site_as_it_was(
    client: TestClient, headers: dict[str, str]
) -> None:
    site = client.post(
        "/captive/sites", headers=headers, json={"name": "HQ", "subnets": ["10.9.0.0/24"]}
    ).json()
    over = client.put(
        f"/captive/sites/{site['id']}",
        headers=headers,
        json={"name": "HQ2", "subnets": slash24s(MAX_SITE_SUBNETS + 1)},
    )
    assert_refused(over, "subnets", MAX_SITE_SUBNETS)
    overlapping = [*slash24s(200), "10.0.3.128/25"]
    clash = client.put(
        f"/captive/sites/{site['id']}", headers=headers, json={"name": "HQ2", "subnets": overlapping}
    )
    assert clash.status_code == 400
    assert (
        clash.json()["message"]
        == "The 'subnets' parameter has overlapping subnets 10.0.3.0/24 and 10.0.3.128/25."
    )
    after = client.get(f"/captive/sites/{site['id']}", headers=headers).json()
    assert (after["name"], after["subnets"]) == ("HQ", ["10.9.0.0/24"])


def test_an_instance_at_the_caps_is_checked_in_comparisons_linear_in_its_size(
    client: TestClient, headers: dict[str, str]
) -> None:
    site = client.post(
        "/captive/sites", headers=headers, json={"name": "Campus", "subnets": slash24s(MAX_SITE_SUBNETS)}
    ).json()
    neighbour = client.post("/captive/instances", headers=headers, json=LOBBY).json()
    # Another instance holds half of the site: every subnet is checked against those too.
    half = MAX_SITE_SUBNETS // 2
    taken = client.put(
        f"/captive/instances/{neighbour['id']}",
        headers=headers,
        json={**LOBBY, "sites": [{"id": site["id"], "subnets": slash24s(MAX_SITE_SUBNETS)[half:]}]},
    )
    assert taken.status_code == 200, taken.text
    instance = client.post("/captive/instances", headers=headers, json=LOBBY).json()
    mine = [str(sub) for net in slash24s(half) for sub in ipaddress.ip_network(net).subnets(new_prefix=25)]
    mine = mine[:MAX_SITE_ENTRY_SUBNETS]
    with pairwise_comparisons() as counted:
        done = client.put(
            f"/captive/instances/{instance['id']}",
            headers=headers,
            json={**LOBBY, "sites": [{"id": site["id"], "subnets": mine}]},
        )
    assert done.status_code == 200, done.text
    assert done.json()["sites"] == [{"id": site["id"], "subnets": mine}]
    # Pairwise: 256 x 256 against the site, 256 x 128 against the neighbour, 256 x 256 among themselves.
    assert counted[0] <= 2 * MAX_SITE_ENTRY_SUBNETS


def test_instance_lists_over_a_cap_are_refused_before_any_statement(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    instance = client.post("/captive/instances", headers=headers, json=LOBBY).json()
    path = f"/captive/instances/{instance['id']}"
    fake = "3f2b8c1d-6a7e-4b9c-8d0e-1f2a3b4c5d6e"
    too_many_sites = [
        {"id": f"{fake[:-4]}{i:04x}", "subnets": ["10.0.0.0/24"]} for i in range(MAX_INSTANCE_SITES + 1)
    ]
    per_site = MAX_SITE_ENTRY_SUBNETS
    in_all = [
        {"id": f"{fake[:-4]}{i:04x}", "subnets": slash24s(per_site, second_octet=i)}
        for i in range(MAX_INSTANCE_SUBNETS // per_site + 1)
    ]
    cases = [
        ({**LOBBY, "sites": [{"id": fake, "subnets": slash24s(per_site + 1)}]}, "sites[0].subnets", per_site),
        ({**LOBBY, "sites": too_many_sites}, "sites", MAX_INSTANCE_SITES),
        ({**LOBBY, "sites": in_all}, "sites", MAX_INSTANCE_SUBNETS),
    ]
    for body, parameter, cap in cases:
        with statements(runtime) as seen:
            refused = client.put(path, headers=headers, json=body)
        assert_refused(refused, parameter, cap)
        assert seen == []
    assert client.get(path, headers=headers).json()["sites"] == []


def test_an_instance_update_refused_on_its_last_site_writes_none_of_them(
    client: TestClient, headers: dict[str, str]
) -> None:
    first = client.post(
        "/captive/sites", headers=headers, json={"name": "A", "subnets": ["10.1.0.0/16"]}
    ).json()
    second = client.post(
        "/captive/sites", headers=headers, json={"name": "B", "subnets": ["10.2.0.0/16"]}
    ).json()
    instance = client.post("/captive/instances", headers=headers, json=LOBBY).json()
    path = f"/captive/instances/{instance['id']}"
    kept = [{"id": first["id"], "subnets": ["10.1.1.0/24"]}]
    assert client.put(path, headers=headers, json={**LOBBY, "sites": kept}).status_code == 200
    refused = client.put(
        path,
        headers=headers,
        json={
            **LOBBY,
            "name": "Renamed",
            "sites": [
                {"id": first["id"], "subnets": ["10.1.2.0/24", "10.1.3.0/24"]},
                {"id": second["id"], "subnets": ["10.2.1.0/24", "10.3.1.0/24"]},
            ],
        },
    )
    assert refused.status_code == 400
    assert "'sites[1].subnets[1]'" in refused.json()["message"]
    after = client.get(path, headers=headers).json()
    assert (after["name"], after["sites"]) == ("Lobby", kept)


def test_overlapping_subnets_of_one_instance_site_are_named_by_index(
    client: TestClient, headers: dict[str, str]
) -> None:
    site = client.post(
        "/captive/sites", headers=headers, json={"name": "A", "subnets": ["10.1.0.0/16"]}
    ).json()
    instance = client.post("/captive/instances", headers=headers, json=LOBBY).json()
    refused = client.put(
        f"/captive/instances/{instance['id']}",
        headers=headers,
        json={
            **LOBBY,
            "sites": [{"id": site["id"], "subnets": ["10.1.1.0/24", "10.1.2.0/24", "10.1.1.64/26"]}],
        },
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        "The 'sites[0].subnets[2]' parameter overlaps another subnet of the same site."
    )


def test_every_request_list_is_capped_in_the_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def max_items(schema: dict[str, Any]) -> int | None:
        for branch in [schema, *schema.get("anyOf", [])]:
            if branch.get("type") == "array":
                found: int | None = branch.get("maxItems")
                return found
        return None

    assert max_items(schemas["SiteIn"]["properties"]["subnets"]) == MAX_SITE_SUBNETS
    assert max_items(schemas["SiteAssignment"]["properties"]["subnets"]) == MAX_SITE_ENTRY_SUBNETS
    assert max_items(schemas["InstanceUpdate"]["properties"]["sites"]) == MAX_INSTANCE_SITES
    assert str(MAX_INSTANCE_SUBNETS) in schemas["InstanceUpdate"]["properties"]["sites"]["description"]
    assert max_items(schemas["NotificationGroupIn"]["properties"]["emails"]) == MAX_EMAILS
    assert max_items(schemas["NotificationGroupIn"]["properties"]["webhooks"]) == MAX_WEBHOOKS
    walled = doc["paths"]["/captive/walled-garden/{siteId}"]["post"]["description"]
    assert (
        f"at most\n    {MAX_ENTRIES_PER_SITE} entries" in walled
        or f"{MAX_ENTRIES_PER_SITE} entries" in walled
    )
    # No array in any request body without a cap.
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if max_items(prop) is None and any(
                b.get("type") == "array" for b in [prop, *prop.get("anyOf", [])]
            ):
                assert not name.endswith(("In", "Create", "Update", "Assignment")), (
                    f"{name}.{field} has no cap"
                )


def test_the_readme_lists_every_cap_with_its_value() -> None:
    text = README.read_text()
    section = text[text.index("## Security model") :]
    table = section[section.index("<!-- limits-table -->") : section.index("<!-- end limits-table -->")]
    rows = {
        match.group(1): match.group(2).replace(",", "")
        for match in re.finditer(r"^\| ([^|]+?) \| `?([\d,/ ]+?)`? \|", table, re.MULTILINE)
    }
    expected = {
        "subnets per site": MAX_SITE_SUBNETS,
        "subnets per site of an instance": MAX_SITE_ENTRY_SUBNETS,
        "sites per instance": MAX_INSTANCE_SITES,
        "subnets per instance, in all": MAX_INSTANCE_SUBNETS,
        "e-mail addresses per notification group": MAX_EMAILS,
        "webhooks per notification group": MAX_WEBHOOKS,
        "walled-garden entries per site": MAX_ENTRIES_PER_SITE,
    }
    for name, value in expected.items():
        assert rows.get(name) == str(value), (name, rows)
    assert rows.get("broadest site subnet") == f"/{MIN_PREFIX[4]} / /{MIN_PREFIX[6]}"


def test_sites_an_earlier_version_stored_beyond_the_limits_keep_working_and_are_named(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    from guestgate.sites import service as site_service
    from guestgate.sites.models import Site

    client.get("/captive/sites", headers=headers)
    with runtime.sessions() as session:
        crowded = Site(org_id="org-a", name="Crowded", subnets=slash24s(MAX_SITE_SUBNETS + 44))
        everything = Site(org_id="org-a", name="Everything", subnets=["0.0.0.0/0"])
        fine = Site(org_id="org-a", name="Fine", subnets=["192.168.0.0/24"])
        session.add_all([crowded, everything, fine])
        session.commit()
        ids = (crowded.id, everything.id, fine.id)
    with runtime.sessions() as session:
        named = {(site_id, what) for _org, site_id, what in site_service.over_limits(session=session)}
    assert named == {
        (ids[0], f"{MAX_SITE_SUBNETS + 44} subnets (at most {MAX_SITE_SUBNETS})"),
        (ids[1], "subnets broader than a site may have: 0.0.0.0/0"),
    }
    from guestgate.doctor import diagnose

    # `guestgate doctor` (and the start-up log) names the same two sites.
    doctored = {p.id for p in diagnose(runtime) if p.parameter == "subnets"}
    assert doctored == {ids[0], ids[1]}
    for site_id in ids:
        assert client.get(f"/captive/sites/{site_id}", headers=headers).status_code == 200
    # Edited, the site must come within the limits.
    assert (
        client.put(
            f"/captive/sites/{ids[1]}", headers=headers, json={"name": "E", "subnets": ["0.0.0.0/0"]}
        ).status_code
        == 400
    )
    assert (
        client.put(
            f"/captive/sites/{ids[1]}", headers=headers, json={"name": "E", "subnets": ["10.0.0.0/8"]}
        ).status_code
        == 200
    )
