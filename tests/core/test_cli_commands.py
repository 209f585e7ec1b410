"""`token create` (--create-org, which key signed it), `token inspect`, `org list`, `gateway entry-url`,
on the test database (SQLite and PostgreSQL) through typer's CliRunner, and one real process run
from another directory."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from guestgate.app import create_app
from guestgate.cli import app
from guestgate.config import Settings, get_settings
from guestgate.db import utcnow
from guestgate.runtime import Runtime
from guestgate.security import SIGNATURE_MISMATCH
from guestgate.site_users.models import SiteUser
from guestgate.sites.schemas import GatewayIn
from guestgate.startup import ExitCode
from tests.conftest import TEST_KEYS
from tests.core.test_startup import assert_short, run
from tests.gateways.world import ORG, make_guest_site

Invoke = Callable[..., Result]


@pytest.fixture
def env_for(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """`env_for(data_dir, keys=True)`: the CLI's environment on the test database."""

    def apply(data_dir: Path, *, keys: bool = True) -> None:
        for name in ("JWT_SECRET", "SIGNING_KEY", "ENCRYPTION_KEY", "DATA_DIR", "PUBLIC_URL"):
            monkeypatch.delenv(f"GUESTGATE_{name}", raising=False)
        monkeypatch.setenv("GUESTGATE_DATABASE_URL", db_url)
        monkeypatch.setenv("GUESTGATE_DATA_DIR", str(data_dir))
        monkeypatch.setenv("GUESTGATE_PUBLIC_URL", "http://testserver")
        if keys:
            for name, value in TEST_KEYS.items():
                monkeypatch.setenv(f"GUESTGATE_{name.upper()}", value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


@pytest.fixture
def cli(env_for: Callable[..., None], settings: Settings) -> Invoke:
    """`cli(*args)`: run `guestgate` with the test's keys, data directory and database."""
    env_for(settings.data_dir)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        get_settings.cache_clear()
        return runner.invoke(app, list(args), prog_name="guestgate")

    return invoke


def org_ids(cli: Invoke) -> list[str]:
    result = cli("org", "list")
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines()[1:]]


def test_an_unknown_org_is_refused_with_its_near_matches_and_not_created(cli: Invoke) -> None:
    made = cli("token", "create", "--org", "acme", "--create-org")
    assert made.exit_code == 0, made.output
    assert "created org 'acme'" in made.stderr
    for typo in ("Acme", "acmee", "acne"):
        refused = cli("token", "create", "--org", typo)
        assert refused.exit_code == 1 and refused.stdout == ""
        assert f"no org '{typo}'" in refused.stderr and "did you mean 'acme'?" in refused.stderr
        assert "--create-org" in refused.stderr
    far = cli("token", "create", "--org", "globex")
    assert far.exit_code == 1 and "did you mean" not in far.stderr
    assert org_ids(cli) == ["acme"]
    again = cli("token", "create", "--org", "acme")
    assert again.exit_code == 0 and "created org" not in again.stderr


def test_token_create_says_which_secret_signed_it(cli: Invoke, env_for: Callable[..., None], tmp_path: Path) -> None:
    from_env = cli("token", "create", "--org", "acme", "--create-org")
    assert "signed with the JWT secret of GUESTGATE_JWT_SECRET (environment or .env)" in from_env.stderr
    fresh = tmp_path / "fresh-var"
    env_for(fresh, keys=False)
    first = cli("token", "create", "--org", "acme")
    assert first.exit_code == 0, first.output
    assert f"data directory {fresh.resolve()}; signed with the JWT secret of {fresh.resolve()}/secrets.env" in (
        first.stderr
    )
    assert "(generated just now)" in first.stderr and "rejects this token" in first.stderr
    second = cli("token", "create", "--org", "acme")
    assert "(generated just now)" not in second.stderr and "rejects" not in second.stderr


def test_a_token_of_another_data_directory_is_refused_and_inspect_says_why(
    cli: Invoke, env_for: Callable[..., None], db_url: str, tmp_path: Path
) -> None:
    server_dir, other_dir = tmp_path / "server-var", tmp_path / "elsewhere" / "var"
    env_for(server_dir, keys=False)
    assert cli("token", "create", "--org", "acme", "--create-org").exit_code == 0
    server = Runtime.build(get_settings().model_copy(update={"public_url": "http://testserver"}))
    try:
        env_for(other_dir, keys=False)
        token = cli("token", "create", "--org", "acme").stdout.strip()
        with TestClient(create_app(runtime=server)) as client:
            refused = client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401 and refused.json()["message"] == SIGNATURE_MISMATCH
        at_server = cli("token", "inspect", token, "--data-dir", str(server_dir))
        assert at_server.exit_code == 1
        assert f"data directory: {server_dir.resolve()}" in at_server.stdout
        assert "verified here: NO - the signature does not match the key from" in at_server.stdout
        assert "another data directory" in at_server.stdout
        at_origin = cli("token", "inspect", token, "--data-dir", str(other_dir))
        assert at_origin.exit_code == 0, at_origin.output
        assert "verified here: yes" in at_origin.stdout
        assert "org 'acme': exists in" in at_origin.stdout
    finally:
        server.close()


def test_inspect_shows_claims_expiry_and_a_missing_org(cli: Invoke, settings: Settings) -> None:
    now = int(time.time())
    claims = {"sub": "desk", "org": "no-such-org", "scope": "coupons:issue", "iat": now - 7200, "exp": now - 3600}
    expired = jwt.encode(claims, TEST_KEYS["jwt_secret"], algorithm="HS256")
    assert cli("migrate").exit_code == 0
    result = cli("token", "inspect", expired)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "algorithm: HS256" in lines and "sub: desk" in lines and "scope: coupons:issue" in lines
    assert any(re.fullmatch(r"exp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(EXPIRED 1h ago\)", line) for line in lines)
    assert "verified here: NO - The bearer token has expired." in lines
    assert any(line.startswith("org 'no-such-org': NOT in") for line in lines)
    assert TEST_KEYS["jwt_secret"] not in result.stdout
    valid = jwt.encode({**claims, "org": ORG, "exp": now + 90000}, TEST_KEYS["jwt_secret"], algorithm="HS256")
    ok = cli("token", "inspect", f"Bearer {valid}")
    assert ok.exit_code == 0 and "(expires in 1d" in ok.stdout and "verified here: yes" in ok.stdout
    garbage = cli("token", "inspect", "not-a-token")
    assert garbage.exit_code == 1 and "not a token" in garbage.stdout


def test_inspect_reads_standard_input_and_creates_nothing(env_for: Callable[..., None], tmp_path: Path) -> None:
    empty = tmp_path / "empty-var"
    env_for(empty, keys=False)
    token = jwt.encode({"sub": "x", "org": "o", "scope": "", "exp": int(time.time()) + 60}, "k" * 40, algorithm="HS256")
    result = CliRunner().invoke(app, ["token", "inspect", "-"], input=token + "\n")
    assert result.exit_code == 1
    assert "this data directory has no JWT secret yet" in result.stdout
    assert not empty.exists()


def test_org_list_counts_instances_and_sites_and_says_when_it_stops(
    cli: Invoke, runtime: Runtime, settings: Settings
) -> None:
    assert cli("org", "list").stderr.startswith("no orgs yet")
    make_guest_site(runtime, GatewayIn(driver="none"))
    for org in ("beta", "alpha"):
        assert cli("token", "create", "--org", org, "--create-org").exit_code == 0
    listed = cli("org", "list")
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[0] == ["ORG", "CREATED", "(UTC)", "INSTANCES", "SITES"]
    assert [(r[0], r[3], r[4]) for r in rows[1:]] == [("alpha", "0", "0"), ("beta", "0", "0"), (ORG, "1", "1")]
    limited = cli("org", "list", "--limit", "2")
    assert len(limited.stdout.splitlines()) == 3 and "... 1 more (--limit)" in limited.stderr


def test_entry_url_shows_the_portal_as_that_guest_and_its_code_signs_in(
    cli: Invoke, runtime: Runtime, settings: Settings
) -> None:
    world = make_guest_site(runtime, GatewayIn(driver="none"), subnet="10.10.0.0/24")
    result = cli("gateway", "entry-url", world.site_id, "--ip", "10.10.0.5")
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith(f"http://testserver/guest/entry?site={world.site_id}&ip=10.10.0.5&ts=")
    from guestgate.coupons.models import Coupon

    with runtime.sessions() as session:
        session.add(Coupon(org_id=ORG, instance_id=world.instance_id, code="ABCDEF", expires_at=utcnow().replace(year=2099)))
        session.commit()
    with TestClient(create_app(runtime=runtime)) as client:
        page = client.get(url.removeprefix("http://testserver"))
        assert page.status_code == 200 and 'name="code"' in page.text
        token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        signed_in = client.post("/guest/signin", data={"t": token, "code": "abcdef"})
        assert signed_in.status_code == 200, signed_in.text
    with runtime.sessions() as session:
        (user,) = session.query(SiteUser).all()
        assert user.ip_address == "10.10.0.5" and user.status == "active"
    unknown = cli("gateway", "entry-url", "5f4e3d2c-1b0a-4987-8654-3210fedcba98", "--ip", "10.10.0.5")
    assert unknown.exit_code == 1 and "No such site" in unknown.stderr
    bad_ip = cli("gateway", "entry-url", world.site_id, "--ip", "10.10.0.500")
    assert bad_ip.exit_code == 2 and "'10.10.0.500' is not an IP address" in bad_ip.output


def test_token_create_run_in_another_directory_names_the_data_directory_it_made(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outcome = run(elsewhere, "token", "create", "--org", "acme", "--create-org")
    assert outcome.code == 0, outcome
    made = (elsewhere / "var").resolve()
    assert f"data directory {made}; signed with the JWT secret of {made}/secrets.env (generated just now)" in (
        outcome.stderr
    )
    assert "a server started with another data directory rejects this token" in outcome.stderr
    assert "Traceback" not in outcome.stderr and outcome.stdout.count(".") == 2
    unknown = run(elsewhere, "token", "create", "--org", "acne")
    assert_short(unknown, ExitCode.FAILED, "no org 'acne'", "did you mean 'acme'?", "--create-org")

