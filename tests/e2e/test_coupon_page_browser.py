"""Issue 14 in a real browser: the link in a schedule's e-mail (sent through a real SMTP server)
opens the batch's printable page in Chromium, usable with the keyboard and within its strict CSP;
the same URL still answers an API client with JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import ConsoleMessage, Playwright, expect
from sqlalchemy import select

from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.instances.models import Instance
from guestgate.notifications import delivery
from guestgate.notifications.models import NotificationGroup
from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from guestgate.schedules.models import CouponSchedule
from tests.coupons.test_export import pdftotext
from tests.notifications.test_email import Inbox
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS, ORG, Server, free_port
from tests.utils.settings import make_settings

pytestmark = pytest.mark.browser
OFF_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback."""
    received = Inbox()
    port = free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    yield received, port
    controller.stop()


def mailed_batch(server: Server, smtp_port: int, tmp_path: Path) -> list[str]:
    """A Sydney schedule's run-now batch, e-mailed to the front desk through `smtp_port`; its codes."""
    _, instance_id = server.site(name="Harbour Café", theme={"accent_color": "#7a3e9d"})
    with server.runtime.sessions() as session:
        instance = session.get(Instance, instance_id)
        assert instance is not None
        instance.timezone = "Australia/Sydney"
        instance.network_name = "Harbour-Guest"
        group = NotificationGroup(
            id="ng_e2e0c0ffee00", org_id=ORG, name="Desk", emails=["desk@harbour.example"], webhooks=[]
        )
        session.merge(group)
        session.flush()
        schedule = CouponSchedule(
            org_id=ORG,
            instance_id=instance_id,
            name="Morning passes",
            count=12,
            recurrence_type="daily",
            time_of_day="08:00",
            valid_for_in_minutes=480,
            timezone="Australia/Sydney",
            notification_group_id=group.id,
        )
        session.add(schedule)
        session.commit()
        run = jobs.run_now(schedule.id, instance_id=instance_id, org_id=ORG, now=utcnow(), session=session)
        codes = sorted(session.scalars(select(Coupon.code).where(Coupon.run_id == run.schedule.last_run_id)))
    settings = make_settings(
        server.runtime.settings.resolved_database_url,
        tmp_path / "mailer",
        public_url=server.base,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
    )
    mailer = Runtime.build(settings)
    try:
        assert delivery.deliver_due_sync(runtime=mailer, now=utcnow()).sent >= 1
    finally:
        mailer.close()
    return codes


def the_link(inbox: Inbox) -> str:
    message = inbox.message(len(inbox.envelopes) - 1)
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    [link] = re.findall(r"http://127\.0\.0\.1:\d+/captive/coupons\?\S+", text.get_content())
    return str(link)


def test_the_emails_link_opens_the_printable_page_and_an_api_client_still_gets_json(
    server: Server,
    inbox: tuple[Inbox, int],
    request: pytest.FixtureRequest,
    tmp_path: Path,
    screenshots: Path,
) -> None:
    received, port = inbox
    codes = mailed_batch(server, port, tmp_path)
    link = the_link(received)
    # Playwright only now: its sync API keeps an event loop running, and delivering above runs one.
    playwright: Playwright = request.getfixturevalue("playwright")

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
        context.route(OFF_LOOPBACK, lambda route: route.abort())
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda message: _note(message, problems))
        page.on("pageerror", lambda error: problems.append(str(error)))
        response = page.goto(link)
        assert response is not None and response.status == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"

        expect(page.get_by_role("heading", level=1)).to_have_text("12 valid codes")
        cards = page.get_by_role("list", name="12 valid codes").get_by_role("listitem")
        expect(cards).to_have_count(12)
        for code in codes:
            expect(page.get_by_text(code, exact=True)).to_be_visible()
        expect(page.get_by_text("Network: Harbour-Guest").first).to_be_visible()
        assert re.search(r"Valid until \d{4}-\d\d-\d\d \d\d:\d\d AE[SD]T", page.content())

        # The Print button appears only once its script ran (the CSP nonce let it), and the
        # keyboard reaches it first, then the downloads.
        printed = page.get_by_role("button", name="Print")
        expect(printed).to_be_visible()
        page.evaluate("window.print = () => { window.__printed = true; }")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "print"
        page.keyboard.press("Enter")
        assert page.evaluate("window.__printed === true")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent").startswith("Download PDF")
        page.screenshot(path=str(screenshots / "coupon-page.png"), full_page=True)

        with page.expect_download() as pdf_download:
            page.get_by_role("link", name=re.compile("Download PDF")).click()
        pdf = Path(pdf_download.value.path()).read_bytes()
        assert pdf.startswith(b"%PDF")
        assert pdf_download.value.suggested_filename.startswith("morning-passes-")
        text = pdftotext(pdf)
        assert all(code in text for code in codes)
        with page.expect_download() as csv_download:
            page.get_by_role("link", name="Download CSV").click()
        rows = Path(csv_download.value.path()).read_text().splitlines()
        assert sorted(row.split(",")[0] for row in rows[1:]) == codes
        assert problems == [], problems
        context.close()
    finally:
        browser.close()

    for accept in (None, "*/*", "application/json"):
        answer = httpx2.get(link, headers={"Accept": accept} if accept else {}, timeout=10)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert sorted(c["code"] for c in answer.json()) == codes


def _note(message: ConsoleMessage, problems: list[str]) -> None:
    # A CSP violation or a failed load is reported on the console as an error.
    if message.type in ("error", "warning"):
        problems.append(message.text)
