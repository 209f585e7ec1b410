"""`guestgate token create --name`, `token list --org` and `token revoke` on the test database (both)."""

from __future__ import annotations

import jwt
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from guestgate.cli import app
from guestgate.startup import ExitCode


def test_create_registers_the_token_list_shows_it_revoke_withdraws_it(
    cli: CliRunner, client: TestClient
) -> None:
    created = cli.invoke(
        app, ["token", "create", "--org", "acme", "--create-org", "--name", "billing", "--ttl", "1h"]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert f"token revoke {jti}" in created.stderr
    assert client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listed = cli.invoke(app, ["token", "list", "--org", "acme"])
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()
    assert header.split()[:2] == ["ID", "STATE"]
    assert row.split()[:2] == [jti, "active"] and row.endswith("billing") and "cli" in row
    assert token not in listed.stdout

    revoked = cli.invoke(app, ["token", "revoke", jti])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked" in revoked.stdout and "'billing'" in revoked.stdout
    assert client.get(
        "/captive/instances", headers={"Authorization": f"Bearer {token}"}
    ).status_code == 401 or _within_bound(client, token)
    again = cli.invoke(app, ["token", "revoke", jti])
    assert again.exit_code == 0 and "already revoked" in again.stdout
    assert cli.invoke(app, ["token", "list", "--org", "acme"]).stdout.splitlines()[1].split()[1] == "revoked"


def _within_bound(client: TestClient, token: str) -> bool:
    # The CLI is another process as far as the server's cache is concerned: refused within the bound.
    import time

    deadline = time.monotonic() + 5.0 + 1.0
    while time.monotonic() < deadline:
        if client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"}).status_code == 401:
            return True
        time.sleep(0.1)
    return False


def test_revoke_of_an_unknown_id_exits_1(cli: CliRunner) -> None:
    result = cli.invoke(app, ["token", "revoke", "no-such-token"])
    assert result.exit_code == ExitCode.FAILED
    assert "no API token 'no-such-token'" in result.stderr


def test_list_of_an_org_without_tokens_says_so(cli: CliRunner) -> None:
    result = cli.invoke(app, ["token", "list", "--org", "nobody"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no tokens registered for org 'nobody'" in result.stderr


def test_create_defaults_the_name_to_the_sub_and_refuses_a_lifetime_over_a_year(cli: CliRunner) -> None:
    ok = cli.invoke(app, ["token", "create", "--org", "acme", "--create-org", "--sub", "front-desk"])
    assert ok.exit_code == 0, ok.output
    assert cli.invoke(app, ["token", "list", "--org", "acme"]).stdout.splitlines()[1].endswith("front-desk")
    too_long = cli.invoke(app, ["token", "create", "--org", "acme", "--ttl", "366d"])
    assert too_long.exit_code == ExitCode.USAGE
    assert "at most 365d" in too_long.stderr
