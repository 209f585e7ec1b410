"""The agent wire protocol (guestgate.gateways.agent_protocol): what crosses the wire, and that the agent
on a gateway loads neither the web framework nor the database models."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from guestgate.gateways.agent_protocol import read_state, state_document
from guestgate.gateways.base import GardenEntry, GardenName, GuestAccess

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

# The `guestgate agent` command as a gateway runs it, up to where it would start polling.
RUN_THE_AGENT_COMMAND = """
import json, sys
from guestgate.gateways import agent_client
started = []
agent_client.run_agent = lambda options, stop: started.append(options.site_id)
sys.argv = ["guestgate", "agent", "--controller", "http://127.0.0.1:9", "--site", " Site-1 ", "--key", "k"]
from guestgate import cli
try:
    cli.main()
except SystemExit as exit:
    assert not exit.code, exit.code
print(json.dumps({"started": started, "modules": sorted(sys.modules)}))
"""
IMPORT_THE_AGENT = """
import json, sys
import guestgate.gateways.agent_client
print(json.dumps({"started": ["site-1"], "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("code", [RUN_THE_AGENT_COMMAND, IMPORT_THE_AGENT], ids=["cli", "import"])
def test_the_agent_loads_no_web_framework_and_no_models(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["started"] == ["site-1"]
    modules = set(report["modules"])
    assert "guestgate.gateways.agent_protocol" in modules
    heavy = {"fastapi", "starlette", "guestgate.app", "guestgate.runtime", "guestgate.models"}
    heavy |= {"guestgate.gateways.agent", "guestgate.gateways.agent_routes", "guestgate.gateways.service"}
    assert sorted(modules & heavy) == []
    assert sorted(m for m in modules if m.startswith("guestgate.") and m.endswith(".models")) == []


def test_a_state_read_back_holds_what_was_sent() -> None:
    guest = GuestAccess(
        session_id="s1", ip="10.0.0.5", mac="aa:bb:cc:dd:ee:ff", until=NOW + timedelta(minutes=5)
    )
    name = GardenName("pay.example.com", None, (("93.184.215.14", NOW + timedelta(seconds=90)),))
    document = state_document(
        site_id="site-1",
        version="v1",
        gateway={"interface": "eth1", "table": "guestgate_site1"},
        guests=[guest],
        walled_garden=[GardenEntry("192.0.2.0/24", None)],
        walled_garden_names=[name],
        auth_windows={"10.0.0.9": NOW + timedelta(seconds=30)},
        now=NOW,
    )
    # Through JSON, as over the wire; the agent's clock is an hour ahead of the controller's.
    received = NOW + timedelta(hours=1)
    state = read_state(json.loads(json.dumps(document)), received=received)
    assert state.version == "v1"
    assert state.gateway == {"interface": "eth1", "table": "guestgate_site1"}
    assert state.guests == [
        GuestAccess(
            session_id="s1", ip="10.0.0.5", mac="aa:bb:cc:dd:ee:ff", until=received + timedelta(minutes=5)
        )
    ]
    assert state.walled_garden == [GardenEntry("192.0.2.0/24", None)]
    assert state.walled_garden_names == [
        GardenName("pay.example.com", None, (("93.184.215.14", received + timedelta(seconds=90)),))
    ]
    assert state.auth_windows == {"10.0.0.9": received + timedelta(seconds=30)}


@pytest.mark.parametrize(
    "document", [{}, {"version": "v1", "guests": [{"ip": "10.0.0.5"}]}, {"version": "v1", "guests": 5}]
)
def test_a_state_the_agent_cannot_read_is_a_value_error(document: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        read_state(document, received=NOW)
