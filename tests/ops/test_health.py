"""`/healthz` (the process answers, no database) and `/readyz` (the database, and gateway states)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guestgate.app import create_app
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.utils.settings import TEST_KEYS, make_settings


def test_readyz_counts_sites_by_gateway_state_and_names_none(client: TestClient, runtime: Runtime) -> None:
    with runtime.sessions() as session:
        org_service.ensure("org-a", session=session)
        for driver, state in (
            ("none", "unknown"),
            ("routeros", "ok"),
            ("routeros", "unreachable"),
            ("agent", "ok"),
        ):
            session.add(
                Site(
                    org_id="org-a",
                    name=f"{driver}-{state}",
                    subnets=[],
                    gateway_driver=driver,
                    gateway_status=state,
                )
            )
        session.commit()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "gateways": {"ok": 2, "unreachable": 1, "misconfigured": 0, "unknown": 0, "not_enforcing": 1},
    }
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize(
    "unreachable",
    [
        "sqlite:////nonexistent-guestgate-dir/sub/guestgate.db",
        "postgresql+psycopg://postgres@127.0.0.1:9/guestgate",
    ],
    ids=["sqlite", "postgresql"],
)
def test_readyz_is_503_with_the_error_body_while_the_database_is_unreachable(
    tmp_path: Path, unreachable: str
) -> None:
    settings = make_settings(unreachable, tmp_path / "var", jwt_secret=SecretStr(TEST_KEYS["jwt_secret"]))
    runtime = Runtime.build(settings)
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            ready = client.get("/readyz")
            alive = client.get("/healthz")
    finally:
        runtime.close()
    assert ready.status_code == 503
    assert ready.json() == {
        "type": "api_error",
        "code": "service_unavailable",
        "message": "The database is unavailable.",
        "doc_url": "http://testserver/errors/service_unavailable",
    }
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}
