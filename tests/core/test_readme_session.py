"""The README's first session, run as it stands with bash against a live `guestgate serve`.

The snippet is taken from README.md (the `sh` block after the `first-session` marker) and run in
a directory holding a logo and the checkout's `.venv`, as a newcomer would run it in the checkout,
with the token `token create` gives and the server on a free port named only by GUESTGATE_PORT.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from PIL import Image

from tests.faults.conftest import require
from tests.replicas.cluster import GUESTGATE, ROOT, Process, free_port, start, wait_ready

README = ROOT / "README.md"
MARKER = "<!-- first-session:"
NUMBERS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15}

pytestmark = pytest.mark.slow


def first_session() -> tuple[str, int]:
    """The README's first-session snippet and the number of requests its heading announces."""
    text = README.read_text()
    heading = re.search(r"^## A first session \((\w+) requests\)$", text, flags=re.MULTILINE)
    assert heading is not None, "the first session's heading names its number of requests"
    block = re.search(r"```sh\n(.*?)```", text[text.index(MARKER) :], flags=re.DOTALL)
    assert block is not None
    return block.group(1), NUMBERS[heading.group(1)]


def require_programs(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    require(not missing, f"the README session needs {', '.join(missing)} (scripts/system-deps.sh installs them)")


@pytest.fixture
def newcomer(db_url: str, tmp_path: Path) -> Iterator[tuple[Process, dict[str, str], Path]]:
    """A development `guestgate serve` (secrets generated in its data directory) and a work directory."""
    require_programs("bash", "curl", "jq")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGATE_")}
    env.update(
        {
            "GUESTGATE_DATA_DIR": str(tmp_path / "var"),
            "GUESTGATE_DATABASE_URL": db_url,
            "GUESTGATE_PORT": str(port),
            "GUESTGATE_LOG_LEVEL": "warning",
        }
    )
    server = start("serve", "serve", env, tmp_path / "logs")
    server.port = port
    try:
        wait_ready(server)
        work = tmp_path / "checkout"
        work.mkdir()
        (work / ".venv").symlink_to(ROOT / ".venv")
        logo = io.BytesIO()
        Image.new("RGB", (240, 120), (3, 150, 213)).save(logo, format="PNG")
        (work / "logo.png").write_bytes(logo.getvalue())
        yield server, env, work
    finally:
        server.terminate()


def test_the_readme_first_session_runs_as_written(newcomer: tuple[Process, dict[str, str], Path]) -> None:
    server, env, work = newcomer
    snippet, announced = first_session()
    assert len(re.findall(r"\bcurl ", snippet)) == announced, "the heading counts the session's requests"
    token = subprocess.run(
        [str(GUESTGATE), "token", "create", "--org", "default", "--create-org"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    done = subprocess.run(
        ["bash", "-e", "-u", "-o", "pipefail", "-c", snippet],
        cwd=work,
        env={**env, "T": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\nserver:\n{server.output()}"
    out = done.stdout
    base = f"http://127.0.0.1:{server.port}"
    assert re.search(rf"^{re.escape(base)}/captive/assets/\S+$", out, flags=re.MULTILINE), out
    assert re.search(rf"^{re.escape(base)}/guest/entry\?site=[0-9a-f-]+&ip=10\.10\.0\.5&ts=\d+&sig=[0-9a-f]{{64}}$", out, flags=re.MULTILINE)
    assert "Time remaining" in out and "coupons.pdf: print it" in out
    assert re.search(r"^50$", out, flags=re.MULTILINE), out  # the run's batch
    assert (work / "coupons.pdf").read_bytes().startswith(b"%PDF")

    api = httpx2.Client(base_url=base + "/captive", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    (instance,) = api.get("/instances").json()
    assert instance["name"] == "Lobby" and instance["terms_text"] == "Be kind to other guests."
    assert instance["theme"]["logo"] is not None
    (site,) = api.get("/sites").json()
    assert instance["sites"] == [{"id": site["id"], "subnets": ["10.10.0.0/24"]}]
    (guest,) = api.get(f"/sites/{site['id']}/users").json()
    assert guest["ip_address"] == "10.10.0.5" and guest["status"] == "active"
    (garden,) = api.get(f"/walled-garden/{site['id']}").json()
    assert garden["ip_address"].startswith("192.0.2.10")
    valid = api.get(f"/instances/{instance['id']}/coupons", params={"limit": 1000}).json()
    assert len(valid) == 20 - 1 + 50  # step 5's twenty, one redeemed, and the schedule's fifty
