"""Logo and icon uploads: decoded with Pillow (never trusted by name or type) and re-encoded.

Re-encoding keeps only the pixels: trailing data of polyglot files and metadata are dropped.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.errors import FileInvalid, NotFound
from guestgate.instances import service as instance_service
from guestgate.instances.models import Image
from guestgate.security import UrlSigner

ImageKind = Literal["logo", "icon"]
MAX_BYTES = 2 * 1024 * 1024
# Beyond this many pixels an image is refused before it is decoded (decompression bombs).
MAX_PIXELS = 16_000_000
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
LOGO_MIN = (120, 80)
ICON_MIN = 32


@dataclass(frozen=True)
class CheckedImage:
    """An image that passed validation, re-encoded."""

    content_type: str
    width: int
    height: int
    data: bytes


def check(raw: bytes, kind: ImageKind) -> CheckedImage:
    """Decode, check and re-encode an upload; FileInvalid says what is wrong."""
    if not raw:
        raise FileInvalid("The file is empty.")
    if len(raw) > MAX_BYTES:
        raise FileInvalid(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MiB.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(raw), formats=list(FORMATS))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise FileInvalid(f"The image is {width}x{height}: more than {MAX_PIXELS} pixels.")
            image.load()
        except FileInvalid:
            raise
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
            raise FileInvalid(f"The image has more than {MAX_PIXELS} pixels.") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise FileInvalid("The file is not a valid PNG, JPEG, WebP or GIF image.") from exc
    fmt = image.format or ""
    if fmt not in FORMATS:
        raise FileInvalid("The file is not a valid PNG, JPEG, WebP or GIF image.")
    if kind == "logo" and (width < LOGO_MIN[0] or height < LOGO_MIN[1]):
        raise FileInvalid(
            f"A logo must be at least {LOGO_MIN[0]}x{LOGO_MIN[1]} pixels; this one is {width}x{height}."
        )
    if kind == "icon":
        if width != height:
            raise FileInvalid(f"An icon must be square; this one is {width}x{height}.")
        if width < ICON_MIN:
            raise FileInvalid(
                f"An icon must be at least {ICON_MIN}x{ICON_MIN} pixels; this one is {width}x{height}."
            )
    return CheckedImage(FORMATS[fmt], width, height, _reencode(image, fmt))


def _reencode(image: PILImage.Image, fmt: str) -> bytes:
    # Pillow writes a GIF or JPEG comment (and ICC/EXIF data) found in `info` back out: a
    # comment holding HTML would survive. Only the transparency of palette images is kept.
    image.info = {key: value for key, value in image.info.items() if key == "transparency"}
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
    elif fmt == "GIF":
        image.save(out, "GIF")
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=90)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def store(instance_id: str, kind: ImageKind, raw: bytes, *, org_id: str, session: Session) -> None:
    """Validate an upload and make it the instance's logo or icon (replacing the previous one)."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    checked = check(raw, kind)
    existing = session.scalar(select(Image).where(Image.instance_id == instance.id, Image.kind == kind))
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(
        Image(
            instance_id=instance.id,
            kind=kind,
            content_type=checked.content_type,
            width=checked.width,
            height=checked.height,
            sha256=hashlib.sha256(checked.data).hexdigest(),
            data=checked.data,
        )
    )
    audit_service.record(
        session,
        org_id=org_id,
        action="instance.image_upload",
        target_type="instance",
        target_id=instance.id,
        detail={
            "kind": kind,
            "content_type": checked.content_type,
            "width": checked.width,
            "height": checked.height,
        },
    )
    session.commit()


def fetch(image_id: str, *, expires: int, signature: str, signer: UrlSigner, session: Session) -> Image:
    """The image behind a signed asset URL; SignatureInvalid, UrlExpired or NotFound otherwise."""
    signer.verify_expiring(signature, expires, "asset", image_id)
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound("asset", image_id)
    return image
