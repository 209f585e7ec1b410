"""Fixtures of the hostile-input tests: two fully populated orgs built through the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from guestgate.runtime import Runtime
from tests.utils.hostile import (
    Tenant,
    build_tenant,
)
from tests.utils.settings import TokenFactory


@pytest.fixture
def org_a(client: TestClient, auth: TokenFactory, runtime: Runtime) -> Tenant:
    """The attacker's org, fully populated."""
    return build_tenant(client, auth, runtime, "org-a", 10)


@pytest.fixture
def org_b(client: TestClient, auth: TokenFactory, runtime: Runtime) -> Tenant:
    """The victim's org, fully populated."""
    return build_tenant(client, auth, runtime, "org-b", 20)
