"""The disk full while an upload is written: 507 insufficient_storage, nothing half-written, and
uploads work again once space is freed.

A tiny tmpfs mounted by the test holds the data directory and the temporary directory the
upload is spooled to (and, on SQLite, the database itself), so the failure is the kernel's real
ENOSPC (or SQLite's SQLITE_FULL), not a simulated one.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select

from guestgate.app import create_app
from guestgate.instances.models import Image
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from tests.utils.bodies import stable
from tests.utils.faults import require
from tests.utils.settings import make_settings

TMPFS_BYTES = 4 * 1024 * 1024
LEFT_FREE = 192 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted on a fresh directory, unmounted after the test."""
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "mounting a tmpfs needs root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def noise_png(width: int, height: int) -> bytes:
    """A PNG of random pixels: it does not compress, so its size is about width*height*3."""
    image = PILImage.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(disk: Path, leave: int) -> Path:
    """Write a file that leaves `leave` bytes free on `disk`."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free_bytes(disk) - leave))
    return filler


def entries(disk: Path) -> set[str]:
    return {str(p.relative_to(disk)) for p in disk.rglob("*")}


def image_rows(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(Image)) or 0


def upload(client: TestClient, headers: dict[str, str], instance_id: str, data: bytes) -> Any:
    files = {"file": ("logo.png", data, "image/png")}
    return client.post(f"/captive/instances/{instance_id}/images/logo", headers=headers, files=files)


def assert_507(response: Any) -> None:
    assert response.status_code == 507, response.text
    assert response.json() == {
        "type": "api_error",
        "code": "insufficient_storage",
        "message": "The server has no space left to store this request. Nothing was saved.",
        "doc_url": "http://testserver/errors/insufficient_storage",
    }


@pytest.mark.slow
def test_disk_full_during_an_upload_is_507_leaves_nothing_and_uploads_work_once_space_is_freed(
    db_url: str,
    tmpfs: Path,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_sqlite = db_url.startswith("sqlite")
    if on_sqlite:
        # The database lives on the small disk too.
        shutil.copy(sqlite_template, tmpfs / "guestgate.db")
        db_url = f"sqlite:///{tmpfs / 'guestgate.db'}"
    spool = tmpfs / "tmp"
    spool.mkdir()
    # Uploads over 1 MiB are spooled to a temporary file: here, on the small disk.
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    runtime = Runtime.build(make_settings(db_url, tmpfs / "var"))
    big, small = noise_png(700, 700), noise_png(400, 300)
    assert len(big) > 1024 * 1024 > len(small) > LEFT_FREE
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            with runtime.sessions() as session:
                org_service.ensure("org-a", session=session)
                session.commit()
            token = mint_token(
                runtime.settings, org="org-a", subject="faults", scopes=ALL_SCOPES, ttl_seconds=600
            )
            headers = {"Authorization": f"Bearer {token}"}
            create = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}
            created = client.post("/captive/instances", headers=headers, json=create)
            assert created.status_code == 201, created.text
            instance_id = created.json()["id"]
            before = stable(client.get(f"/captive/instances/{instance_id}", headers=headers).json())

            filler = fill(tmpfs, LEFT_FREE)
            listing, free = entries(tmpfs), free_bytes(tmpfs)
            # The spooled upload itself does not fit.
            assert_507(upload(client, headers, instance_id, big))
            assert entries(tmpfs) == listing, "a partial file was left behind"
            assert free_bytes(tmpfs) == free, "the partial upload still holds disk space"
            if on_sqlite:
                # The upload fits in memory but the database cannot grow to store it.
                assert_507(upload(client, headers, instance_id, small))
                with sqlite3.connect(tmpfs / "guestgate.db") as conn:
                    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert image_rows(runtime) == 0
            assert stable(client.get(f"/captive/instances/{instance_id}", headers=headers).json()) == before
            # The rest of the API still answers while the disk is full.
            assert client.get("/captive/instances", headers=headers).status_code == 200

            filler.unlink()
            stored = upload(client, headers, instance_id, big)
            assert stored.status_code == 202, stored.text
            logo_url = stored.json()["theme"]["logo"]
            assert logo_url
            served = client.get(logo_url.removeprefix("http://testserver"))
            assert served.status_code == 200
            assert served.headers["content-type"] == "image/png"
            assert image_rows(runtime) == 1
            assert set(os.listdir(spool)) == set()
    finally:
        runtime.close()
