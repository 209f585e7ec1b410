"""Console fixtures: members of orgs with a role, and HTTP clients signed in as them."""

from __future__ import annotations

import pytest

from guestgate.console import service
from guestgate.db import utcnow
from guestgate.runtime import Runtime
from tests.utils.console import PASSWORD, MemberFactory


@pytest.fixture
def member(runtime: Runtime) -> MemberFactory:
    """`member(org, role, email=...)` -> the e-mail of a user with that role and PASSWORD."""

    def make(org: str, role: str, email: str | None = None) -> str:
        address = email or f"{role}@{org}.example.com"
        with runtime.sessions() as session:
            service.add_member(
                org_id=org,
                email=address,
                role=role,
                now=utcnow(),
                settings=runtime.settings,
                session=session,
                password=PASSWORD,
            )
        return address

    return make
