"""What `guestgate token inspect` says about an operator token: claims, validity, which key verifies it.

The report never shows a key, only where it comes from (a data directory's `secrets.env`, the
environment), so it can be pasted into a ticket.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import jwt

from guestgate.config import Settings
from guestgate.durations import format_duration
from guestgate.errors import AuthenticationFailed
from guestgate.security import SIGNATURE_MISMATCH, TokenVerifier
from guestgate.startup import display_url, sqlite_path

CLAIMS = ("sub", "org", "scope", "iat", "nbf", "exp", "iss", "aud")
TIME_CLAIMS = ("iat", "nbf", "exp")


def inspect(token: str, settings: Settings, *, now: float | None = None) -> tuple[list[str], bool]:
    """The report's lines, and whether a server with `settings` accepts the token."""
    moment = time.time() if now is None else now
    try:
        header = jwt.get_unverified_header(token)
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ["not a token: it is not a JWT (three base64url parts separated by dots)"], False
    lines = [f"algorithm: {header.get('alg')}"]
    for name in CLAIMS:
        if name in claims:
            lines.append(f"{name}: {_claim(name, claims[name], moment)}")
    lines.append(f"data directory: {settings.data_dir.resolve()}")
    accepted, verdict = _verify(token, header, settings)
    lines.append(verdict)
    org = claims.get("org")
    if isinstance(org, str):
        lines.append(f"org '{org}': {_org_status(org, settings)}")
    return lines, accepted


def _claim(name: str, value: Any, now: float) -> str:
    if name not in TIME_CLAIMS or not isinstance(value, int | float):
        return str(value)
    when = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = int(value - now)
    if name == "exp":
        state = f"expires in {format_duration(delta)}" if delta > 0 else f"EXPIRED {format_duration(-delta)} ago"
        return f"{when} ({state})"
    if name == "nbf" and delta > 0:
        return f"{when} (NOT VALID for another {format_duration(delta)})"
    return when


def _verify(token: str, header: dict[str, Any], settings: Settings) -> tuple[bool, str]:
    if header.get("alg") == "HS256" and settings.jwt_secret is None:
        return False, (
            f"verified here: NO - this data directory has no JWT secret yet ({settings.secrets_file.resolve()} "
            "does not exist): use the data directory of the server that should accept it"
        )
    source = settings.secret_source("jwt_secret") if header.get("alg") == "HS256" else "the configured public key"
    try:
        principal = TokenVerifier(settings).verify(f"Bearer {token}")
    except AuthenticationFailed as exc:
        if exc.message == SIGNATURE_MISMATCH:
            return False, (
                f"verified here: NO - the signature does not match the key from {source}: the token was "
                "minted with another data directory or another GUESTGATE_JWT_SECRET"
            )
        return False, f"verified here: NO - {exc.message}"
    return True, f"verified here: yes, with the key from {source} (scopes: {' '.join(sorted(principal.scopes))})"


def _org_status(org: str, settings: Settings) -> str:
    """Whether the org exists in this data directory's database; nothing is created to find out."""
    from sqlalchemy import exc as sa_exc

    from guestgate.db import make_engine, make_sessionmaker
    from guestgate.orgs import service as org_service

    url = settings.resolved_database_url
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        return f"unknown (no database yet at {path})"
    try:
        engine = make_engine(url)
    except (sa_exc.ArgumentError, ImportError):
        return "unknown (GUESTGATE_DATABASE_URL is not usable)"
    try:
        with make_sessionmaker(engine)() as session:
            if org_service.exists(org, session=session):
                return f"exists in {display_url(url)}"
            near = org_service.near(org, session=session)
    except sa_exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        return f"unknown (the database {display_url(url)} cannot be read: {type(cause).__name__})"
    finally:
        engine.dispose()
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    return f"NOT in {display_url(url)} (the token would see an empty org){hint}"
