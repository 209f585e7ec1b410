"""Smaller holes a hostile operator or guest found (issue 9, item 9), each reproduced here.

- a crafted `cursor` (a time outside UTC's range, an id no row has the shape of, a number past
  64 bits) answered 500 instead of 400;
- `guest.signin_failed` kept the code the guest typed, readable by every operator of the org;
- the success page's Continue button linked to any `orig` a link to the portal carried;
- the SQLite database and its WAL were created world-readable;
- /docs and /redoc could be framed by any site;
- validation regexes anchored with `$` took a value with a trailing newline.
"""

from __future__ import annotations

import ast
import base64
import re
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from guestgate.db import make_engine
from guestgate.gateways.base import GatewayMisconfigured
from guestgate.gateways.nftables import NftablesGateway
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.gateways.rsc import render_script
from guestgate.migrate import upgrade
from guestgate.ops.requests import request_id_of
from guestgate.outbound import OutboundPolicy
from guestgate.portal import continue_links
from guestgate.portal.config import PortalConfig
from guestgate.portal.entry_signing import entry_query
from guestgate.portal.theme import colours
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.utils.settings import make_settings

SRC = Path(__file__).resolve().parents[2] / "src" / "guestgate"
GUEST_IP = "10.7.1.20"
_TOKEN = re.compile(r'name="t" value="([^"]+)"')


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CRAFTED_CURSORS = {
    "time before year 1 in UTC": _cursor("0001-01-01T00:00:00+01:00|x"),
    "time after year 9999 in UTC": _cursor("9999-12-31T23:59:59-01:00|x"),
    "id with a NUL": _cursor("2025-01-01T00:00:00+00:00|\x00"),
    "id of another shape": _cursor("2025-01-01T00:00:00+00:00|' OR 1=1 --"),
    "far too long": _cursor("2025-01-01T00:00:00+00:00|" + "a" * 2000),
    "naive time": _cursor("2025-01-01T00:00:00|x"),
}
# Lists keyed by an integer id (the audit log): ids a 64-bit column cannot hold.
CRAFTED_INTEGER_CURSORS = {
    "id past 64 bits": _cursor("2025-01-01T00:00:00+00:00|" + "9" * 40),
    "negative id": _cursor("2025-01-01T00:00:00+00:00|-" + "9" * 30),
    "not a number": _cursor("2025-01-01T00:00:00+00:00|x"),
}


@pytest.fixture
def world(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    site = client.post("/captive/sites", headers=headers, json={"name": "HQ", "subnets": ["10.7.0.0/16"]})
    instance = client.post(
        "/captive/instances",
        headers=headers,
        json={"name": "Lobby", "strategy": "coupon", "session_ttl": 3600},
    )
    ids = {"site": site.json()["id"], "instance": instance.json()["id"]}
    assigned = client.put(
        f"/captive/instances/{ids['instance']}",
        headers=headers,
        json={
            "name": "Lobby",
            "strategy": "coupon",
            "session_ttl": 3600,
            "sites": [{"id": ids["site"], "subnets": ["10.7.1.0/24"]}],
        },
    )
    assert assigned.status_code == 200, assigned.text
    return ids


@pytest.mark.parametrize("cursor", list(CRAFTED_CURSORS.values()), ids=list(CRAFTED_CURSORS))
def test_a_crafted_cursor_is_a_400_naming_the_cursor_on_every_list(
    client: TestClient, headers: dict[str, str], world: dict[str, str], cursor: str
) -> None:
    lists = [
        "/captive/sites",
        "/captive/instances",
        "/captive/audit-events",
        "/captive/auth-integrations",
        "/captive/notification-groups",
        f"/captive/instances/{world['instance']}/coupons",
        f"/captive/instances/{world['instance']}/coupon-schedules",
        f"/captive/sites/{world['site']}/users",
        f"/captive/walled-garden/{world['site']}",
        f"/captive/instances/{world['instance']}/coupon-batches",
        "/captive/api-tokens",
    ]
    for path in lists:
        response = client.get(path, headers=headers, params={"cursor": cursor})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "parameter_invalid"
        assert "'cursor'" in response.json()["message"]


@pytest.mark.parametrize("cursor", list(CRAFTED_INTEGER_CURSORS.values()), ids=list(CRAFTED_INTEGER_CURSORS))
def test_a_cursor_with_an_id_no_integer_column_holds_is_a_400(
    client: TestClient, headers: dict[str, str], world: dict[str, str], cursor: str
) -> None:
    response = client.get("/captive/audit-events", headers=headers, params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert "'cursor'" in response.json()["message"]


def _guest_token(client: TestClient, site_id: str, **params: str) -> str:
    entry = client.get("/guest/entry", params={"site": site_id, **params})
    assert entry.status_code == 200, entry.text
    found = _TOKEN.search(entry.text)
    assert found is not None
    return found.group(1)


def test_a_refused_code_is_audited_as_a_keyed_hash_never_as_typed(
    runtime: Runtime, world: dict[str, str], headers: dict[str, str]
) -> None:
    from guestgate.app import create_app

    typed = ["ZZZ999", "zzz999", "ABC234"]
    with TestClient(create_app(runtime=runtime), client=(GUEST_IP, 40000)) as guest:
        for code in typed:
            guest.post("/guest/signin", data={"t": _guest_token(guest, world["site"]), "code": code})
        events = guest.get(
            "/captive/audit-events", headers=headers, params={"action": "guest.signin_failed"}
        ).json()
    assert len(events) == 3
    for event in events:
        assert "code" not in event["detail"]
        assert re.fullmatch(r"[0-9a-f]{8}", event["detail"]["code_hash"])
        for code in typed:
            assert code not in repr(event) and code.lower() not in repr(event)
    oldest_first = [e["detail"]["code_hash"] for e in reversed(events)]
    # The same code (case aside) is the same hash: a retried typo shows as such.
    assert oldest_first[0] == oldest_first[1] != oldest_first[2]
    config = PortalConfig.from_settings(runtime.settings)
    assert oldest_first[0] == config.code_hash("ZZZ999")
    # Keyed: not the plain SHA-256 anyone could compute for all 31^6 codes.
    import hashlib

    assert oldest_first[0] != hashlib.sha256(b"ZZZ999").hexdigest()[:8]


def _continue_of(client: TestClient, site_id: str, code: str, **params: str) -> str:
    token = _guest_token(client, site_id, **params)
    done = client.post("/guest/signin", data={"t": token, "code": code})
    assert done.status_code == 200, done.text
    return done.text


def _coupon(client: TestClient, headers: dict[str, str], instance_id: str) -> str:
    made = client.post(
        f"/captive/instances/{instance_id}/coupons", headers=headers, json={"count": 1, "minutes_valid": 60}
    )
    assert made.status_code == 201, made.text
    code: str = made.json()[0]["code"]
    return code


def test_an_orig_from_a_link_is_shown_as_text_never_as_the_continue_button(
    runtime: Runtime, world: dict[str, str], headers: dict[str, str]
) -> None:
    from guestgate.app import create_app

    phishing = "https://wifi-login.example/account?next=bank"
    with TestClient(create_app(runtime=runtime), client=(GUEST_IP, 40000)) as guest:
        page = _continue_of(guest, world["site"], _coupon(guest, headers, world["instance"]), orig=phishing)
    assert 'href="https://wifi-login.example' not in page
    assert '<a class="button"' not in page
    assert '<span class="url">https://wifi-login.example/account?next=bank</span>' in page


def test_the_captive_redirect_vouches_for_orig_for_that_guest_only(
    runtime: Runtime, world: dict[str, str], headers: dict[str, str]
) -> None:
    from guestgate.app import create_app

    app = create_app(runtime=runtime)
    with TestClient(app, client=(GUEST_IP, 40000)) as guest:
        intercepted = guest.get("/news?id=7", headers={"host": "example.com"}, follow_redirects=False)
        assert intercepted.status_code == 302
        entry = intercepted.headers["location"].removeprefix("http://testserver")
        # The entry link names no site: the guest's address finds it.
        token = _TOKEN.search(guest.get(entry).text)
        assert token is not None
        code = _coupon(guest, headers, world["instance"])
        page = guest.post("/guest/signin", data={"t": token.group(1), "code": code}).text
    assert '<a class="button" href="http://example.com/news?id=7">Continue</a>' in page
    # The same signed link opened by another guest (someone sent it to them) is text there.
    with TestClient(app, client=("10.7.1.21", 40000)) as other:
        token = _TOKEN.search(other.get(entry).text)
        assert token is not None
        code = _coupon(other, headers, world["instance"])
        page = other.post("/guest/signin", data={"t": token.group(1), "code": code}).text
    assert '<a class="button"' not in page
    assert '<span class="url">http://example.com/news?id=7</span>' in page


def test_a_vouched_orig_expires_and_a_gateway_signed_one_links(
    runtime: Runtime, world: dict[str, str], headers: dict[str, str]
) -> None:
    from guestgate.app import create_app
    from guestgate.db import utcnow

    config = PortalConfig.from_settings(runtime.settings)
    now = utcnow().timestamp()
    stale = continue_links.redirect_params(
        config.orig_keys[0], orig="http://example.com/a", client=GUEST_IP, now=now - 3600
    )
    signed = entry_query(
        runtime.settings, site_id=world["site"], ip="10.7.1.30", orig="http://example.com/b", now=utcnow()
    )
    with TestClient(create_app(runtime=runtime), client=(GUEST_IP, 40000)) as guest:
        old = _continue_of(guest, world["site"], _coupon(guest, headers, world["instance"]), **stale)
        token = _guest_token(guest, world["site"], **signed)
        by_gateway = guest.post(
            "/guest/signin", data={"t": token, "code": _coupon(guest, headers, world["instance"])}
        ).text
    assert '<a class="button"' not in old and '<span class="url">http://example.com/a</span>' in old
    assert '<a class="button" href="http://example.com/b">Continue</a>' in by_gateway


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "guestgate.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO orgs (id, created_at) VALUES ('o', '2026-01-01 00:00:00')")
    for name in ("guestgate.db", "guestgate.db-wal", "guestgate.db-shm"):
        assert (tmp_path / name).exists(), name
        assert _mode(tmp_path / name) == 0o600, name
    engine.dispose()


def test_existing_world_readable_sqlite_files_are_narrowed_at_start(tmp_path: Path) -> None:
    database = tmp_path / "guestgate.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    with engine.connect() as conn:  # the WAL and SHM files stay while a connection is open
        conn.exec_driver_sql("SELECT 1")
        for name in ("guestgate.db", "guestgate.db-wal", "guestgate.db-shm"):
            (tmp_path / name).chmod(0o644)
        settings = make_settings(f"sqlite:///{database}", tmp_path / "var")
        Runtime.build(settings).close()
        for name in ("guestgate.db", "guestgate.db-wal", "guestgate.db-shm"):
            assert _mode(tmp_path / name) == 0o600, name
    engine.dispose()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_may_not_be_framed_and_run_only_their_own_scripts(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert script_src.count("'sha256-") == len(inline)


# -- trailing newlines --------------------------------------------------------------------------


def _regex_literals() -> list[tuple[str, int, str]]:
    """Every regex pattern written as a literal in a `re` call under src/, with where it is."""
    found: list[tuple[str, int, str]] = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str | bytes)
            ):
                value = node.args[0].value
                text = value.decode("latin-1") if isinstance(value, bytes) else value
                found.append((str(path.relative_to(SRC)), node.lineno, text))
    return found


def test_no_validation_regex_ends_with_a_dollar_that_takes_a_trailing_newline() -> None:
    literals = _regex_literals()
    assert len(literals) > 20  # the scan sees the code base
    anchored = [
        (path, line, pattern)
        for path, line, pattern in literals
        if pattern.endswith("$") and not pattern.endswith("\\$")
    ]
    assert anchored == [], "use fullmatch (or \\Z): `$` also matches before a final newline"


def test_a_time_of_day_colour_or_locale_with_a_trailing_newline_is_refused(
    client: TestClient, headers: dict[str, str], world: dict[str, str]
) -> None:
    base = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}
    for body, parameter in (
        ({**base, "theme": {"accent_color": "#0396d5\n"}}, "theme.accent_color"),
        ({**base, "locale": "en\n"}, "locale"),
    ):
        refused = client.put(f"/captive/instances/{world['instance']}", headers=headers, json=body)
        assert refused.status_code == 400, refused.text
        assert f"'{parameter}'" in refused.json()["message"]
    group = client.post(
        "/captive/notification-groups", headers=headers, json={"name": "Desk", "emails": ["desk@example.com"]}
    )
    schedule = {
        "notification_group_id": group.json()["id"],
        "name": "Daily",
        "count": 5,
        "recurrence_type": "daily",
        "valid_for_in_minutes": 60,
        "timezone": "Europe/Paris",
        "time_of_day": "08:00\n",
    }
    refused = client.post(
        f"/captive/instances/{world['instance']}/coupon-schedules", headers=headers, json=schedule
    )
    assert refused.status_code == 400, refused.text
    assert "'time_of_day'" in refused.json()["message"]
    schedule["time_of_day"] = "08:00"
    accepted = client.post(
        f"/captive/instances/{world['instance']}/coupon-schedules", headers=headers, json=schedule
    )
    assert accepted.status_code == 201, accepted.text


def test_gateway_names_with_a_trailing_newline_are_refused_before_any_script_is_made() -> None:
    # An interface or table name ending in a newline would end the nft line it is written on.
    with pytest.raises(GatewayMisconfigured):
        NftablesGateway(interface="wlan0\n", portal_port=8000)
    with pytest.raises(GatewayMisconfigured):
        NftablesGateway(interface="wlan0", portal_port=8000, table="guestgate\n")
    with pytest.raises(GatewayMisconfigured):
        NftablesGateway(interface="wlan0", portal_port=8000, netns="guests\n")
    with pytest.raises(GatewayMisconfigured):
        RouterOSGateway(host="router.example\n", username="api", password="secret", outbound=OutboundPolicy())
    # The router script's user name ends a RouterOS command line the same way.
    site = Site(id="7c9e6679-7425-40de-944b-e07fc1f90ae7", name="HQ", subnets=["10.0.0.0/24"])
    with pytest.raises(GatewayMisconfigured):
        render_script(site, "http://192.0.2.10/guest", "guestgate\n", api_password="pw")


def test_a_request_id_with_a_trailing_newline_is_replaced() -> None:
    kept = request_id_of({"headers": [(b"x-request-id", b"proxy-42")]})
    replaced = request_id_of({"headers": [(b"x-request-id", b"proxy-42\n")]})
    assert kept == "proxy-42"
    assert replaced != "proxy-42\n" and re.fullmatch(r"[0-9a-f]{32}", replaced)


def test_a_stored_colour_with_a_trailing_newline_is_not_put_in_the_stylesheet() -> None:
    assert colours({"accent_color": "#123456\n"})["accent_color"] == "#0396d5"


@pytest.mark.parametrize("expires", ["²", "١٢٣٤٥٦٧٨٩٠"])
def test_non_ascii_digits_in_a_signed_portal_url_are_refused_not_a_crash(
    client: TestClient, world: dict[str, str], expires: str
) -> None:
    response = client.get(
        f"/guest/preview/{world['instance']}", params={"expires": expires, "signature": "a"}
    )
    assert response.status_code == 403
