"""Browser tests: a real guestgate server, a real OpenID provider, Debian's Chromium at a phone's size.

- guestgate runs as `guestgate serve` in a subprocess on 127.0.0.1 (a free port), on a SQLite
  file this process also opens to set up sites and read sessions back. The guest is the
  browser on 127.0.0.1, so each test's site has the subnet 127.0.0.0/8.
- The OpenID provider is the npm package `oidc-provider` (tests/e2e/oidc: its pinned version is
  installed there with `npm install --no-package-lock` on first use), started on 127.0.0.1 with
  one client whose redirect URI is the server's callback. guestgate's Google and Microsoft code
  paths are pointed at it by `GUESTGATE_OAUTH_GOOGLE_DISCOVERY_URL` and
  `GUESTGATE_OAUTH_AZURE_AUTHORITY`; an `oidc` integration names its Google-like issuer (the
  server allows http:// issuers on loopback for that: `GUESTGATE_OAUTH_OIDC_ALLOW_HTTP`,
  `GUESTGATE_OUTBOUND_ALLOW_NETWORKS=127.0.0.0/8`).
- Chromium (`/usr/bin/chromium`) is driven by Playwright with a fresh profile per test.

Missing Chromium or Node.js fails these tests with the command that installs them: they are
part of the suite, never skipped.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright, sync_playwright

from guestgate.runtime import Runtime
from tests.utils.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLIENT_ID,
    CLIENT_SECRET,
    OIDC_DIR,
    PHONE,
    PHONE_UA,
    SCREENSHOTS,
    TENANT,
    OpenIDProvider,
    PhoneFactory,
    Server,
    free_port,
    install_oidc_provider,
    node_for_provider,
    require,
    stop,
)
from tests.utils.serving import wait_until_healthy
from tests.utils.settings import TEST_KEYS, make_settings


@pytest.fixture(scope="session")
def guestgate_port() -> int:
    """The port the guestgate server will listen on (the provider needs its callback URL first)."""
    return free_port()


@pytest.fixture(scope="session")
def oidc_provider(guestgate_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    """oidc-provider on 127.0.0.1 with one client registered for the server's callback."""
    npm = require("npm")
    node = node_for_provider(npm)
    install_oidc_provider(npm)
    options = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": f"http://127.0.0.1:{guestgate_port}/guest/oauth/callback",
        "tenant": TENANT,
    }
    log_path = tmp_path_factory.mktemp("oidc") / "provider.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [node, "provider.mjs", json.dumps(options)],
            cwd=OIDC_DIR,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        if not line:
            stop(process)
            pytest.fail(f"oidc-provider did not start:\n{log_path.read_text()}", pytrace=False)
        yield OpenIDProvider(origin=f"http://127.0.0.1:{json.loads(line)['port']}")
    finally:
        stop(process)


@pytest.fixture(scope="session")
def server(
    guestgate_port: int,
    oidc_provider: OpenIDProvider,
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """`guestgate serve` on 127.0.0.1 with its OAuth providers pointed at the test provider."""
    root = tmp_path_factory.mktemp("guestgate-e2e")
    database = root / "guestgate.db"
    shutil.copy(sqlite_template, database)
    base = f"http://127.0.0.1:{guestgate_port}"
    settings = {
        "DATABASE_URL": f"sqlite:///{database}",
        "DATA_DIR": str(root / "var"),
        "PUBLIC_URL": base,
        "HOST": "127.0.0.1",
        "PORT": str(guestgate_port),
        "JWT_SECRET": TEST_KEYS["jwt_secret"],
        "SIGNING_KEY": TEST_KEYS["signing_key"],
        "ENCRYPTION_KEY": TEST_KEYS["encryption_key"],
        "SCHEDULER_ENABLED": "false",
        # Each test changes instances under the running server: no stale page data.
        "PORTAL_CACHE_SECONDS": "0",
        "OAUTH_GOOGLE_DISCOVERY_URL": oidc_provider.google_discovery_url,
        "OAUTH_AZURE_AUTHORITY": oidc_provider.origin,
        "OAUTH_OIDC_ALLOW_HTTP": "true",
        "OUTBOUND_ALLOW_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": "warning",
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUESTGATE_")}
    env.update({f"GUESTGATE_{key}": value for key, value in settings.items()})
    log_path = root / "server.log"
    command = [str(Path(sys.executable).parent / "guestgate"), "serve"]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    runtime = Runtime.build(
        make_settings(
            f"sqlite:///{database}",
            root / "var",
            public_url=base,
            oauth_oidc_allow_http=True,
            outbound_allow_networks="127.0.0.0/8",
        )
    )
    try:
        wait_until_healthy(process, base, log_path)
        yield Server(base=base, runtime=runtime, issuer=oidc_provider.origin)
    finally:
        runtime.close()
        stop(process)


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    """Playwright, once Chromium is known to be there.

    Per test: the sync API keeps an event loop running in this thread while it is open, and
    the other tests of the suite call `asyncio.run`.
    """
    if not Path(CHROMIUM).exists():
        require("chromium")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def phone(playwright: Playwright, tmp_path: Path) -> Iterator[PhoneFactory]:
    """`phone(locale="en-GB", user_agent=PHONE_UA)` -> Chromium at a phone's size with a fresh profile."""
    opened: list[BrowserContext] = []

    def make(locale: str = "en-GB", user_agent: str = PHONE_UA) -> BrowserContext:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / f"profile-{len(opened)}"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=PHONE,
            screen=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            user_agent=user_agent,
            locale=locale,
        )
        context.set_default_timeout(20_000)
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the tests leave their screenshots (test-artifacts/ is not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
