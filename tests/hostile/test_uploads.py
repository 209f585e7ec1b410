"""Hostile uploads to the instance image endpoint: non-images, bombs, huge dimensions, polyglots, SVG, lies.

A refused upload stores nothing; an accepted one is served back re-encoded (only pixels), with
an image content type and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from guestgate.instances.models import Image as ImageRow
from guestgate.runtime import Runtime
from tests.core.test_errors import assert_error
from tests.utils.hostile import Tenant, local, ok, picture
from tests.utils.settings import TokenFactory

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
JS = b"/*<script>*/alert(1)//"
SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="240" height="120">'
    b'<script>alert(1)</script><rect width="240" height="120"/></svg>'
)
PAYLOAD_MARKERS = (b"<script", b"<html", b"alert(", b"PK\x03\x04", b"<svg", b"<?php")


def chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int, idat: bytes | None = None, extra: bytes = b"") -> bytes:
    """A PNG whose header claims `width`x`height`, with little (or the given) pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    data = idat if idat is not None else zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose screen and first frame claim `width`x`height`."""
    screen = b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG with its frame header rewritten to claim `width`x`height`."""
    data = bytearray(picture((16, 16), "JPEG"))
    marker = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, marker + 5, height, width)
    return bytes(data)


def ztxt_bomb() -> bytes:
    """A valid 240x120 PNG plus a zTXt chunk that inflates to 64 MB."""
    text = chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (64 * 1024 * 1024), 9))
    raw = picture((240, 120), "PNG")
    end = raw.rindex(b"IEND") - 4
    return raw[:end] + text + raw[end:]


def upload(
    client: TestClient,
    tenant: Tenant,
    data: bytes,
    name: str = "logo.png",
    content_type: str = "image/png",
    kind: str = "logo",
) -> Any:
    return client.post(
        f"/captive/instances/{tenant.ids['instanceId']}/images/{kind}",
        headers=tenant.headers,
        files={"file": (name, data, content_type)},
    )


@pytest.fixture
def org_a(client: TestClient, auth: TokenFactory) -> Tenant:
    """An org with one coupon instance that already has a logo (all an upload needs)."""
    tenant = Tenant(org="org-a", headers=auth(org="org-a"))
    instance = ok(
        client.post(
            "/captive/instances",
            headers=tenant.headers,
            json={"name": "Lobby", "strategy": "coupon", "session_ttl": 3600},
        ),
        201,
    )
    tenant.ids["instanceId"] = instance["id"]
    ok(upload(client, tenant, picture((300, 100), "PNG")), 202)
    return tenant


def stored_images(runtime: Runtime) -> list[tuple[Any, ...]]:
    with runtime.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(ImageRow).order_by(ImageRow.id))]


def _images_and_logo(client: TestClient, runtime: Runtime, tenant: Tenant) -> tuple[Any, Any]:
    images = stored_images(runtime)
    instance = client.get(f"/captive/instances/{tenant.ids['instanceId']}", headers=tenant.headers).json()
    return images, instance["theme"]["logo"].split("?")[0]


def refused_and_nothing_stored(
    client: TestClient, runtime: Runtime, tenant: Tenant, data: bytes, **kwargs: Any
) -> str:
    before = _images_and_logo(client, runtime, tenant)
    response = upload(client, tenant, data, **kwargs)
    body = assert_error(response, 400, "invalid_request_error", "file_invalid")
    assert _images_and_logo(client, runtime, tenant) == before
    return str(body["message"])


NOT_IMAGES = {
    "empty": b"",
    "text": b"just some text\n",
    "html": HTML,
    "javascript": JS,
    "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    "zip": b"PK\x03\x04" + b"\x00" * 60,
    "png-magic-only": b"\x89PNG\r\n\x1a\n",
    "png-truncated": picture((240, 120))[:60],
    "png-bad-crc": picture((240, 120))[:29] + b"\x00\x00\x00\x00" + picture((240, 120))[33:],
    "gif-magic-only": b"GIF89a",
    "jpeg-magic-only": b"\xff\xd8\xff\xe0",
    "random": bytes(range(256)) * 8,
    "nul-bytes": b"\x00" * 1024,
}


def test_a_file_that_is_not_an_image_is_refused_and_nothing_stored(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    for data in NOT_IMAGES.values():
        refused_and_nothing_stored(client, runtime, org_a, data)


OTHER_FORMATS = ["BMP", "TIFF", "ICO", "PPM", "TGA", "PCX", "EPS"]


def test_real_images_in_formats_not_accepted_are_refused(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    for fmt in OTHER_FORMATS:
        refused_and_nothing_stored(client, runtime, org_a, picture((240, 120), fmt))


SVGS = [SVG, SVG.split(b"?>", 1)[1], zlib.compress(SVG), b"\x89PNG\r\n\x1a\n" + SVG]


def test_svg_is_refused_whatever_it_is_called(client: TestClient, runtime: Runtime, org_a: Tenant) -> None:
    for data in SVGS:
        for name, content_type in (("logo.svg", "image/svg+xml"), ("logo.png", "image/png")):
            refused_and_nothing_stored(client, runtime, org_a, data, name=name, content_type=content_type)


BOMBS = {
    "png-30000x30000": png_declaring(30000, 30000),
    "png-65535x65535": png_declaring(65535, 65535),
    "png-2^31-wide": png_declaring(2**31 - 1, 1),
    "png-20M-wide-strip": png_declaring(20_000_000, 1),
    "png-5000x4000": png_declaring(5000, 4000),
    "gif-65535x65535": gif_declaring(65535, 65535),
    "jpeg-65500x65500": jpeg_declaring(65500, 65500),
    "jpeg-20000x1000": jpeg_declaring(20000, 1000),
}


def test_decompression_bombs_and_huge_dimensions_are_refused_before_decoding(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    for label, data in BOMBS.items():
        assert len(data) < 4096, "the bomb is tiny; only its header is huge"
        message = refused_and_nothing_stored(client, runtime, org_a, data)
        assert "pixels" in message or "not a valid" in message, (label, message)


def test_a_real_zlib_bomb_within_the_pixel_limit_is_decoded_once_and_stored_small(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    width, height = 4000, 4000  # exactly the pixel limit, 16 MB of grey inflated from a few KB
    rows = (b"\x00" + b"\x00" * width) * height
    data = png_declaring(width, height, idat=zlib.compress(rows, 9))
    assert len(data) < 64 * 1024
    response = upload(client, org_a, data)
    assert response.status_code == 202, response.text
    served = client.get(local(response.json()["theme"]["logo"]))
    assert Image.open(io.BytesIO(served.content)).size == (width, height)


def test_a_text_chunk_that_inflates_to_64_mb_is_refused(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    refused_and_nothing_stored(client, runtime, org_a, ztxt_bomb())


def _with_comment(fmt: str, comment: bytes) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (240, 120), color=(200, 10, 10)).save(out, fmt, comment=comment)
    return out.getvalue()


def _png_with_text(text: bytes) -> bytes:
    raw = picture((240, 120), "PNG")
    end = raw.rindex(b"IEND") - 4
    return raw[:end] + chunk(b"tEXt", b"Comment\x00" + text) + raw[end:]


ZIP = (
    b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + b"\x00" * 16 + b"evil.html" + HTML + b"PK\x05\x06" + b"\x00" * 18
)
POLYGLOTS = {
    "gif+html": (picture((240, 120), "GIF") + HTML, "image/gif"),
    "gif-html-header": (b"GIF89a/*" + picture((240, 120), "GIF")[8:] + b"*/=1;" + JS, "image/gif"),
    "jpeg+html": (picture((240, 120), "JPEG") + HTML, "image/jpeg"),
    "jpeg+js": (picture((240, 120), "JPEG") + JS, "image/jpeg"),
    "jpeg+zip": (picture((240, 120), "JPEG") + ZIP, "image/jpeg"),
    "png+zip": (picture((240, 120), "PNG") + ZIP, "image/png"),
    "png+php": (picture((240, 120), "PNG") + b"<?php system($_GET['c']); ?>", "image/png"),
    "webp+html": (picture((240, 120), "WEBP") + HTML, "image/webp"),
    "gif-comment-script": (_with_comment("GIF", HTML), "image/gif"),
    "jpeg-comment-script": (_with_comment("JPEG", HTML), "image/jpeg"),
    "png-text-script": (_png_with_text(HTML), "image/png"),
}


@pytest.mark.parametrize("name", sorted(POLYGLOTS))
def test_polyglots_are_served_back_re_encoded_with_a_safe_type(
    client: TestClient, runtime: Runtime, org_a: Tenant, name: str
) -> None:
    data, expected_type = POLYGLOTS[name]
    assert any(marker in data for marker in PAYLOAD_MARKERS)
    response = upload(client, org_a, data, name="logo.html", content_type="text/html")
    if response.status_code == 400:  # refusing a mangled file is as safe as cleaning it
        assert_error(response, 400, "invalid_request_error", "file_invalid")
        return
    assert response.status_code == 202, response.text
    served = client.get(local(response.json()["theme"]["logo"]))
    assert served.status_code == 200
    assert served.headers["content-type"] == expected_type
    assert served.headers["x-content-type-options"] == "nosniff"
    assert (
        "content-disposition" not in served.headers or "attachment" in served.headers["content-disposition"]
    )
    for marker in PAYLOAD_MARKERS:
        assert marker not in served.content, f"{name}: {marker!r} survived re-encoding"
    assert served.content != data
    assert Image.open(io.BytesIO(served.content)).size == Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("logo.html", "text/html"),
        ("logo.svg", "image/svg+xml"),
        ("../../../../etc/passwd", "application/octet-stream"),
        ("..\\..\\boot.ini", "image/png"),
        ("logo.png\x00.html", "image/png"),
        ("<script>alert(1)</script>.png", "image/png"),
        ("x" * 4000 + ".png", "image/png"),
        ("logo.gif", "image/gif; charset=<script>"),
    ],
)
def test_lying_names_and_content_types_change_nothing(
    client: TestClient, runtime: Runtime, org_a: Tenant, tmp_path: Path, name: str, content_type: str
) -> None:
    files_before = sorted(p for p in tmp_path.rglob("*") if "var" in p.parts)
    response = upload(client, org_a, picture((240, 120), "PNG"), name=name, content_type=content_type)
    assert response.status_code == 202, response.text
    assert "<script" not in response.text and "passwd" not in response.text
    served = client.get(local(response.json()["theme"]["logo"]))
    assert served.headers["content-type"] == "image/png"  # decoded, not believed
    assert served.headers["x-content-type-options"] == "nosniff"
    # Images live in the database: no file appears anywhere under the data directory.
    assert sorted(p for p in tmp_path.rglob("*") if "var" in p.parts) == files_before
    refused_and_nothing_stored(client, runtime, org_a, HTML, name="logo.png", content_type="image/png")


def test_a_file_over_2_mib_is_refused_and_nothing_stored(
    client: TestClient, runtime: Runtime, org_a: Tenant
) -> None:
    data = picture((240, 120), "PNG") + b"\x00" * (2 * 1024 * 1024)
    message = refused_and_nothing_stored(client, runtime, org_a, data)
    assert "2 MiB" in message


def test_a_file_part_without_a_file_name_is_400(client: TestClient, runtime: Runtime, org_a: Tenant) -> None:
    before = stored_images(runtime)
    response = upload(client, org_a, picture((240, 120)), name="")
    assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert stored_images(runtime) == before


def test_an_upload_without_the_file_field_is_400(client: TestClient, org_a: Tenant) -> None:
    url = f"/captive/instances/{org_a.ids['instanceId']}/images/logo"
    response = client.post(
        url, headers=org_a.headers, files={"other": ("logo.png", picture((240, 120)), "image/png")}
    )
    assert_error(response, 400, "invalid_request_error", "parameter_missing")
    response = client.post(url, headers=org_a.headers, data={"file": "not a file"})
    assert response.status_code == 400
    response = client.post(
        url,
        headers={**org_a.headers, "content-type": "multipart/form-data; boundary=x"},
        content=b"--x\r\ngarbage",
    )
    assert response.status_code == 400, response.text
    response = client.post(url, headers=org_a.headers, json={"file": "aGVsbG8="})
    assert response.status_code == 400, response.text


def test_an_unknown_image_type_is_400(client: TestClient, org_a: Tenant) -> None:
    response = upload(client, org_a, picture((240, 120)), kind="background")
    assert_error(response, 400, "invalid_request_error", "parameter_invalid")
