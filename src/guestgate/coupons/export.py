"""Printable exports of coupons: CSV for spreadsheets and mail merges, a PDF sheet of cut-out cards.

The PDF has 10 cards per page (2 columns x 5 rows, A4 or Letter). Each card shows the instance's
name (and logo) on a band of its accent colour, the code in a large monospace face, the network's
name, when it stops being redeemable in local time with the zone (`guestgate.local_time`), and a
QR code that opens the portal with the code filled in; its words are in the portal's language
(`guestgate.coupons.words`). The CSV keeps the API's UTC timestamps and adds `valid_until` in
local time.

Speed: a QR code is drawn as one filled path of rectangles (one per run of dark modules in a row),
written straight into the page as PDF operators and cached per URL, so a sheet of 500 cards takes a
fraction of a second. Choosing the QR mask by the ISO penalty rules for every code would cost most
of that time; the URL prefix dominates the symbol, so the mask is chosen once per portal URL by
scoring every mask on a fixed sample of codes, and used for every code of that portal.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Literal, Protocol

import segno
from PIL import Image as PILImage
from reportlab import rl_config
from reportlab.lib.colors import Color, HexColor
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from segno import encoder as qr_encoder

from guestgate import local_time
from guestgate.coupons.words import Words
from guestgate.plans import service as plan_service

PageSize = Literal["A4", "Letter"]
PAGE_SIZES: dict[str, tuple[float, float]] = {"A4": A4, "Letter": LETTER}
# `valid_until` (local time with the zone) and the plan's columns come last: the first four columns
# are as they always were. An empty plan cell is "no limit".
CSV_COLUMNS = ("code", "expires_at", "created_at", "id", "valid_until", *plan_service.FIELDS)
COLUMNS = 2
ROWS = 5
CARDS_PER_PAGE = COLUMNS * ROWS
MARGIN = 28.0
PADDING = 12.0
BAND_HEIGHT = 24.0
LOGO_MAX_WIDTH = 64.0
QR_ERROR = "m"
# Light modules around the symbol that must stay clear (ISO/IEC 18004 asks for 4).
QR_QUIET_ZONE = 4
CODE_FONT = "Courier-Bold"
CODE_SIZE = 30.0
CODE_TRACKING = 3.0
TEXT_FONT = "Helvetica"
BOLD_FONT = "Helvetica-Bold"
INK = Color(0.12, 0.12, 0.12)
MUTED = Color(0.42, 0.42, 0.42)
CUT_LINE = Color(0.72, 0.72, 0.72)
# Codes the mask is calibrated on: spread over the alphabet, fixed so the choice is repeatable.
MASK_SAMPLE = ("2345BC", "DEFGHJ", "KMNPQR", "STUVWX", "YZ6789", "A7Q3MZ", "XW9E4K", "HT5RN8")
# ASCII85 around compressed streams only served 7-bit channels; in pure Python it costs a third of
# a warm render. Process-wide, but guestgate draws no other PDFs.
rl_config.useA85 = 0
_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class CouponLike(Protocol):
    """What an export needs of a coupon (the ORM row and the API schema both fit)."""

    @property
    def id(self) -> str: ...

    @property
    def code(self) -> str: ...

    @property
    def expires_at(self) -> datetime: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def plan(self) -> plan_service.Plan: ...


# The portal page a card's QR code opens, with the code filled in.
PORTAL_PATH = "/guest/entry"


def to_csv(
    coupons: Iterable[CouponLike],
    *,
    columns: Sequence[str] = CSV_COLUMNS,
    zone: tzinfo = UTC,
    header: bool = True,
) -> str:
    """The coupons as RFC 4180 CSV (CRLF lines, header row, RFC 3339 UTC timestamps; `valid_until`
    is the expiry in `zone`, `2026-12-02 21:11 AEDT`). Without `header`: the rows only (a later
    part of a file written in parts)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    for coupon in coupons:
        plan = coupon.plan.to_dict()
        writer.writerow(
            [
                local_time.date_time(coupon.expires_at, zone)
                if column == "valid_until"
                else _csv_value(plan[column] if column in plan else getattr(coupon, column))
                for column in columns
            ]
        )
    return out.getvalue()


def timestamp(value: datetime) -> str:
    """RFC 3339 UTC with `Z`, second precision (the API's timestamp form)."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def valid_until(value: datetime, *, zone: tzinfo = UTC, words: Words | None = None) -> str:
    """The expiry as printed on a card: `Valid until 2026-11-25 18:00 UTC`, `... 21:11 AEDT`."""
    return (words or Words(None))("card_valid_until", time=local_time.date_time(value, zone))


def plan_line(coupon: CouponLike, words: Words | None = None) -> str:
    """What the code buys, as its card says it (`2 devices · 10 Mbit/s · 1 GB`; empty for a code that
    signs in one device once without limits)."""
    minutes = int((coupon.expires_at - coupon.created_at).total_seconds() // 60)
    return plan_service.describe(coupon.plan, words, validity_minutes=minutes)


def portal_url(public_url: str, instance_id: str) -> str:
    """The portal entry a card's QR code opens: scoped to the card's instance.

    The card names no site (a batch serves every site of its instance), so the portal finds
    the site from the guest's address; `instance` confines that look-up to this instance's
    subnets, so no other org's subnets can capture or confuse it (`portal.resolution`).
    """
    return f"{public_url}{PORTAL_PATH}?instance={instance_id}"


def entry_url(portal_url: str, code: str) -> str:
    """The portal URL with the code filled in (what a card's QR code opens)."""
    separator = "&" if "?" in portal_url else "?"
    return f"{portal_url}{separator}code={code}"


@dataclass(frozen=True)
class CardLayout:
    """Where things sit on a page, in points from the bottom-left corner."""

    page_width: float
    page_height: float
    card_width: float
    card_height: float
    qr_size: float

    def card_origin(self, slot: int) -> tuple[float, float]:
        """Bottom-left corner of card `slot` (0..9, row by row from the top left)."""
        row, column = divmod(slot, COLUMNS)
        x = MARGIN + column * self.card_width
        y = self.page_height - MARGIN - (row + 1) * self.card_height
        return x, y

    def qr_origin(self, slot: int) -> tuple[float, float]:
        """Bottom-left corner of card `slot`'s QR area (quiet zone included), a square of `qr_size`."""
        x, y = self.card_origin(slot)
        return x + self.card_width - PADDING - self.qr_size, y + PADDING * 0.5


def layout(page_size: PageSize = "A4") -> CardLayout:
    """The card grid of a page size."""
    width, height = PAGE_SIZES[page_size]
    card_width = (width - 2 * MARGIN) / COLUMNS
    card_height = (height - 2 * MARGIN) / ROWS
    qr_size = card_height - PADDING * 1.5 - BAND_HEIGHT - 4
    return CardLayout(width, height, card_width, card_height, qr_size)


@dataclass(frozen=True)
class CardText:
    """What every card of a sheet says besides its code and expiry."""

    title: str
    network: str | None
    howto: tuple[str, ...]


def to_pdf(
    coupons: Sequence[CouponLike],
    *,
    instance_name: str,
    accent_color: str,
    portal_url: str,
    page_size: PageSize = "A4",
    words: Words | None = None,
    zone: tzinfo = UTC,
    network_name: str | None = None,
    logo: bytes | None = None,
) -> bytes:
    """A printable sheet of cut-out cards, 10 per page; an empty list gives one empty page.

    `words` is the language of the cards (English by default), `zone` the time zone of their
    expiry, `logo` the instance's logo image (drawn in the band; an image that cannot be read
    is left out).
    """
    words = words or Words(None)
    grid = layout(page_size)
    name = _one_line(instance_name) or words("default_name")
    band = _color(accent_color)
    band_text = _text_on(band)
    mask = _best_mask(portal_url)
    image = _logo(logo)
    logo_width = 0.0
    if image is not None:
        width, height = image.getSize()
        logo_width = min(LOGO_MAX_WIDTH, (BAND_HEIGHT - 6) * width / max(height, 1))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(grid.page_width, grid.page_height), pageCompression=1)
    canvas.setTitle(words("document_title", name=name))
    canvas.setAuthor("guestgate")
    canvas.setCreator("guestgate")
    text_width = grid.card_width - 2 * PADDING - grid.qr_size - 4
    network = _one_line(network_name or "")
    text = CardText(
        title=_fit(name, BOLD_FONT, 11.0, grid.card_width - 2 * PADDING - 16 - logo_width),
        network=_fit(words("card_network", name=network), BOLD_FONT, 8.0, text_width) if network else None,
        # A sheet of codes that all sign in once says so; otherwise the words say nothing of it.
        howto=tuple(_wrap(words(_howto_key(coupons)), TEXT_FONT, 7.0, text_width, lines=3)),
    )
    # A batch's coupons share their expiry: each distinct one is formatted and wrapped once.
    untils: dict[datetime, list[str]] = {}
    # Likewise each distinct plan (with its validity) is described once.
    lines: dict[tuple[plan_service.Plan, float], list[str]] = {}
    for start in range(0, max(len(coupons), 1), CARDS_PER_PAGE):
        page = coupons[start : start + CARDS_PER_PAGE]
        _cut_lines(canvas, grid, len(page))
        for slot, coupon in enumerate(page):
            until = untils.get(coupon.expires_at)
            if until is None:
                text_until = valid_until(coupon.expires_at, zone=zone, words=words)
                until = untils[coupon.expires_at] = _wrap(text_until, BOLD_FONT, 8.5, text_width, lines=2)
            key = (coupon.plan, (coupon.expires_at - coupon.created_at).total_seconds())
            line = lines.get(key)
            if line is None:
                said = plan_line(coupon, words)
                line = lines[key] = _wrap(said, BOLD_FONT, 8.0, text_width, lines=2) if said else []
            _card(canvas, grid, slot, coupon, text, until, line, words=words, band=band, band_text=band_text)
            if image is not None:
                _draw_logo(canvas, grid, slot, image, logo_width)
            qr_x, qr_y = grid.qr_origin(slot)
            _qr(canvas, entry_url(portal_url, coupon.code), mask, x=qr_x, y=qr_y, size=grid.qr_size)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def _howto_key(coupons: Sequence[CouponLike]) -> str:
    return "card_howto" if all(coupon.plan.max_uses == 1 for coupon in coupons) else "card_howto_many"


def pdf_filename(stem: str) -> str:
    """A download name for a sheet of cards."""
    return f"{stem}.pdf"


def _card(
    canvas: Canvas,
    grid: CardLayout,
    slot: int,
    coupon: CouponLike,
    text: CardText,
    until: list[str],
    plan: list[str],
    *,
    words: Words,
    band: Color,
    band_text: Color,
) -> None:
    x, y = grid.card_origin(slot)
    top = y + grid.card_height - PADDING * 0.75
    left = x + PADDING
    canvas.setFillColor(band)
    canvas.rect(left, top - BAND_HEIGHT, grid.card_width - 2 * PADDING, BAND_HEIGHT, stroke=0, fill=1)
    canvas.setFillColor(band_text)
    canvas.setFont(BOLD_FONT, 11.0)
    canvas.drawString(left + 8, top - BAND_HEIGHT + 8, text.title)
    line = top - BAND_HEIGHT - 16
    canvas.setFillColor(MUTED)
    canvas.setFont(TEXT_FONT, 7.5)
    canvas.drawString(left, line, words("card_label"))
    canvas.setFillColor(INK)
    canvas.setFont(CODE_FONT, CODE_SIZE)
    line -= 30
    canvas.drawString(left - 1, line, coupon.code, charSpace=CODE_TRACKING)
    line -= 14
    canvas.setFont(BOLD_FONT, 8.0)
    for part in plan:
        canvas.drawString(left, line, part)
        line -= 10
    if text.network:
        canvas.drawString(left, line, text.network)
        line -= 11
    canvas.setFont(BOLD_FONT, 8.5)
    for part in until:
        canvas.drawString(left, line, part)
        line -= 10
    canvas.setFillColor(MUTED)
    canvas.setFont(TEXT_FONT, 7.0)
    line -= 1
    for part in text.howto:
        if line < y + PADDING * 0.5:
            break
        canvas.drawString(left, line, part)
        line -= 8.5


def _draw_logo(canvas: Canvas, grid: CardLayout, slot: int, image: ImageReader, width: float) -> None:
    # reportlab stores an image drawn many times once in the file: every card refers to it.
    x, y = grid.card_origin(slot)
    top = y + grid.card_height - PADDING * 0.75
    right = x + grid.card_width - PADDING - 4
    height = BAND_HEIGHT - 6
    canvas.drawImage(
        image,
        right - width,
        top - BAND_HEIGHT + 3,
        width=width,
        height=height,
        preserveAspectRatio=True,
        anchor="e",
        mask="auto",
    )


def _logo(data: bytes | None) -> ImageReader | None:
    """The logo as reportlab reads it (decoded once per sheet), or None without one or if unreadable."""
    if not data:
        return None
    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            opened.load()
            transparent = "A" in opened.getbands() or "transparency" in opened.info
            picture = opened.convert("RGBA" if transparent else "RGB")
        return ImageReader(picture)
    except (OSError, ValueError, SyntaxError):
        return None


def _cut_lines(canvas: Canvas, grid: CardLayout, cards: int) -> None:
    rows = (cards + COLUMNS - 1) // COLUMNS
    canvas.saveState()
    canvas.setStrokeColor(CUT_LINE)
    canvas.setLineWidth(0.5)
    canvas.setDash(3, 3)
    top = grid.page_height - MARGIN
    bottom = top - rows * grid.card_height
    for column in range(COLUMNS + 1):
        x = MARGIN + column * grid.card_width
        canvas.line(x, bottom, x, top)
    for row in range(rows + 1):
        y = top - row * grid.card_height
        canvas.line(MARGIN, y, MARGIN + COLUMNS * grid.card_width, y)
    canvas.restoreState()


def _qr(canvas: Canvas, data: str, mask: int, *, x: float, y: float, size: float) -> None:
    modules, operators = _qr_operators(data, mask)
    module = size / (modules + 2 * QR_QUIET_ZONE)
    canvas.saveState()
    canvas.translate(x + QR_QUIET_ZONE * module, y + QR_QUIET_ZONE * module)
    canvas.scale(module, module)
    canvas.setFillColor(INK)
    canvas.addLiteral(operators)
    canvas.restoreState()


@lru_cache(maxsize=4096)
def _qr_operators(data: str, mask: int) -> tuple[int, str]:
    """PDF operators filling the dark modules of `data`'s QR code, in module units (origin bottom-left)."""
    matrix = segno.make(data, error=QR_ERROR, micro=False, mask=mask).matrix
    size = len(matrix)
    rects: list[str] = []
    for r, row in enumerate(matrix):
        y = size - 1 - r
        c = 0
        while c < size:
            if row[c]:
                start = c
                while c < size and row[c]:
                    c += 1
                rects.append(f"{start} {y} {c - start} 1 re")
            else:
                c += 1
    # One fill for the whole symbol: abutting rectangles of one path show no seams when rasterised.
    return size, "\n".join(rects) + "\nf"


@lru_cache(maxsize=64)
def _best_mask(portal_url: str) -> int:
    """The mask with the lowest total ISO penalty over the sample codes of this portal URL."""
    totals = [0] * 8
    for code in MASK_SAMPLE:
        for mask in range(8):
            symbol = segno.make(entry_url(portal_url, code), error=QR_ERROR, micro=False, mask=mask)
            matrix = [bytearray(row) for row in symbol.matrix]
            score: int = qr_encoder.evaluate_mask(matrix, len(matrix), len(matrix))  # type: ignore[no-untyped-call]
            totals[mask] += score
    return totals.index(min(totals))


def _color(value: str) -> Color:
    match = _HEX.fullmatch(value.strip())
    if match is None:
        return HexColor("#0396d5")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return HexColor("#" + digits)


def _text_on(background: Color) -> Color:
    # WCAG relative luminance: dark text on light accents, white on dark ones.
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    luminance = (
        0.2126 * channel(background.red)
        + 0.7152 * channel(background.green)
        + 0.0722 * channel(background.blue)
    )
    return Color(0.1, 0.1, 0.1) if luminance > 0.45 else Color(1, 1, 1)


def _fit(text: str, font: str, size: float, width: float) -> str:
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "...", font, size) > width:
        text = text[:-1]
    return text.rstrip() + "..."


def _wrap(text: str, font: str, size: float, width: float, *, lines: int) -> list[str]:
    """`text` broken at spaces into at most `lines` lines of `width`; the last one shortened if need be."""
    out: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and stringWidth(candidate, font, size) > width:
            out.append(current)
            current = word
        else:
            current = candidate
    if current:
        out.append(current)
    if len(out) > lines:
        out = [*out[: lines - 1], " ".join(out[lines - 1 :])]
    return [_fit(part, font, size, width) for part in out]


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes when read outside the UTCDateTime column type.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timestamp(value)
    return str(value)
