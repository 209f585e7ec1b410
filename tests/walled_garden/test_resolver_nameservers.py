"""`GUESTGATE_GARDEN_NAMESERVERS`: guestgate's own walled-garden lookups ask these nameservers
(a real dnsmasq on a loopback address here) instead of the host's resolv.conf."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from guestgate.db import utcnow
from guestgate.runtime import Runtime
from tests.utils.settings import make_settings

DNSMASQ = "/usr/sbin/dnsmasq"
# A loopback address of its own, so port 53 is free whatever else the host runs.
ADDRESS = "127.91.12.7"
ANSWER = "93.184.215.14"


@pytest.fixture
def nameserver(tmp_path: Path) -> Iterator[str]:
    if shutil.which(DNSMASQ) is None:
        pytest.fail("dnsmasq is not installed (scripts/system-deps.sh installs dnsmasq-base)", pytrace=False)
    process = subprocess.Popen(
        [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={ADDRESS}",
            "--port=53",
            f"--address=/idp.test/{ANSWER}",
            f"--pid-file={tmp_path / 'dnsmasq.pid'}",
            "--user=root",
        ],
        stderr=subprocess.PIPE,
    )
    time.sleep(0.3)
    if process.poll() is not None:
        assert process.stderr is not None
        pytest.fail(f"dnsmasq did not start: {process.stderr.read().decode()}", pytrace=False)
    try:
        yield ADDRESS
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_resolver_asks_the_configured_nameservers(nameserver: str, tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "var", garden_nameservers=f" {nameserver} "
    )
    runtime = Runtime.build(settings)
    try:
        found = runtime.garden_resolver.addresses("idp.test", now=utcnow())
    finally:
        runtime.close()
    assert [address for address, _ in found] == [ANSWER]


def test_a_nameserver_that_is_not_an_address_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ValidationError, match=r"GUESTGATE_GARDEN_NAMESERVERS: 'dns\.example' is not an IP address"
    ):
        make_settings(
            f"sqlite:///{tmp_path / 'g.db'}", tmp_path / "var", garden_nameservers="1.1.1.1,dns.example"
        )
