"""Waiting for a `guestgate serve` subprocess a test started."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx2
import pytest


def wait_until_healthy(process: subprocess.Popen[bytes], base: str, log_path: Path, *, seconds: float = 30) -> None:
    """Return once `base`/healthz answers 200; fail with the server's log if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"guestgate serve exited:\n{log_path.read_text()}", pytrace=False)
        try:
            if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"guestgate serve did not answer:\n{log_path.read_text()}", pytrace=False)
        time.sleep(0.1)
