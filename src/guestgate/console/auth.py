"""Passwords (argon2id), session tokens and CSRF tokens of the console.

The cookie holds a random token; the database keeps only its SHA-256, so a copy of the
database signs nobody in. Each session has its own CSRF token, sent back in a hidden field of
every form and compared in constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

COOKIE = "guestgate_console"
CSRF_FIELD = "csrf_token"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


@functools.cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults are RFC 9106's second recommended profile (argon2id, 64 MiB, t=3).
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash of `password`."""
    return _hasher().hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True if `password` matches `stored`.

    With no stored hash (unknown e-mail, password not chosen yet) a dummy hash is checked all
    the same, so the answer takes as long and the timing does not tell which accounts exist.
    """
    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True if `stored` was made with weaker parameters than today's."""
    return _hasher().check_needs_rehash(stored)


def new_token() -> str:
    """A random URL-safe token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 (hex) a token is stored as."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    """True if the form's CSRF token is the session's."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
