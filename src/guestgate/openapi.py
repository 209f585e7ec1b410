"""The OpenAPI document: Altostrat's info and tags, the ErrorResponse schema on every error status.

Each error status shows one real example per error code it can carry, built from the domain
errors themselves, with the `doc_url` this server answers (`<public URL>/errors/<code>`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from guestgate import errors as domain
from guestgate.error_handlers import error_body

TITLE = "guestgate — Altostrat Captive Portal API compatible"
VERSION = "1.0.0"
DESCRIPTION = """The Altostrat Captive Portal API is the microservice responsible for managing user
authentication, access control, and branding for guest Wi-Fi networks.

It acts as the control plane for guest network experiences on MikroTik devices (and Linux
gateways), integrating with network automation to dynamically manage user sessions and access
policies.

This API allows you to programmatically manage:
- **Instances:** A complete configuration for a captive portal, including its appearance (theme),
authentication method (OAuth2 or coupon-based), and session rules.
- **Auth Integrations:** Reusable configurations for third-party identity providers (e.g., Google,
Azure AD) used in OAuth2 authentication strategies.
- **Coupons & Schedules:** Time-limited access codes and the automated schedules that generate them
for coupon-based guest access.
- **Walled Garden:** Granular rules defining which domains or IP addresses users can access
*before* authenticating, essential for identity provider logins.

Authenticate with `Authorization: Bearer <JWT>`: in **Authorize**, paste the token alone (Swagger UI
adds `Bearer `). Mint one with `guestgate token create --org ORG` (`--create-org` for a new org);
`guestgate token inspect <token>` shows its claims and whether a data directory's key verifies it.
"""

TAGS = [
    {
        "name": "Captive Portal Instances",
        "description": "Manage captive portal configurations, including "
        "themes, authentication strategies, and associated sites.",
    },
    {
        "name": "Auth Integrations",
        "description": "Configure third-party Identity Providers (IDPs) for OAuth2-based authentication.",
    },
    {"name": "Coupons", "description": "Generate and manage single-use access coupons for guest networks."},
    {
        "name": "Coupon Schedules",
        "description": "Automate the generation of access coupons on a recurring schedule.",
    },
    {
        "name": "Walled Garden",
        "description": "Control which destinations users can access before authentication.",
    },
    {
        "name": "Site Users",
        "description": "View and manage users who have authenticated through the "
        "captive portal at a specific site.",
    },
    {
        "name": "Public Coupon URLs",
        "description": "Signed public URLs of a coupon schedule's or a batch's valid coupons: JSON, CSV, "
        "printable PDF cards or a printable page.",
    },
    {"name": "Sites", "description": "[extension] The sites where gateways enforce guest access."},
    {
        "name": "Notification Groups",
        "description": "[extension] Where coupon schedules deliver their "
        "batches: e-mail addresses and webhooks.",
    },
    {
        "name": "Audit",
        "description": "[extension] Who changed what, and the guest sign-in failures and lock-outs.",
    },
    {
        "name": "API Tokens",
        "description": "[extension] Named operator tokens of the org: mint (shown once), list, revoke.",
    },
]

ERROR_RESPONSES = {
    "400": (
        "BadRequest",
        "Bad Request - The request was malformed or invalid. This can happen if a "
        "required parameter is missing or a value is of the wrong type.",
    ),
    "401": (
        "Unauthorized",
        "Unauthorized - The request requires authentication, but no valid credentials "
        "were provided. Ensure your API key is correct and included in the 'Authorization' header.",
    ),
    "403": (
        "Forbidden",
        "Forbidden - You do not have permission to perform this action on the requested resource.",
    ),
    "404": (
        "NotFound",
        "Not Found - The requested resource could not be found. Check that the provided ID is correct.",
    ),
    "405": ("MethodNotAllowed", "Method Not Allowed - The endpoint does not accept this HTTP method."),
    "409": ("Conflict", "Conflict - The request conflicts with the current state of another resource."),
    "413": ("PayloadTooLarge", "Payload Too Large - The request body exceeds the configured limit."),
    "429": ("TooManyRequests", "Too Many Requests - Retry after the number of seconds in Retry-After."),
    "500": (
        "ServerError",
        "Internal Server Error - Something went wrong on our end. We've been notified and "
        "are looking into it.",
    ),
    "503": ("ServiceUnavailable", "Service Unavailable - A dependency is unavailable; retry shortly."),
    "507": (
        "InsufficientStorage",
        "Insufficient Storage - The server's disk is full; nothing was saved. Retry once space is freed.",
    ),
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["type", "code", "message", "doc_url"],
    "properties": {
        "type": {
            "type": "string",
            "description": "A broad category for the error (e.g., 'invalid_request_error').",
        },
        "code": {"type": "string", "description": "A short, unique string identifying the specific error."},
        "message": {
            "type": "string",
            "description": "A human-readable description of what went wrong; it names the parameter or "
            "resource concerned.",
        },
        "doc_url": {
            "type": "string",
            "description": "A direct link to the documentation page for this specific error code "
            "(`/errors/<code>` on this server).",
        },
    },
}
# One error of every code, with a message the code really sends: the examples of each status.
EXAMPLE_ERRORS: tuple[domain.GuestgateError, ...] = (
    domain.ParameterMissing("name"),
    domain.ParameterInvalid("session_ttl", "must be between 1200 and 604800"),
    domain.InvalidJSON("The request body is not valid JSON."),
    domain.ReferenceMissing("notification_group_id", "ng_0123456789ab"),
    domain.FileInvalid("The file is not a PNG, JPEG, WebP or GIF image."),
    domain.AuthenticationFailed("No bearer token was supplied.", code="token_missing"),
    domain.AuthenticationFailed("The token starts with 'Bearer ': paste the token without the 'Bearer ' prefix."),
    domain.AuthenticationFailed("The bearer token has expired.", code="token_expired"),
    domain.InsufficientScope("captive:write"),
    domain.SignatureInvalid(),
    domain.UrlExpired(),
    domain.UrlRevoked(),
    domain.NotFound("instance", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
    domain.RouteNotFound("/captive/instance"),
    domain.MethodNotAllowed("PATCH", "/captive/instances"),
    domain.Conflict(
        "The auth integration is used by instance 'Lobby Wi-Fi'; change or delete them first.",
        code="resource_in_use",
    ),
    domain.Conflict(
        "The subnet 10.10.0.0/24 of site 3f2a9c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c already belongs to instance "
        "7c9e6679-7425-40de-944b-e07fc1f90ae7.",
        code="subnet_in_use",
    ),
    domain.PayloadTooLarge("The request body is larger than 4194304 bytes."),
    domain.RateLimited(
        "Too many requests with this token. Retry after the number of seconds in Retry-After.", retry_after=2
    ),
    domain.InternalError("An internal error occurred."),
    domain.ServiceUnavailable("The database is unavailable."),
    domain.DatabaseUnavailable(),
    domain.InsufficientStorage(),
)
# Paths whose errors a browser gets as an HTML page (the printable page of a signed coupon link).
HTML_ERROR_PATHS = frozenset({"/captive/coupons"})
# Every operation can answer these, whatever it declares: malformed input, crashes, overload.
ALWAYS = ("400", "413", "500", "503")
OPERATOR_ALWAYS = ("401", "403", "429")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries a route declares for its error statuses."""
    return {status: {"description": ERROR_RESPONSES[str(status)][1]} for status in statuses}


def build(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, post-processed for the contract."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=TITLE, version=VERSION, description=DESCRIPTION, routes=app.routes, tags=TAGS)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorResponse"] = ERROR_SCHEMA
    examples = error_examples(app.state.runtime.settings.public_url)
    components["responses"] = {
        name: {
            "description": text,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorResponse"},
                    "examples": examples[status],
                }
            },
        }
        for status, (name, text) in ERROR_RESPONSES.items()
    }
    components["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Operator token (JWT), sent as `Authorization: Bearer <token>`. In Authorize, "
            "paste the token alone: Swagger UI adds the `Bearer ` prefix. Mint one with "
            "`guestgate token create --org ORG`.",
        }
    }
    for path, item in schema.get("paths", {}).items():
        operator = path.startswith("/captive") and not _is_public(path)
        for method, operation in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            wanted = set(ALWAYS) | (set(OPERATOR_ALWAYS) if operator else set())
            wanted |= {code for code in responses if code in ERROR_RESPONSES}
            for code in sorted(wanted):
                responses[code] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"}
                if path in HTML_ERROR_PATHS:
                    responses[code] = _with_html_page(code)
            if operator:
                operation["security"] = [{"bearerAuth": []}]
            else:
                operation["security"] = []
    app.openapi_schema = schema
    return schema


def error_examples(public_url: str) -> dict[str, dict[str, dict[str, Any]]]:
    """For each error status, one example body per code it carries (keyed by code)."""
    by_status: dict[str, dict[str, dict[str, Any]]] = {status: {} for status in ERROR_RESPONSES}
    for error in EXAMPLE_ERRORS:
        status = str(domain.kind_of(error).status)
        by_status[status][error.code] = {"summary": error.code, "value": error_body(error, public_url)}
    return by_status


def _with_html_page(code: str) -> dict[str, Any]:
    """An error response that a browser (`Accept: text/html`) gets as a page instead of the JSON body."""
    text = ERROR_RESPONSES[code][1]
    return {
        "description": text + " A browser asking for `text/html` gets the same error as a page.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}},
            "text/html": {"schema": {"type": "string"}},
        },
    }


def _is_public(path: str) -> bool:
    return path == "/captive/coupons" or path.startswith("/captive/assets/")
