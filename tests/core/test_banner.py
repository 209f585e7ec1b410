"""`guestgate serve --banner` (what `make run` prints): URLs that work and a token that works."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from guestgate.cli import _print_banner
from guestgate.runtime import Runtime


def banner(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    _print_banner(runtime.settings)
    out = capsys.readouterr().out
    preview = re.search(r"Portal preview:\s+(\S.*)", out)
    token = re.search(r"paste it into /docs -> Authorize:\n(\S+)", out)
    assert preview is not None and token is not None, out
    return preview.group(1), token.group(1)


def test_first_start_shows_a_working_preview_and_token(
    client: TestClient, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    preview, token = banner(runtime, capsys)
    path = preview.removeprefix(runtime.settings.public_url)
    page = client.get(path)
    assert page.status_code == 200
    assert "Example guest portal" in page.text
    listed = client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert [i["name"] for i in listed.json()] == ["Example guest portal"]


def test_later_starts_reuse_the_newest_instance_and_never_recreate_the_example(
    client: TestClient, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    _, token = banner(runtime, capsys)
    auth = {"Authorization": f"Bearer {token}"}
    (example,) = client.get("/captive/instances", headers=auth).json()
    assert client.delete(f"/captive/instances/{example['id']}", headers=auth).status_code == 204

    preview, _ = banner(runtime, capsys)
    assert preview.startswith("create an instance")
    assert client.get("/captive/instances", headers=auth).json() == []

    created = client.post(
        "/captive/instances", headers=auth, json={"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}
    ).json()
    preview, _ = banner(runtime, capsys)
    assert f"/guest/preview/{created['id']}?" in preview
    assert "Lobby" in client.get(preview.removeprefix(runtime.settings.public_url)).text
