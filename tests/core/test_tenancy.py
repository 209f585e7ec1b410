"""The one tenant check (guestgate.tenancy): another org's row is not found, in a missing row's words."""

from __future__ import annotations

import pytest

from guestgate.errors import NotFound
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from guestgate.tenancy import find_owned, get_owned

MISSING = "00000000-0000-4000-8000-000000000000"


def _site(runtime: Runtime, *, org: str, name: str = "Lobby") -> str:
    with runtime.sessions() as session:
        org_service.ensure(org, session=session)
        site = Site(org_id=org, name=name)
        session.add(site)
        session.commit()
        return site.id


def test_the_orgs_own_row_is_returned(runtime: Runtime) -> None:
    site_id = _site(runtime, org="org-a")
    with runtime.sessions() as session:
        assert get_owned(session, Site, site_id, "org-a", resource="site").id == site_id
        assert get_owned(session, Site, site_id, "org-a", resource="site", name="Lobby").id == site_id


def test_another_orgs_row_reads_as_missing(runtime: Runtime) -> None:
    site_id = _site(runtime, org="org-b")
    with runtime.sessions() as session:
        assert find_owned(session, Site, site_id, "org-a") is None
        with pytest.raises(NotFound) as other:
            get_owned(session, Site, site_id, "org-a", resource="site")
        with pytest.raises(NotFound) as missing:
            get_owned(session, Site, MISSING, "org-a", resource="site")
    assert str(other.value) == f"No such site: '{site_id}'."
    assert str(missing.value) == f"No such site: '{MISSING}'."


def test_a_row_of_another_parent_reads_as_missing(runtime: Runtime) -> None:
    site_id = _site(runtime, org="org-a", name="Lobby")
    with runtime.sessions() as session:
        assert find_owned(session, Site, site_id, "org-a", name="Pool") is None
        with pytest.raises(NotFound, match="No such site"):
            get_owned(session, Site, site_id, "org-a", resource="site", name="Pool")
