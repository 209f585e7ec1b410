"""Request and response shapes of auth integrations (OAuth2 / OpenID Connect identity providers)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr

from guestgate.schemas import Name, Timestamp, invalid

IntegrationType = Literal["azure", "github", "google"]
MAX_CLIENT_ID_CHARS = 500
MAX_SECRET_CHARS = 2000
AZURE_TENANT_WORDS = ("organizations", "common", "consumers")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A DNS name with at least two labels and an alphabetic top-level label (contoso.onmicrosoft.com).
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
TENANT_REASON = (
    "must be 'organizations', 'common', 'consumers', a directory (tenant) id or a verified "
    "domain name such as 'contoso.onmicrosoft.com'"
)


def _check_client_id(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise invalid("must not be empty")
    if len(stripped) > MAX_CLIENT_ID_CHARS:
        raise invalid(f"must be at most {MAX_CLIENT_ID_CHARS} characters")
    return stripped


def _check_secret(value: SecretStr) -> SecretStr:
    # Providers never issue secrets with surrounding whitespace; a pasted newline would break sign-in.
    stripped = value.get_secret_value().strip()
    if not stripped:
        raise invalid("must not be empty")
    if len(stripped) > MAX_SECRET_CHARS:
        raise invalid(f"must be at most {MAX_SECRET_CHARS} characters")
    return SecretStr(stripped)


def check_tenant(value: str) -> str:
    """An Azure tenant, lowercased: one of the sign-in audiences, a directory id or a domain name."""
    tenant = value.strip().lower()
    if len(tenant) > 200:
        raise invalid(TENANT_REASON)
    if tenant in AZURE_TENANT_WORDS or _GUID.fullmatch(tenant) or _DOMAIN.fullmatch(tenant):
        return tenant
    raise invalid(TENANT_REASON)


def _check_optional_tenant(value: str | None) -> str | None:
    return None if value is None else check_tenant(value)


ClientId = Annotated[
    str,
    AfterValidator(_check_client_id),
    Field(description="The OAuth client (application) id issued by the provider.", examples=["my-app-id"]),
]
ClientSecret = Annotated[SecretStr, AfterValidator(_check_secret)]
Tenant = Annotated[
    str | None,
    AfterValidator(_check_optional_tenant),
    Field(
        description="Azure only (required there): `organizations`, `common`, `consumers`, a directory "
        "(tenant) id or a verified domain name.",
        examples=["organizations"],
    ),
]


class ConfigCreate(BaseModel):
    """The provider settings of a new integration; `client_secret` is write-only."""

    client_id: ClientId
    client_secret: ClientSecret = Field(
        description="The OAuth client secret. Write-only: stored encrypted, never returned."
    )
    tenant: Tenant = None


class ConfigUpdate(BaseModel):
    """The provider settings of an integration; an omitted `client_secret` keeps the stored one."""

    client_id: ClientId
    client_secret: ClientSecret | None = Field(
        None,
        description="The OAuth client secret. Write-only; omit it to keep the stored one (required "
        "when `type` or `client_id` changes).",
    )
    tenant: Tenant = None


class AuthIntegrationCreate(BaseModel):
    """A new identity provider configuration."""

    name: Name = Field(description="A human-readable name for the integration.", examples=["Staff Azure AD"])
    type: IntegrationType = Field(description="The identity provider.")
    config: ConfigCreate


class AuthIntegrationUpdate(BaseModel):
    """The whole writable representation of an integration."""

    name: Name = Field(description="A human-readable name for the integration.", examples=["Staff Azure AD"])
    type: IntegrationType = Field(description="The identity provider.")
    config: ConfigUpdate


class Config(BaseModel):
    """The provider settings, without the secret."""

    client_id: str
    tenant: str | None = Field(description="The Azure tenant; null for other providers.")


class AuthIntegration(BaseModel):
    """A reusable identity provider configuration for OAuth2 instances."""

    id: str = Field(description="The unique identifier for the auth integration.")
    name: str = Field(description="A human-readable name for the integration.")
    type: IntegrationType = Field(description="The identity provider.")
    config: Config
    test_url: str = Field(
        description="A signed URL that can be used to test the authentication flow for this integration."
    )
    created_at: Timestamp
