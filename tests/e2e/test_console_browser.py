"""The operator console in real Chromium: owner, admin, front-desk and viewer journeys against `guestgate serve`.

The front desk prints 20 coupons from a preset in two clicks (the preset's button, then the
PDF opens: headless Chromium hands it over as a download) and disconnects a guest. Every page
is checked for CSP violations and script errors; the main pages are screenshotted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Response, expect
from sqlalchemy import func, select

from guestgate.console import service
from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.gateways import reconcile
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites import service as site_service
from guestgate.sites.schemas import SiteIn
from tests.console.test_schedule_pages import _expected_mondays as expected_mondays
from tests.coupons.test_export import pdftotext
from tests.gateways.fake_routeros import FakeRouterOS, make_tls
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS, free_port, stop
from tests.utils.console import PASSWORD, Org, make_org
from tests.utils.mail import Inbox as SmtpInbox
from tests.utils.mail import smtp_server
from tests.utils.serving import wait_until_healthy
from tests.utils.settings import TEST_KEYS, make_settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]
GUEST_LIST = "guestgate-allowed"
OFF_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")
DESKTOP = {"width": 1280, "height": 860}


@dataclass
class ConsoleServer:
    """`guestgate serve` and a runtime on its database."""

    base: str
    runtime: Runtime
    org: Org

    def member(self, role: str) -> str:
        email = f"{role}@console.example.com"
        with self.runtime.sessions() as session:
            service.add_member(
                org_id=self.org.id,
                email=email,
                role=role,
                now=utcnow(),
                settings=self.runtime.settings,
                session=session,
                password=PASSWORD,
            )
        return email


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[SmtpInbox, int]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 for the server's e-mails."""
    with smtp_server() as running:
        yield running


@pytest.fixture
def console_server(
    sqlite_template: Path, tmp_path: Path, smtp_inbox: tuple[SmtpInbox, int]
) -> Iterator[ConsoleServer]:
    """A fresh `guestgate serve` on 127.0.0.1 with one org (a site, a coupon instance, a guest online).

    Its SMTP server is `smtp_inbox`; routers in 192.0.2.0/24 (documentation addresses, nothing
    is sent to them here) and on loopback (the fake RouterOS) pass the outbound policy."""
    database = tmp_path / "guestgate.db"
    shutil.copy(sqlite_template, database)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    values = {
        "DATABASE_URL": f"sqlite:///{database}",
        "DATA_DIR": str(tmp_path / "var"),
        "PUBLIC_URL": base,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "JWT_SECRET": TEST_KEYS["jwt_secret"],
        "SIGNING_KEY": TEST_KEYS["signing_key"],
        "ENCRYPTION_KEY": TEST_KEYS["encryption_key"],
        "SCHEDULER_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_inbox[1]),
        "SMTP_SECURITY": "none",
        "OUTBOUND_GATEWAY_NETWORKS": "192.0.2.0/24,127.0.0.0/8",
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUESTGATE_")}
    env.update({f"GUESTGATE_{key}": value for key, value in values.items()})
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "guestgate"), "serve"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    runtime = Runtime.build(
        make_settings(
            f"sqlite:///{database}",
            tmp_path / "var",
            public_url=base,
            outbound_gateway_networks="127.0.0.0/8",
        )
    )
    try:
        wait_until_healthy(process, base, log_path)
        yield ConsoleServer(base, runtime, make_org(runtime, "org-console"))
    finally:
        runtime.close()
        stop(process)


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium."""
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield launched
    launched.close()


@pytest.fixture
def shots(screenshots: Path) -> Path:
    """Where the console's screenshots go (copied to docs/screenshots/ for the README)."""
    return screenshots


def _open(browser: Browser, problems: list[str]) -> Page:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(20_000)
    context.route(OFF_LOOPBACK, lambda route: route.abort())
    page = context.new_page()
    page.on("console", lambda message: _note(message, problems))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda response: _note_response(response, problems))
    return page


def _note(message: ConsoleMessage, problems: list[str]) -> None:
    # A page answered 400/403 on purpose logs "Failed to load resource"; failed stylesheets and
    # images are caught by `_note_response`, CSP violations ("Refused to ...") here.
    if message.type in ("error", "warning") and not message.text.startswith("Failed to load resource"):
        problems.append(message.text)


def _note_response(response: Response, problems: list[str]) -> None:
    if response.request.resource_type != "document" and response.status >= 400:
        problems.append(f"{response.status} {response.url}")


def _sign_in(page: Page, server: ConsoleServer, email: str) -> None:
    page.goto(f"{server.base}/console")
    expect(page.get_by_role("heading", name="Sign in to guestgate")).to_be_visible()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_front_desk_prints_20_coupons_and_disconnects_a_guest(
    console_server: ConsoleServer, browser: Browser, shots: Path
) -> None:
    server = console_server
    with server.runtime.sessions() as session:
        service.create_preset(
            org_id=server.org.id,
            instance_id=server.org.instance_id,
            name="Day pass",
            count=20,
            minutes_valid=1440,
            paper="a4",
            session=session,
        )
    problems: list[str] = []
    page = _open(browser, problems)
    _sign_in(page, server, server.member("front-desk"))
    expect(page.get_by_role("heading", name="Front desk")).to_be_visible()
    page.screenshot(path=str(shots / "console-front-desk.png"), full_page=True)
    # Click one: the preset's button. Click two is the browser's: the PDF opens (a download headless).
    with page.expect_download() as download:
        page.get_by_role("button", name="Print 20 coupons: Day pass").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    with server.runtime.sessions() as session:
        codes = list(session.scalars(select(Coupon.code).where(Coupon.org_id == server.org.id)))
    assert len(codes) == 20
    text = pdftotext(pdf)
    assert all(code in text for code in codes)

    page.get_by_role("link", name="Guests", exact=True).click()
    page.get_by_label("MAC address").fill("aa:bb:cc:dd:ee:ff")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name="10.0.0.23", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "console-guests.png"), full_page=True)
    page.get_by_role("button", name="Disconnect 10.0.0.23").click()
    expect(page.get_by_text("Nobody online matches.")).to_be_visible()
    with server.runtime.sessions() as session:
        guest = session.get(SiteUser, server.org.guest_id)
        assert guest is not None and guest.status == "disconnected"
    # The front desk sees nothing else.
    expect(page.get_by_role("link", name="Sites")).to_have_count(0)
    assert page.goto(f"{server.base}/console/sites") is not None
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert problems == []


def test_front_desk_disconnects_a_guest_and_the_router_drops_it(
    console_server: ConsoleServer, browser: Browser, tmp_path: Path
) -> None:
    server = console_server
    tls = make_tls(tmp_path / "tls")
    router = FakeRouterOS(tls).start()
    try:
        gateway = router.site_gateway()
        with server.runtime.sessions() as session:
            site_service.replace(
                server.org.site_id,
                SiteIn(name="Lobby", subnets=["10.0.0.0/24"], gateway=gateway),
                org_id=server.org.id,
                box=server.runtime.box,
                rules=server.runtime.gateway_rules,
                session=session,
            )
            session.commit()
        [outcome] = reconcile.reconcile_all(runtime=server.runtime, now=utcnow())
        assert outcome.status == "ok"
        assert [e["address"] for e in router.entries(GUEST_LIST)] == ["10.0.0.23"]

        problems: list[str] = []
        page = _open(browser, problems)
        _sign_in(page, server, server.member("front-desk"))
        page.get_by_role("link", name="Guests", exact=True).click()
        page.get_by_label("IP address").fill("10.0.0.23")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("button", name="Disconnect 10.0.0.23").click()
        expect(page.get_by_text("Nobody online matches.")).to_be_visible()
        # The server's notifier removes the guest from the router's address-list, not the next pass.
        deadline = time.monotonic() + 10
        while router.entries(GUEST_LIST) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert router.entries(GUEST_LIST) == []
        assert problems == []
    finally:
        router.stop()


def test_admin_adds_a_preset_with_an_error_shown_next_to_the_field(
    console_server: ConsoleServer, browser: Browser, shots: Path
) -> None:
    server = console_server
    problems: list[str] = []
    page = _open(browser, problems)
    _sign_in(page, server, server.member("admin"))
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("#online")).to_have_text("1")
    page.screenshot(path=str(shots / "console-dashboard.png"), full_page=True)
    page.get_by_role("link", name="Presets").click()
    page.get_by_label("Name").fill("Week pass")
    page.get_by_label("Coupons per print").fill("600")
    page.get_by_role("button", name="Add preset").click()
    expect(page.locator("#count-error")).to_have_text("The 'count' parameter must be between 1 and 500.")
    page.get_by_label("Coupons per print").fill("10")
    page.get_by_role("button", name="Add preset").click()
    expect(page.get_by_role("cell", name="Week pass")).to_be_visible()
    page.screenshot(path=str(shots / "console-presets.png"), full_page=True)
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="coupon_preset.create")).to_be_visible()
    expect(page.get_by_role("cell", name="operator.login", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "console-audit.png"), full_page=True)
    page.get_by_role("link", name="Sites").click()
    expect(page.get_by_role("cell", name="Site of org-console", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "console-sites.png"), full_page=True)
    assert problems == []


def test_owner_invites_a_viewer_who_can_only_read(
    console_server: ConsoleServer, browser: Browser, shots: Path
) -> None:
    server = console_server
    problems: list[str] = []
    page = _open(browser, problems)
    _sign_in(page, server, server.member("owner"))
    page.get_by_role("link", name="Users").click()
    page.get_by_label("E-mail").fill("reader@console.example.com")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Invite").click()
    link = page.locator("#invite-url").inner_text()
    assert link.startswith(f"{server.base}/console/set-password/")
    page.screenshot(path=str(shots / "console-users.png"), full_page=True)

    viewer = _open(browser, problems)
    viewer.goto(link)
    viewer.get_by_label("New password").fill(PASSWORD)
    viewer.get_by_label("Repeat it").fill(PASSWORD)
    viewer.get_by_role("button", name="Save password").click()
    viewer.get_by_label("E-mail").fill("reader@console.example.com")
    viewer.get_by_label("Password").fill(PASSWORD)
    viewer.get_by_role("button", name="Sign in").click()
    expect(viewer.get_by_role("heading", name="Dashboard")).to_be_visible()
    viewer.get_by_role("link", name="Guests").click()
    expect(viewer.get_by_role("cell", name="10.0.0.23", exact=True)).to_be_visible()
    expect(viewer.get_by_role("button", name=re.compile("Disconnect"))).to_have_count(0)
    expect(viewer.get_by_role("link", name="Users")).to_have_count(0)
    viewer.goto(f"{server.base}/console/users")
    expect(viewer.get_by_role("heading", name="Not allowed")).to_be_visible()
    with server.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 0
    assert problems == []


def test_admin_creates_a_routeros_site_and_downloads_its_script(
    console_server: ConsoleServer, browser: Browser, shots: Path
) -> None:
    server = console_server
    problems: list[str] = []
    page = _open(browser, problems)
    _sign_in(page, server, server.member("admin"))
    page.get_by_role("link", name="Sites").click()
    page.get_by_role("link", name="Add a site").click()
    page.get_by_label("Name", exact=True).fill("Harbour hotel")
    page.get_by_label("Guest subnets (one per line)").fill("10.40.0.0/24")
    page.get_by_label("Driver").select_option("routeros")
    page.get_by_label("Router host (RouterOS)").fill("10.1.1.1")
    page.get_by_label("API user (RouterOS)").fill("guestgate")
    page.get_by_label("API password (RouterOS)").fill("router-password-1")
    page.get_by_role("button", name="Add site").click()
    # 10.1.1.1 is private: the outbound policy refuses it, next to the field.
    expect(page.locator('[id="gateway.host-error"]')).to_contain_text("gateway.host")
    page.get_by_label("Router host (RouterOS)").fill("192.0.2.1")
    page.get_by_label("API password (RouterOS)").fill("router-password-1")
    page.get_by_role("button", name="Add site").click()
    expect(page.get_by_role("heading", name="Harbour hotel")).to_be_visible()
    page.screenshot(path=str(shots / "console-site.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download RouterOS script (.rsc)").click()
    assert download.value.suggested_filename == "guestgate.rsc"
    script = Path(download.value.path()).read_text()
    assert 'site "Harbour hotel"' in script and "router-password-1" in script
    # Another port for the same router needs the password again.
    page.get_by_label("REST API port (RouterOS)").fill("8443")
    page.get_by_role("button", name="Save site").click()
    expect(page.locator('[id="gateway.password-error"]')).to_contain_text("gateway.password")
    assert problems == []


def test_admin_creates_a_schedule_and_sees_five_next_runs_in_its_zone(
    console_server: ConsoleServer, browser: Browser, shots: Path
) -> None:
    server = console_server
    problems: list[str] = []
    page = _open(browser, problems)
    _sign_in(page, server, server.member("admin"))
    page.get_by_role("link", name="Notifications").click()
    page.get_by_role("link", name="Add a group").click()
    page.get_by_label("Name", exact=True).fill("Front desk")
    page.get_by_label("E-mail addresses (one per line)").fill("desk@console.example.com")
    page.get_by_role("button", name="Add group").click()
    page.get_by_role("link", name="Schedules").click()
    page.get_by_role("link", name="Add a schedule").click()
    page.get_by_label("Name", exact=True).fill("Monday passes")
    page.get_by_label("Coupons per run").fill("5")
    page.get_by_label("Repeats").select_option("weekly")
    page.get_by_label("Day of the week (weekly)").select_option("Monday")
    page.get_by_label("Local time (HH:MM)").fill("08:00")
    page.get_by_label("Time zone (IANA, e.g. Australia/Sydney)").fill("Mars/Olympus")
    page.get_by_label("Send each batch to").select_option(label="Front desk")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.locator("#timezone-error")).to_be_visible()
    page.get_by_label("Time zone (IANA, e.g. Australia/Sydney)").fill("Australia/Sydney")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.get_by_role("heading", name="Next five runs (Australia/Sydney)")).to_be_visible()
    runs = page.locator("#next-runs li").all_inner_texts()
    assert runs == expected_mondays(utcnow())
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#notice")).to_have_text("Made 5 coupons; their deliveries are queued.")
    expect(page.get_by_role("cell", name="queued")).to_be_visible()
    page.screenshot(path=str(shots / "console-schedule.png"), full_page=True)
    assert problems == []


def test_admin_adds_a_wildcard_host_name_to_the_walled_garden(
    console_server: ConsoleServer, browser: Browser, shots: Path
) -> None:
    server = console_server
    problems: list[str] = []
    page = _open(browser, problems)
    _sign_in(page, server, server.member("admin"))
    page.get_by_role("link", name="Sites").click()
    page.get_by_role("link", name="Walled garden of Site of org-console").click()
    page.get_by_label("Name", exact=True).fill("Booking engine")
    page.get_by_label("Host name", exact=True).fill("*.booking.example.com")
    page.get_by_role("button", name="Add entry").click()
    expect(page.get_by_role("cell", name="*.booking.example.com", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "console-walled-garden.png"), full_page=True)
    page.get_by_label("Name", exact=True).fill("Nothing")
    page.get_by_label("Host name", exact=True).fill("exa mple.com")
    page.get_by_role("button", name="Add entry").click()
    expect(page.locator("#hostname-error")).to_be_visible()
    assert problems == []


def test_admin_sends_a_test_e_mail_to_the_smtp_server(
    console_server: ConsoleServer, browser: Browser, smtp_inbox: tuple[SmtpInbox, int], shots: Path
) -> None:
    server = console_server
    problems: list[str] = []
    page = _open(browser, problems)
    _sign_in(page, server, server.member("admin"))
    page.get_by_role("link", name="Notifications").click()
    page.get_by_role("link", name="Add a group").click()
    page.get_by_label("Name", exact=True).fill("Reception")
    page.get_by_label("E-mail addresses (one per line)").fill("reception@console.example.com")
    page.get_by_role("button", name="Add group").click()
    page.get_by_role("button", name="Send a test e-mail to reception@console.example.com").click()
    expect(page.locator("#test-result")).to_have_text(
        "The SMTP server accepted the test message to reception@console.example.com (reply code 250)."
    )
    page.screenshot(path=str(shots / "console-notification-group.png"), full_page=True)
    inbox = smtp_inbox[0]
    assert [envelope.rcpt_tos for envelope in inbox.envelopes] == [["reception@console.example.com"]]
    assert problems == []


def test_a_forgotten_password_is_reset_through_the_mailed_link_and_changed_again_signed_in(
    console_server: ConsoleServer, browser: Browser, smtp_inbox: tuple[SmtpInbox, int], shots: Path
) -> None:
    server = console_server
    email = server.member("viewer")
    problems: list[str] = []
    page = _open(browser, problems)
    page.goto(f"{server.base}/console/login")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    page.get_by_label("E-mail").fill(email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.locator("#reset-answer")).to_contain_text("If this address belongs to an active console account")
    page.screenshot(path=str(shots / "console-forgot-password.png"), full_page=True)

    # The mail goes out after the answer: it reaches aiosmtpd within moments.
    inbox = smtp_inbox[0]
    deadline = time.monotonic() + 10
    while not inbox.envelopes and time.monotonic() < deadline:
        time.sleep(0.1)
    [message] = inbox.messages()
    assert message["To"] == email
    link = re.search(r"http://\S+/console/reset-password/\S+", message.get_content())
    assert link is not None and link.group(0).startswith(f"{server.base}/console/reset-password/")

    new_password = "a brand new passphrase, long enough"
    reader = _open(browser, problems)
    reader.goto(link.group(0))
    expect(reader.get_by_role("heading", name="Choose a new password")).to_be_visible()
    reader.get_by_label("New password").fill(new_password)
    reader.get_by_label("Repeat it").fill(new_password)
    reader.get_by_role("button", name="Save password").click()
    expect(reader.get_by_role("heading", name="Sign in to guestgate")).to_be_visible()
    reader.get_by_label("E-mail").fill(email)
    reader.get_by_label("Password").fill(new_password)
    reader.get_by_role("button", name="Sign in").click()
    expect(reader.get_by_role("heading", name="Dashboard")).to_be_visible()
    # Signed in, the password is changed again from the account page; this session stays.
    reader.get_by_role("link", name="Account").click()
    reader.get_by_label("Current password").fill(new_password)
    reader.get_by_label("New password (at least 12 characters)").fill(PASSWORD)
    reader.get_by_label("Repeat the new password").fill(PASSWORD)
    reader.get_by_role("button", name="Change password").click()
    expect(reader.locator("#password-changed")).to_be_visible()
    reader.screenshot(path=str(shots / "console-account.png"), full_page=True)
    reader.get_by_role("link", name="Dashboard").click()
    expect(reader.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The link worked once.
    reader.goto(link.group(0))
    expect(reader.get_by_role("heading", name="Not found")).to_be_visible()
    assert problems == []
