"""Browser test helpers: Chromium's flags, the OpenID provider's install, `guestgate serve` as a server.

The fixtures built on them, and how these tests run, are in tests/e2e/conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext
from sqlalchemy import select as sql_select

from guestgate.auth_integrations import service as integration_service
from guestgate.auth_integrations.discovery import Discoverer
from guestgate.auth_integrations.schemas import AuthIntegrationCreate
from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site

ROOT = Path(__file__).resolve().parents[2]
OIDC_DIR = ROOT / "tests" / "e2e" / "oidc"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
CLIENT_ID = "guestgate-e2e"
CLIENT_SECRET = "e2e-client-secret-of-the-test-provider"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ORG = "org-e2e"
INSTALL_HINT = "install it with scripts/system-deps.sh (as root) or: apt-get install -y chromium nodejs npm"


def require(program: str) -> str:
    """The path of `program`; the test fails (never skips) saying how to install it when it is missing."""
    found = shutil.which(program)
    if found is None:
        where = " (CI is set: the browser tests are part of the suite)" if os.environ.get("CI") else ""
        pytest.fail(f"'{program}' is not installed{where}; {INSTALL_HINT}", pytrace=False)
    return found


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a process this fixture started."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class OpenIDProvider:
    """The running oidc-provider: its origin and where guestgate's settings point."""

    origin: str

    @property
    def google_discovery_url(self) -> str:
        return f"{self.origin}/.well-known/openid-configuration"


def install_oidc_provider(npm: str) -> None:
    pinned = json.loads((OIDC_DIR / "package.json").read_text())["dependencies"]["oidc-provider"]
    installed = OIDC_DIR / "node_modules" / "oidc-provider" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == pinned:
        return
    # --no-package-lock: a lock file would record registry URLs; the version is pinned exactly instead.
    result = subprocess.run(
        [npm, "install", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=OIDC_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm install in {OIDC_DIR} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


# oidc-provider 9 needs Node.js 20.19 or newer; Debian 12's nodejs is 18. On an older Node the
# suite installs this one from the npm registry (the `node` package ships the official build).
MIN_NODE = (20, 19)
FALLBACK_NODE = "22.21.1"


def node_version(node: str) -> tuple[int, ...]:
    """`node --version` as numbers: 'v20.20.2' is (20, 20, 2)."""
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    return tuple(int(part) for part in out.strip().lstrip("v").split("."))


def node_for_provider(npm: str) -> str:
    """The system's node when it is new enough, else a pinned one installed under tests/e2e/oidc."""
    system = require("node")
    if node_version(system)[:2] >= MIN_NODE:
        return system
    runtime = OIDC_DIR / ".node-runtime"
    local = runtime / "node_modules" / ".bin" / "node"
    if not (local.exists() and node_version(str(local)) == tuple(int(p) for p in FALLBACK_NODE.split("."))):
        runtime.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(runtime),
                "--no-package-lock",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"node@{FALLBACK_NODE}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"installing node@{FALLBACK_NODE} failed:\n{result.stdout}\n{result.stderr}", pytrace=False
            )
    return str(local)


@dataclass
class Server:
    """The running guestgate and a runtime on its database, to set up sites and read sessions."""

    base: str
    runtime: Runtime
    issuer: str

    def site(
        self,
        *,
        strategy: str = "coupon",
        theme: dict[str, str] | None = None,
        locale: str = "en",
        terms: str | None = "Be kind to other guests. No illegal downloads.",
        name: str = "Harbour Café Wi-Fi",
        integration_id: str | None = None,
    ) -> tuple[str, str]:
        """A new site on 127.0.0.0/8 with one instance serving it: (site id, instance id)."""
        with self.runtime.sessions() as session:
            org_service.ensure(ORG, session=session)
            site = Site(org_id=ORG, name="E2E", subnets=["127.0.0.0/8"])
            session.add(site)
            session.flush()
            instance = Instance(
                org_id=ORG,
                name=name,
                strategy=strategy,
                auth_integration_id=integration_id,
                session_ttl=7200,
                auth_window_ttl=300,
                theme=theme or {},
                terms_text=terms,
                locale=locale,
            )
            session.add(instance)
            session.flush()
            session.add(
                InstanceSubnet(instance_id=instance.id, site_id=site.id, subnet="127.0.0.0/8", position=0)
            )
            session.commit()
            return site.id, instance.id

    def coupon(self, instance_id: str, code: str) -> None:
        """A coupon valid for a day."""
        with self.runtime.sessions() as session:
            session.add(
                Coupon(
                    org_id=ORG, instance_id=instance_id, code=code, expires_at=utcnow() + timedelta(days=1)
                )
            )
            session.commit()

    def integration(self, kind: str, *, tenant: str | None = None) -> str:
        """An auth integration for the test provider's client (`oidc`: its Google-like issuer)."""
        config = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "tenant": tenant}
        if kind == "oidc":
            config["issuer"] = self.issuer
        body = AuthIntegrationCreate.model_validate({"name": f"E2E {kind}", "type": kind, "config": config})
        discoverer = Discoverer.from_settings(self.runtime.outbound, self.runtime.settings)
        with self.runtime.sessions() as session:
            org_service.ensure(ORG, session=session)
            return integration_service.create(
                body, org_id=ORG, box=self.runtime.box, session=session, discoverer=discoverer
            ).id

    def sessions(self, site_id: str) -> list[SiteUser]:
        """The site's sessions."""
        with self.runtime.sessions() as session:
            return list(session.scalars(sql_select(SiteUser).where(SiteUser.site_id == site_id)))

    def entry_url(self, site_id: str) -> str:
        """The portal address the gateway would send the guest to."""
        return f"{self.base}/guest/entry?site={site_id}"


PhoneFactory = Callable[..., BrowserContext]
