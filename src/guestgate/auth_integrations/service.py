"""Auth integrations: CRUD with the client secret sealed at rest, and the signed test URL."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate import references
from guestgate.audit import service as audit_service
from guestgate.auth_integrations import discovery
from guestgate.auth_integrations.models import AuthIntegration
from guestgate.auth_integrations.schemas import AuthIntegration as AuthIntegrationOut
from guestgate.auth_integrations.schemas import (
    AuthIntegrationCreate,
    AuthIntegrationUpdate,
    Config,
    ConfigCreate,
    ConfigUpdate,
    IntegrationType,
)
from guestgate.db import utcnow
from guestgate.errors import ParameterInvalid, ParameterMissing
from guestgate.instances.models import Instance
from guestgate.orgs import service as org_service
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.security import SecretBox, UrlSigner
from guestgate.tenancy import get_owned

TEST_URL_TTL_SECONDS = 3600
AUDITED = ("name", "type", "client_id", "tenant", "issuer")
# How many users of an integration a 409 message names before summarising the rest.


def get(integration_id: str, *, org_id: str, session: Session) -> AuthIntegration:
    """The org's auth integration, or NotFound."""
    return get_owned(session, AuthIntegration, integration_id, org_id, resource="auth integration")


def list_integrations(*, org_id: str, page: PageRequest, session: Session) -> Page[AuthIntegration]:
    """The org's auth integrations, newest first."""
    stmt = select(AuthIntegration).where(AuthIntegration.org_id == org_id)
    return fetch_page(session, stmt, page, AuthIntegration.created_at, AuthIntegration.id)


def create(
    data: AuthIntegrationCreate,
    *,
    org_id: str,
    box: SecretBox,
    session: Session,
    discoverer: discovery.Discoverer | None = None,
) -> AuthIntegration:
    """Create an integration; the client secret is stored sealed.

    An `oidc` integration's issuer is discovered first with `discoverer` (blocking, before this
    function's queries, so no write of it waits on the network).
    """
    issuer, sign_in_host = _issuer_for(data.type, data.config, discoverer)
    tenant = _tenant_for(data.type, data.config)
    org_service.ensure(org_id, session=session)
    integration = AuthIntegration(
        org_id=org_id,
        name=data.name,
        type=data.type,
        client_id=data.config.client_id,
        tenant=tenant,
        issuer=issuer,
        sign_in_host=sign_in_host,
        client_secret_sealed=box.seal(data.config.client_secret.get_secret_value()),
    )
    session.add(integration)
    session.flush()
    audit_service.record(
        session,
        org_id=org_id,
        action="auth_integration.create",
        target_type="auth_integration",
        target_id=integration.id,
        detail={"name": integration.name, "type": integration.type, "issuer": integration.issuer},
    )
    session.commit()
    return integration


def replace(
    integration_id: str,
    data: AuthIntegrationUpdate,
    *,
    org_id: str,
    box: SecretBox,
    session: Session,
    discoverer: discovery.Discoverer | None = None,
) -> AuthIntegration:
    """Replace an integration; an omitted client secret keeps the stored one.

    An `oidc` issuer is discovered again (its sign-in host may have moved), before any query.
    """
    issuer, sign_in_host = _issuer_for(data.type, data.config, discoverer)
    integration = get(integration_id, org_id=org_id, session=session)
    tenant = _tenant_for(data.type, data.config)
    secret = data.config.client_secret
    if secret is None and (
        data.type != integration.type
        or data.config.client_id != integration.client_id
        or issuer != integration.issuer
    ):
        # A secret belongs to one OAuth client of one provider: keeping it would break sign-in
        # silently, and a stored secret is never sent to an issuer it was not given for.
        raise ParameterMissing("config.client_secret")
    before = audit_service.snapshot(integration, AUDITED)
    integration.name = data.name
    integration.type = data.type
    integration.client_id = data.config.client_id
    integration.tenant = tenant
    integration.issuer = issuer
    integration.sign_in_host = sign_in_host
    if secret is not None:
        integration.client_secret_sealed = box.seal(secret.get_secret_value())
    changed = audit_service.changed(before, integration, AUDITED)
    if secret is not None:
        changed.append("client_secret")  # that it was replaced, never the secret
    audit_service.record(
        session,
        org_id=org_id,
        action="auth_integration.update",
        target_type="auth_integration",
        target_id=integration.id,
        detail={"name": integration.name, "changed": changed},
    )
    session.commit()
    return integration


def delete(integration_id: str, *, org_id: str, session: Session) -> None:
    """Delete an integration; refused (Conflict) while an instance uses it."""
    integration = get(integration_id, org_id=org_id, session=session)
    users = (
        select(Instance.id, Instance.name)
        .where(Instance.auth_integration_id == integration.id)
        .order_by(Instance.created_at, Instance.id)
    )
    # Committed with the deletion, rolled back with it when the integration is still in use.
    audit_service.record(
        session,
        org_id=org_id,
        action="auth_integration.delete",
        target_type="auth_integration",
        target_id=integration.id,
        detail={"name": integration.name, "type": integration.type},
    )
    references.delete_unless_used(
        integration, users=users, what="auth integration", user_kind="instance", session=session
    )


def client_secret(integration: AuthIntegration, *, box: SecretBox) -> str:
    """The decrypted client secret of an integration (for the OAuth flow only; never returned)."""
    return box.open(integration.client_secret_sealed)


def signed_test_url(integration_id: str, *, signer: UrlSigner, public_url: str, now: datetime) -> str:
    """A URL that runs the integration's sign-in flow as a test, valid for one hour."""
    expires = int(now.timestamp()) + TEST_URL_TTL_SECONDS
    signature = signer.sign("oauth-test", integration_id, str(expires))
    return f"{public_url}/guest/oauth/test/{integration_id}?expires={expires}&signature={signature}"


def to_out(
    integration: AuthIntegration, *, signer: UrlSigner, public_url: str, now: datetime | None = None
) -> AuthIntegrationOut:
    """The API representation (no secret), with a fresh test URL."""
    return AuthIntegrationOut(
        id=integration.id,
        name=integration.name,
        type=cast(IntegrationType, integration.type),
        config=Config(client_id=integration.client_id, tenant=integration.tenant, issuer=integration.issuer),
        test_url=signed_test_url(integration.id, signer=signer, public_url=public_url, now=now or utcnow()),
        created_at=integration.created_at,
    )


def _tenant_for(kind: str, config: ConfigCreate | ConfigUpdate) -> str | None:
    if kind == "azure":
        if config.tenant is None:
            raise ParameterMissing("config.tenant")
        return config.tenant
    if config.tenant is not None:
        raise ParameterInvalid("config.tenant", "must be null unless 'type' is 'azure'")
    return None


def _issuer_for(
    kind: str, config: ConfigCreate | ConfigUpdate, discoverer: discovery.Discoverer | None
) -> tuple[str | None, str | None]:
    """The issuer and sign-in host of an `oidc` integration (discovered now), or (None, None)."""
    if kind != "oidc":
        if config.issuer is not None:
            raise ParameterInvalid("config.issuer", "must be null unless 'type' is 'oidc'")
        return None, None
    if config.issuer is None:
        raise ParameterMissing("config.issuer")
    if discoverer is None:
        raise RuntimeError("an oidc integration is saved with a discovery.Discoverer")
    try:
        found = discoverer.discover(config.issuer)
    except discovery.DiscoveryFailed as exc:
        raise ParameterInvalid("config.issuer", str(exc)) from exc
    return found.issuer, found.sign_in_host
