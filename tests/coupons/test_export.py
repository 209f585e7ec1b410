"""Printable exports: the CSV, and the PDF sheet of cards read back (text, pages) and looked at (pixels)."""

from __future__ import annotations

import csv
import io
import math
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import segno
from PIL import Image
from pypdf import PdfReader

from guestgate import local_time
from guestgate.coupons import codes, export
from guestgate.coupons.words import Words
from guestgate.plans.service import DEFAULT as DEFAULT_PLAN
from guestgate.plans.service import Plan

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PORTAL = "http://127.0.0.1:8000/guest/entry"
# The contract's four columns, local time, and [extension] the plan's (empty: no limit).
CSV_HEADER = (
    "code,expires_at,created_at,id,valid_until,"
    "max_devices,max_uses,download_kbps,upload_kbps,data_limit_mb,validity_from"
)


@dataclass(frozen=True)
class Row:
    id: str
    code: str
    expires_at: datetime
    created_at: datetime
    plan: Plan = DEFAULT_PLAN


def coupons(n: int, *, valid_minutes: int = 480) -> list[Row]:
    drawn: list[str] = []
    while len(drawn) < n:
        code = codes.generate()
        if code not in drawn:
            drawn.append(code)
    return [Row(f"id-{i}", code, T0 + timedelta(minutes=valid_minutes), T0) for i, code in enumerate(drawn)]


def pdf_of(rows: list[Row], **options: object) -> bytes:
    values: dict[str, object] = {
        "instance_name": "Lobby Wi-Fi",
        "accent_color": "#0396d5",
        "portal_url": PORTAL,
    }
    values.update(options)
    return export.to_pdf(rows, **values)  # type: ignore[arg-type]


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


# --- CSV ----------------------------------------------------------------------------------------------


def test_csv_is_rfc4180_with_a_header_and_one_row_per_coupon() -> None:
    rows = coupons(3)
    text = export.to_csv(rows)
    lines = text.split("\r\n")
    assert lines[0] == CSV_HEADER
    assert lines[-1] == ""  # every record ends with CRLF
    assert len(lines) == 5
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["code"], r["expires_at"], r["created_at"], r["id"]) for r in parsed] == [
        (row.code, "2026-11-25T18:00:00Z", "2026-11-25T10:00:00Z", row.id) for row in rows
    ]


def test_csv_quotes_values_that_need_it_and_reads_naive_times_as_utc() -> None:
    row = Row('id,"1"', "8B7W3D", datetime(2026, 11, 25, 18, 0), T0.astimezone(timezone(timedelta(hours=11))))
    text = export.to_csv([row])
    assert (
        text.splitlines()[1]
        == '8B7W3D,2026-11-25T18:00:00Z,2026-11-25T10:00:00Z,"id,""1""",2026-11-25 18:00 UTC,1,1,,,,creation'
    )
    [parsed] = list(csv.DictReader(io.StringIO(text, newline="")))
    assert parsed["id"] == 'id,"1"'


def test_csv_columns_can_be_chosen() -> None:
    [row] = coupons(1)
    assert export.to_csv([row], columns=("code",)) == f"code\r\n{row.code}\r\n"


def test_csv_of_no_coupons_is_the_header_only() -> None:
    assert export.to_csv([]) == CSV_HEADER + "\r\n"


# --- PDF: read back ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "pages"), [(1, 1), (10, 1), (11, 2), (23, 3), (40, 4)])
def test_pdf_has_ten_cards_per_page_with_every_code_and_its_validity(n: int, pages: int) -> None:
    rows = coupons(n)
    texts = page_texts(pdf_of(rows))
    assert len(texts) == pages == math.ceil(n / 10)
    for index, row in enumerate(rows):
        assert row.code in texts[index // 10]
    assert all(
        text.count("Valid until 2026-11-25 18:00 UTC") == min(10, n - i * 10) for i, text in enumerate(texts)
    )
    assert all(text.count("Lobby Wi-Fi") == min(10, n - i * 10) for i, text in enumerate(texts))


def test_pdf_of_no_coupons_is_one_empty_page() -> None:
    texts = page_texts(pdf_of([]))
    assert len(texts) == 1
    assert texts[0].strip() == ""


@pytest.mark.parametrize(("size", "points"), [("A4", (595, 842)), ("Letter", (612, 792))])
def test_pdf_page_size_is_a4_by_default_or_letter(size: str, points: tuple[int, int]) -> None:
    options = {} if size == "A4" else {"page_size": size}
    reader = PdfReader(io.BytesIO(pdf_of(coupons(12), **options)))
    assert len(reader.pages) == 2
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == points


def test_long_or_multi_line_instance_names_are_shortened_to_one_line() -> None:
    name = "Grand Hotel\nConference Centre & Spa - West Wing Lobby and Pool Bar Wi-Fi Network"
    [text] = page_texts(pdf_of(coupons(1), instance_name=name))
    first_line = text.splitlines()[0]
    assert first_line.startswith("Grand Hotel Conference Centre")
    assert first_line.endswith("...")
    assert "\nConference" not in text


def test_unusual_names_and_colours_still_render() -> None:
    for accent in ("#fff", "#FFD700", "not-a-colour", "#000000"):
        pdf = pdf_of(coupons(2), instance_name="Café «Tōkyō» 東京", accent_color=accent)
        assert len(page_texts(pdf)) == 1


def test_entry_url_fills_in_the_code() -> None:
    assert export.entry_url(PORTAL, "8B7W3D") == f"{PORTAL}?code=8B7W3D"
    assert export.entry_url(f"{PORTAL}?site=s1", "8B7W3D") == f"{PORTAL}?site=s1&code=8B7W3D"


def test_valid_until_is_printed_in_utc_without_a_zone() -> None:
    local = datetime(2026, 11, 26, 5, 0, tzinfo=timezone(timedelta(hours=11)))
    assert export.valid_until(local) == "Valid until 2026-11-25 18:00 UTC"
    assert export.valid_until(local, zone=SYDNEY) == "Valid until 2026-11-26 05:00 AEDT"


def test_pdf_of_500_codes_has_50_pages_with_every_code() -> None:
    """Timing lives in bench/exports.py; here the big sheet is checked for completeness."""
    rows = coupons(500)
    texts = page_texts(pdf_of(rows))
    assert len(texts) == 50
    assert rows[0].code in texts[0] and rows[-1].code in texts[-1]


# --- PDF: looked at ----------------------------------------------------------------------------------------


def render_first_page(pdf: bytes, name: str, dpi: int) -> Image.Image:
    """Render page 1 with poppler's pdftoppm into test-artifacts/<name>.png (kept for people to look at)."""
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm is not None, "pdftoppm is missing: install poppler-utils (scripts/system-deps.sh)"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.pdf").write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", "-", str(ARTIFACTS / name)],
        input=pdf,
        check=True,
        timeout=60,
    )
    path = ARTIFACTS / f"{name}.png"
    assert path.exists()
    return Image.open(path).convert("RGB")


def rgb(image: Image.Image) -> list[tuple[int, int, int]]:
    """Every pixel of an RGB image, row by row."""
    data = image.tobytes()
    return [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]


def test_rendered_page_shows_cards_with_the_accent_band_and_qr_codes_that_match_their_codes() -> None:
    dpi = 200
    scale = dpi / 72
    rows = coupons(10)
    image = render_first_page(pdf_of(rows, accent_color="#c0392b"), "coupon-cards-a4", dpi)
    grid = export.layout("A4")
    assert image.size == (round(grid.page_width * scale), round(grid.page_height * scale))
    pixels = image.load()
    assert pixels is not None

    def at(x_pt: float, y_pt: float) -> tuple[int, int, int]:
        value = pixels[int(x_pt * scale), int((grid.page_height - y_pt) * scale)]
        assert isinstance(value, tuple)
        return value[0], value[1], value[2]

    dark = sum(1 for value in rgb(image) if sum(value) < 300)
    assert dark > image.size[0] * image.size[1] * 0.03  # far from a white page

    mask = export._best_mask(PORTAL)
    for slot, row in enumerate(rows):
        x, y = grid.card_origin(slot)
        red, green, blue = at(x + 20, y + grid.card_height - export.PADDING * 0.75 - 4)
        assert abs(red - 0xC0) < 12
        assert abs(green - 0x39) < 12
        assert abs(blue - 0x2B) < 12
        # Every module of the QR code is where segno puts it for this card's URL.
        matrix = segno.make(export.entry_url(PORTAL, row.code), error="m", micro=False, mask=mask).matrix
        n = len(matrix)
        qr_x, qr_y = grid.qr_origin(slot)
        module = grid.qr_size / (n + 2 * export.QR_QUIET_ZONE)
        wrong = 0
        for r in range(-export.QR_QUIET_ZONE, n + export.QR_QUIET_ZONE):
            for c in range(-export.QR_QUIET_ZONE, n + export.QR_QUIET_ZONE):
                inside = 0 <= r < n and 0 <= c < n
                expected_dark = inside and bool(matrix[r][c])
                px = qr_x + (export.QR_QUIET_ZONE + c + 0.5) * module
                py = qr_y + (export.QR_QUIET_ZONE + n - 1 - r + 0.5) * module
                wrong += (sum(at(px, py)) < 384) != expected_dark
        assert wrong == 0, f"card {slot}: {wrong} QR modules differ"


def test_rendered_letter_page_keeps_cards_inside_the_page() -> None:
    rows = coupons(10)
    image = render_first_page(pdf_of(rows, page_size="Letter"), "coupon-cards-letter", 72)
    assert image.size == (612, 792)
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    border = [pixels[x, y] for x in range(width) for y in (*range(0, 20), *range(height - 20, height))]
    assert all(value == (255, 255, 255) for value in border)  # margins stay blank


def test_mask_is_chosen_by_the_iso_penalty_and_cached_per_portal() -> None:
    export._best_mask.cache_clear()
    chosen = export._best_mask(PORTAL)
    assert 0 <= chosen < 8
    assert export._best_mask(PORTAL) == chosen
    assert export._best_mask.cache_info().hits == 1
    # Same data, another mask: the chosen one scores no worse over the sample than any fixed mask.
    from segno import encoder

    def total(mask: int) -> int:
        score = 0
        for code in export.MASK_SAMPLE:
            matrix = [
                bytearray(row)
                for row in segno.make(
                    export.entry_url(PORTAL, code), error="m", micro=False, mask=mask
                ).matrix
            ]
            score += encoder.evaluate_mask(matrix, len(matrix), len(matrix))  # type: ignore[no-untyped-call]
        return score

    assert total(chosen) == min(total(m) for m in range(8))


@pytest.mark.parametrize(
    ("accent", "text_is_dark"), [("#FFD700", True), ("#fff", True), ("#c0392b", False), ("#0396d5", False)]
)
def test_band_text_contrasts_with_the_accent_colour(accent: str, text_is_dark: bool) -> None:
    dpi = 100
    scale = dpi / 72
    image = render_first_page(
        pdf_of(coupons(1), accent_color=accent, instance_name="Rooftop Bar"), f"coupon-band-{accent[1:]}", dpi
    )
    grid = export.layout("A4")
    x, y = grid.card_origin(0)
    top = y + grid.card_height - export.PADDING * 0.75
    box = (
        int((x + export.PADDING) * scale),
        int((grid.page_height - top) * scale) + 2,
        int((x + grid.card_width / 2) * scale),
        int((grid.page_height - top + export.BAND_HEIGHT) * scale) - 2,
    )
    band = rgb(image.crop(box))
    dark = sum(1 for value in band if sum(value) < 150)
    white = sum(1 for value in band if min(value) > 245)
    if text_is_dark:
        assert dark > 20
    else:
        assert dark == 0
        assert white > 20


# --- local time, language, network name and logo (issues 14 and 15) -----------------------------------

SYDNEY = local_time.zone("Australia/Sydney")


def pdftotext(pdf: bytes) -> str:
    """The text of a PDF as poppler's pdftotext reads it (what a person or a screen reader gets)."""
    tool = shutil.which("pdftotext")
    assert tool is not None, "pdftotext (poppler-utils) is needed: scripts/system-deps.sh installs it"
    return subprocess.run([tool, "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


def at(*moments: datetime) -> list[Row]:
    drawn = sorted({codes.generate() for _ in range(len(moments) * 3)})[: len(moments)]
    return [
        Row(f"id-{i}", code, moment, T0) for i, (code, moment) in enumerate(zip(drawn, moments, strict=True))
    ]


def test_cards_print_sydney_time_across_the_april_change_back_to_standard_time() -> None:
    # 4-5 April 2026: at 03:00 AEDT the clocks go back to 02:00 AEST, so 02:30 happens twice.
    rows = at(
        datetime(2026, 4, 4, 15, 30, tzinfo=UTC),
        datetime(2026, 4, 4, 16, 30, tzinfo=UTC),
        datetime(2026, 4, 5, 2, 0, tzinfo=UTC),
    )
    text = " ".join(pdftotext(pdf_of(rows, zone=SYDNEY)).split())
    assert "Valid until 2026-04-05 02:30 AEDT" in text
    assert "Valid until 2026-04-05 02:30 AEST" in text
    assert "Valid until 2026-04-05 12:00 AEST" in text
    assert "UTC" not in text


def test_cards_print_sydney_time_across_the_october_change_to_daylight_time() -> None:
    # 4 October 2026: at 02:00 AEST the clocks go forward to 03:00 AEDT.
    rows = at(datetime(2026, 10, 3, 15, 59, tzinfo=UTC), datetime(2026, 10, 3, 16, 0, tzinfo=UTC))
    text = " ".join(pdftotext(pdf_of(rows, zone=SYDNEY)).split())
    assert "Valid until 2026-10-04 01:59 AEST" in text
    assert "Valid until 2026-10-04 03:00 AEDT" in text


def test_cards_are_in_the_portals_language_with_the_network_name() -> None:
    rows = at(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    text = " ".join(
        pdftotext(pdf_of(rows, words=Words("de"), zone=SYDNEY, network_name="Hafen-Gäste")).split()
    )
    for expected in (
        "WLAN-Zugangscode",
        "Netz: Hafen-Gäste",
        "Gültig bis 2026-07-01 18:00 AEST",
        "Einmal einlösbar",
    ):
        assert expected in text, text
    english = " ".join(pdftotext(pdf_of(rows)).split())
    assert "Wi-Fi access code" in english and "Network:" not in english


def test_the_logo_is_drawn_on_every_card_and_stored_once() -> None:
    picture = io.BytesIO()
    Image.new("RGB", (240, 120), (220, 20, 60)).save(picture, "PNG")
    rows = coupons(12)
    pdf = pdf_of(rows, logo=picture.getvalue())
    assert pdf.count(b"/Subtype /Image") == 1  # one image object, drawn by every card
    page = render_first_page(pdf, "cards-logo", 60)
    x, y = 220, 41  # the middle of the first card's logo: the right end of its band (60 dpi)
    assert all(abs(a - b) <= 3 for a, b in zip(page.getpixel((x, y))[:3], (220, 20, 60), strict=True))
    # An unreadable logo is left out; the sheet still renders.
    assert page_texts(pdf_of(rows, logo=b"not an image"))[0]


def test_the_csv_adds_valid_until_in_local_time() -> None:
    rows = at(datetime(2026, 4, 4, 15, 30, tzinfo=UTC))
    lines = export.to_csv(rows, zone=SYDNEY).splitlines()
    assert lines[0] == CSV_HEADER
    assert lines[1].endswith(
        ",2026-04-04T15:30:00Z,2026-11-25T10:00:00Z,id-0,2026-04-05 02:30 AEDT,1,1,,,,creation"
    )
