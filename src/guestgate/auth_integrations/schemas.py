"""Request and response shapes of auth integrations (OAuth2 / OpenID Connect identity providers)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr

from guestgate.schemas import Name, Timestamp, invalid

# `oidc` is an **[extension]**: any OpenID Connect issuer, named by `config.issuer`.
IntegrationType = Literal["azure", "github", "google", "oidc"]
TYPE_DESCRIPTION = (
    "The identity provider. **[extension]** `oidc`: any OpenID Connect provider, found through "
    "the discovery document of `config.issuer`."
)
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
ISSUER_DESCRIPTION = (
    "**[extension]** `oidc` only (required there): the provider's issuer URL, exactly as its "
    "discovery document (`<issuer>/.well-known/openid-configuration`) names it. Checked when saved: "
    "the document is fetched and must name this issuer and https:// endpoints."
)
Issuer = Annotated[
    str | None,
    Field(description=ISSUER_DESCRIPTION, examples=["https://login.example.com/realms/guests"]),
]


class ConfigCreate(BaseModel):
    """The provider settings of a new integration; `client_secret` is write-only."""

    client_id: ClientId
    client_secret: ClientSecret = Field(
        description="The OAuth client secret. Write-only: stored encrypted, never returned."
    )
    tenant: Tenant = None
    issuer: Issuer = None


class ConfigUpdate(BaseModel):
    """The provider settings of an integration; an omitted `client_secret` keeps the stored one."""

    client_id: ClientId
    client_secret: ClientSecret | None = Field(
        None,
        description="The OAuth client secret. Write-only; omit it to keep the stored one (required "
        "when `type` or `client_id` changes).",
    )
    tenant: Tenant = None
    issuer: Issuer = None


class AuthIntegrationCreate(BaseModel):
    """A new identity provider configuration."""

    name: Name = Field(description="A human-readable name for the integration.", examples=["Staff Azure AD"])
    type: IntegrationType = Field(description=TYPE_DESCRIPTION)
    config: ConfigCreate


class AuthIntegrationUpdate(BaseModel):
    """The whole writable representation of an integration."""

    name: Name = Field(description="A human-readable name for the integration.", examples=["Staff Azure AD"])
    type: IntegrationType = Field(description=TYPE_DESCRIPTION)
    config: ConfigUpdate


class Config(BaseModel):
    """The provider settings, without the secret."""

    client_id: str
    tenant: str | None = Field(description="The Azure tenant; null for other providers.")
    # Absent from the other types, so they read exactly as they always have.
    issuer: str | None = Field(
        None,
        description=ISSUER_DESCRIPTION + " Present only on `oidc` integrations.",
        exclude_if=lambda value: value is None,
    )


class AuthIntegration(BaseModel):
    """A reusable identity provider configuration for OAuth2 instances."""

    id: str = Field(description="The unique identifier for the auth integration.")
    name: str = Field(description="A human-readable name for the integration.")
    type: IntegrationType = Field(description=TYPE_DESCRIPTION)
    config: Config
    test_url: str = Field(
        description="A signed URL that can be used to test the authentication flow for this integration."
    )
    created_at: Timestamp
