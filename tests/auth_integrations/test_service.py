"""Service-level rules of auth integrations: sealing, the test URL, tenants, the delete guard."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from guestgate.auth_integrations import service
from guestgate.auth_integrations.models import AuthIntegration
from guestgate.auth_integrations.schemas import AuthIntegrationCreate, AuthIntegrationUpdate, check_tenant
from guestgate.errors import Conflict, NotFound, ParameterMissing
from guestgate.instances.models import Instance
from guestgate.pagination import PageRequest
from guestgate.runtime import Runtime
from guestgate.security import UrlSigner
from tests.utils.settings import TEST_KEYS, make_settings

SECRET = "a-client-secret-value"


def azure(**config: object) -> AuthIntegrationCreate:
    return AuthIntegrationCreate.model_validate(
        {
            "name": "Azure",
            "type": "azure",
            "config": {"client_id": "app", "client_secret": SECRET, "tenant": "common", **config},
        }
    )


def make(runtime: Runtime, org_id: str = "org-a") -> AuthIntegration:
    with runtime.sessions() as session:
        return service.create(azure(), org_id=org_id, box=runtime.box, session=session)


def test_create_seals_the_secret_at_rest(runtime: Runtime) -> None:
    integration = make(runtime)
    with runtime.sessions() as session:
        sealed = session.scalar(
            select(AuthIntegration.client_secret_sealed).where(AuthIntegration.id == integration.id)
        )
        assert sealed is not None
        assert SECRET not in sealed
        assert runtime.box.open(sealed) == SECRET
        row = session.get(AuthIntegration, integration.id)
        assert row is not None
        assert service.client_secret(row, box=runtime.box) == SECRET


def test_create_makes_the_org_on_first_use(runtime: Runtime) -> None:
    integration = make(runtime, org_id="brand-new-org")
    with runtime.sessions() as session:
        assert service.get(integration.id, org_id="brand-new-org", session=session).name == "Azure"


def test_replace_keeps_the_secret_when_omitted(runtime: Runtime) -> None:
    integration = make(runtime)
    update = AuthIntegrationUpdate.model_validate(
        {"name": "Renamed", "type": "azure", "config": {"client_id": "app", "tenant": "consumers"}}
    )
    with runtime.sessions() as session:
        service.replace(integration.id, update, org_id="org-a", box=runtime.box, session=session)
    with runtime.sessions() as session:
        row = service.get(integration.id, org_id="org-a", session=session)
        assert (row.name, row.tenant) == ("Renamed", "consumers")
        assert service.client_secret(row, box=runtime.box) == SECRET


def test_replace_requires_a_secret_when_the_type_changes(runtime: Runtime) -> None:
    integration = make(runtime)
    update = AuthIntegrationUpdate.model_validate(
        {"name": "G", "type": "google", "config": {"client_id": "app"}}
    )
    with runtime.sessions() as session, pytest.raises(ParameterMissing) as caught:
        service.replace(integration.id, update, org_id="org-a", box=runtime.box, session=session)
    assert caught.value.param == "config.client_secret"


def test_get_of_another_org_is_not_found(runtime: Runtime) -> None:
    integration = make(runtime, org_id="org-b")
    with runtime.sessions() as session, pytest.raises(NotFound):
        service.get(integration.id, org_id="org-a", session=session)


def test_list_is_scoped_to_the_org(runtime: Runtime) -> None:
    mine = make(runtime)
    make(runtime, org_id="org-b")
    with runtime.sessions() as session:
        page = service.list_integrations(org_id="org-a", page=PageRequest(), session=session)
    assert [item.id for item in page.items] == [mine.id]
    assert page.next_cursor is None


def _add_instances(runtime: Runtime, integration_id: str, count: int) -> list[str]:
    ids = []
    with runtime.sessions() as session:
        for i in range(count):
            instance = Instance(
                org_id="org-a",
                name=f"Instance {i}",
                strategy="oauth2",
                auth_integration_id=integration_id,
                session_ttl=3600,
                created_at=datetime(2025, 1, 1, 0, i, tzinfo=UTC),
            )
            session.add(instance)
            session.flush()
            ids.append(instance.id)
        session.commit()
    return ids


def test_delete_conflict_names_at_most_five_instances(runtime: Runtime) -> None:
    integration = make(runtime)
    ids = _add_instances(runtime, integration.id, 6)
    with runtime.sessions() as session, pytest.raises(Conflict) as caught:
        service.delete(integration.id, org_id="org-a", session=session)
    message = caught.value.message
    assert caught.value.code == "resource_in_use"
    for i, instance_id in enumerate(ids[:5]):
        assert f"'Instance {i}' ({instance_id})" in message
    assert ids[5] not in message
    assert message.endswith("and more; change or delete them first.")


def test_foreign_key_restricts_deleting_an_integration_in_use(runtime: Runtime) -> None:
    # The check in delete() can race with an instance being created; the RESTRICT key is the backstop.
    integration = make(runtime)
    _add_instances(runtime, integration.id, 1)
    with runtime.sessions() as session:
        row = session.get(AuthIntegration, integration.id)
        session.delete(row)
        with pytest.raises(IntegrityError):
            session.commit()


def test_signed_test_url_is_exact_and_expires_in_one_hour(tmp_path: Path) -> None:
    signer = UrlSigner(make_settings("sqlite://", tmp_path))
    now = datetime(2025, 10, 29, 8, 0, 0, tzinfo=UTC)
    url = service.signed_test_url("abc", signer=signer, public_url="https://portal.example", now=now)
    expires = int(now.timestamp()) + 3600
    assert url == (
        f"https://portal.example/guest/oauth/test/abc?expires={expires}"
        f"&signature={signer.sign('oauth-test', 'abc', str(expires))}"
    )
    assert TEST_KEYS["signing_key"] not in url


def test_to_out_signs_a_fresh_test_url_on_every_read(runtime: Runtime) -> None:
    integration = make(runtime)
    earlier = datetime(2025, 1, 1, tzinfo=UTC)
    later = datetime(2025, 1, 2, tzinfo=UTC)
    first = service.to_out(integration, signer=runtime.signer, public_url="http://x", now=earlier)
    second = service.to_out(integration, signer=runtime.signer, public_url="http://x", now=later)
    assert f"expires={int(earlier.timestamp()) + 3600}&" in first.test_url
    assert f"expires={int(later.timestamp()) + 3600}&" in second.test_url
    assert first.test_url != second.test_url
    assert SECRET not in first.model_dump_json()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("organizations", "organizations"),
        (" COMMON ", "common"),
        ("consumers", "consumers"),
        ("9188040d-6c67-4c5b-b112-36a304b66dad", "9188040d-6c67-4c5b-b112-36a304b66dad"),
        ("Contoso.OnMicrosoft.com", "contoso.onmicrosoft.com"),
    ],
)
def test_check_tenant_accepts_and_normalises(value: str, expected: str) -> None:
    assert check_tenant(value) == expected


@pytest.mark.parametrize("value", ["organization", "9188040d-6c67-4c5b-b112", "localhost", "a.b", "x" * 201])
def test_check_tenant_rejects(value: str) -> None:
    with pytest.raises(PydanticCustomError):
        check_tenant(value)
