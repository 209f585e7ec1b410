"""Domain errors and the one table that maps them to HTTP.

    GuestgateError
    ├── InvalidRequest            400 invalid_request_error
    │   ├── ParameterMissing          parameter_missing
    │   ├── ParameterInvalid          parameter_invalid
    │   ├── InvalidJSON               invalid_json
    │   ├── ReferenceMissing          resource_missing
    │   └── FileInvalid               file_invalid
    ├── AuthenticationFailed      401 authentication_error (token_missing/_invalid/_expired)
    ├── PermissionDenied          403 permission_error
    │   ├── InsufficientScope         insufficient_scope
    │   ├── SignatureInvalid          signature_invalid
    │   ├── UrlExpired                url_expired
    │   └── UrlRevoked                url_revoked
    ├── NotFound                  404 not_found_error (resource_not_found, route_not_found)
    ├── MethodNotAllowed          405 invalid_request_error method_not_allowed
    ├── Conflict                  409 conflict_error (resource_in_use, subnet_in_use)
    ├── PayloadTooLarge           413 invalid_request_error request_too_large
    ├── RateLimited               429 rate_limit_error rate_limited
    ├── ServiceUnavailable        503 api_error service_unavailable
    │   └── DatabaseUnavailable       database_unavailable
    ├── InsufficientStorage       507 api_error insufficient_storage
    └── InternalError             500 api_error internal_error

Services raise these; nothing here knows about the web framework.
"""

from __future__ import annotations

from dataclasses import dataclass


class GuestgateError(Exception):
    """Base of every error guestgate reports to a client."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(GuestgateError):
    """The request is malformed or breaks a rule."""

    code = "parameter_invalid"


class ParameterMissing(InvalidRequest):
    """A required parameter is absent."""

    code = "parameter_missing"

    def __init__(self, param: str, *, reason: str | None = None) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"The '{param}' parameter is required for this request{why}.")
        self.param = param


class ParameterInvalid(InvalidRequest):
    """A parameter has the wrong type, range, format or breaks a cross-field rule."""

    code = "parameter_invalid"

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"The '{param}' parameter {reason}.")
        self.param = param


class InvalidJSON(InvalidRequest):
    """The body is not valid JSON."""

    code = "invalid_json"


class ReferenceMissing(InvalidRequest):
    """A referenced id does not exist in this org."""

    code = "resource_missing"

    def __init__(self, param: str, value: object) -> None:
        super().__init__(f"The '{param}' parameter refers to '{value}', which does not exist.")
        self.param = param


class FileInvalid(InvalidRequest):
    """An uploaded file is not an accepted image, or has the wrong size."""

    code = "file_invalid"


class AuthenticationFailed(GuestgateError):
    """No usable credentials."""

    code = "token_invalid"


class PermissionDenied(GuestgateError):
    """Credentials are fine but do not allow this."""

    code = "insufficient_scope"


class InsufficientScope(PermissionDenied):
    """The token lacks the scope this operation needs."""

    code = "insufficient_scope"

    def __init__(self, needed: str) -> None:
        super().__init__(f"This request needs the '{needed}' scope.")


class SignatureInvalid(PermissionDenied):
    """A signed URL's signature does not match."""

    code = "signature_invalid"

    def __init__(self) -> None:
        super().__init__("The URL's signature is invalid.")


class UrlExpired(PermissionDenied):
    """A signed URL is past its expiry."""

    code = "url_expired"

    def __init__(self) -> None:
        super().__init__("The URL has expired.")


class UrlRevoked(PermissionDenied):
    """A signed URL was signed before its operator revoked the links of its schedule or batch."""

    code = "url_revoked"

    def __init__(self) -> None:
        super().__init__(
            "The URL was revoked: its links were withdrawn after it was signed. Ask for a new one."
        )


class NotFound(GuestgateError):
    """The resource does not exist (or belongs to another org, which looks the same)."""

    code = "resource_not_found"

    def __init__(self, resource: str, resource_id: object = None) -> None:
        text = f"No such {resource}: '{resource_id}'." if resource_id is not None else f"No such {resource}."
        super().__init__(text)


class RouteNotFound(NotFound):
    """No route matches the path."""

    code = "route_not_found"

    def __init__(self, path: str) -> None:
        GuestgateError.__init__(self, f"Unrecognized request URL: '{path}'.")


class MethodNotAllowed(GuestgateError):
    """The route exists but not with this method."""

    code = "method_not_allowed"

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"The {method} method is not allowed on '{path}'.")


class Conflict(GuestgateError):
    """The request conflicts with the state of another resource."""

    code = "resource_in_use"


class PayloadTooLarge(GuestgateError):
    """The request body is larger than the configured limit."""

    code = "request_too_large"


class RateLimited(GuestgateError):
    """Too many requests; retry after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(GuestgateError):
    """A dependency (the database) is unreachable; the request can be retried."""

    code = "service_unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database is unreachable, restarting or locked for longer than the busy timeout."""

    code = "database_unavailable"
    retry_after = 5

    def __init__(self) -> None:
        super().__init__("The database is unavailable right now. Retry in a few seconds.")


class InsufficientStorage(GuestgateError):
    """The server's disk (data directory, temporary files or database) is full; nothing was saved."""

    code = "insufficient_storage"

    def __init__(self) -> None:
        super().__init__("The server has no space left to store this request. Nothing was saved.")


class InternalError(GuestgateError):
    """Something failed on our side; the message never carries internals."""

    code = "internal_error"


@dataclass(frozen=True)
class ErrorKind:
    """How an error class is reported over HTTP."""

    status: int
    type: str


# The one table: the first class in MRO order found here decides the status and type.
HTTP_TABLE: dict[type[GuestgateError], ErrorKind] = {
    InvalidRequest: ErrorKind(400, "invalid_request_error"),
    AuthenticationFailed: ErrorKind(401, "authentication_error"),
    PermissionDenied: ErrorKind(403, "permission_error"),
    NotFound: ErrorKind(404, "not_found_error"),
    MethodNotAllowed: ErrorKind(405, "invalid_request_error"),
    Conflict: ErrorKind(409, "conflict_error"),
    PayloadTooLarge: ErrorKind(413, "invalid_request_error"),
    RateLimited: ErrorKind(429, "rate_limit_error"),
    ServiceUnavailable: ErrorKind(503, "api_error"),
    InsufficientStorage: ErrorKind(507, "api_error"),
    InternalError: ErrorKind(500, "api_error"),
    GuestgateError: ErrorKind(500, "api_error"),
}

# Every code with the page `/errors/<code>` shows for it.
ERROR_CODES: dict[str, tuple[type[GuestgateError], str]] = {
    "parameter_missing": (ParameterMissing, "A required parameter was not supplied. The message names it."),
    "parameter_invalid": (
        ParameterInvalid,
        "A parameter has the wrong type, is out of range, is not one of the allowed "
        "values, has the wrong format, or breaks a rule that involves another field.",
    ),
    "invalid_json": (InvalidJSON, "The request body could not be parsed as JSON."),
    "resource_missing": (
        ReferenceMissing,
        "The request refers to another resource (an auth integration, a notification "
        "group, a site) by an id that does not exist in your organisation.",
    ),
    "file_invalid": (
        FileInvalid,
        "The uploaded file is not a PNG, JPEG, WebP or GIF image, or its size or dimensions "
        "are outside the accepted range.",
    ),
    "token_missing": (AuthenticationFailed, "The request has no 'Authorization: Bearer <token>' header."),
    "token_invalid": (
        AuthenticationFailed,
        "The bearer token could not be verified: wrong signature, algorithm, issuer, "
        "audience, or missing claims.",
    ),
    "token_expired": (AuthenticationFailed, "The bearer token is past its 'exp' time. Mint a new one."),
    "insufficient_scope": (
        InsufficientScope,
        "The token is valid but lacks the scope this operation needs "
        "(captive:read, captive:write or coupons:issue).",
    ),
    "signature_invalid": (
        SignatureInvalid,
        "The signed URL was changed after it was issued, or was signed with another key.",
    ),
    "url_expired": (UrlExpired, "The signed URL is past its expiry time. Ask for a new one."),
    "url_revoked": (
        UrlRevoked,
        "The signed URL was signed before an operator revoked the public links of its coupon schedule "
        "or batch (`POST .../revoke_urls`). Ask for a new one.",
    ),
    "resource_not_found": (NotFound, "No resource with that id exists in your organisation."),
    "route_not_found": (RouteNotFound, "No endpoint exists at that path."),
    "method_not_allowed": (MethodNotAllowed, "The endpoint exists but does not accept that HTTP method."),
    "resource_in_use": (
        Conflict,
        "The resource is still used by another one (for example an auth integration "
        "used by an instance) and cannot be deleted or changed that way.",
    ),
    "subnet_in_use": (Conflict, "The subnet of that site already belongs to another instance."),
    "request_too_large": (PayloadTooLarge, "The request body is larger than the server accepts."),
    "rate_limited": (
        RateLimited,
        "Too many requests. Wait for the number of seconds in the Retry-After header.",
    ),
    "service_unavailable": (
        ServiceUnavailable,
        "A service guestgate depends on is unavailable. Retry shortly.",
    ),
    "database_unavailable": (
        DatabaseUnavailable,
        "The database could not be reached, is restarting, or stayed locked longer than the "
        "busy timeout. Nothing was changed; retry in a few seconds (Retry-After says when).",
    ),
    "insufficient_storage": (
        InsufficientStorage,
        "The server ran out of disk space while storing the request (an upload, the database). "
        "Nothing was saved; retry once the operator has freed space.",
    ),
    "internal_error": (InternalError, "Something went wrong on our side. The request can be retried."),
}


def kind_of(error: GuestgateError | type[GuestgateError]) -> ErrorKind:
    """The HTTP status and type for an error (or error class), from the table."""
    cls_of = error if isinstance(error, type) else type(error)
    for cls in cls_of.__mro__:
        if cls in HTTP_TABLE:
            return HTTP_TABLE[cls]
    return HTTP_TABLE[GuestgateError]
