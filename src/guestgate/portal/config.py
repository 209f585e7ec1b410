"""The portal's limits and knobs, taken from the `GUESTGATE_PORTAL_*` settings."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from guestgate import networks
from guestgate.config import Settings

CODE_HASH_CHARS = 8


@dataclass(frozen=True)
class ThrottleLimits:
    """When failed sign-ins lock a client or a site out, and for how long."""

    client_max_failures: int = 5
    site_max_failures: int = 50
    window_seconds: int = 900
    lockout_seconds: int = 60
    lockout_max_seconds: int = 3600
    memory_seconds: int = 86400

    def lockout_for(self, level: int) -> int:
        """The length of the `level`-th lock-out (1-based): doubling, capped."""
        return int(min(self.lockout_seconds * 2 ** min(max(level, 1) - 1, 30), self.lockout_max_seconds))


@dataclass(frozen=True)
class PortalConfig:
    """Everything the portal reads from the settings."""

    public_url: str
    token_ttl_seconds: int = 1800
    entry_max_age_seconds: int = 300
    trusted_proxies: tuple[networks.Network, ...] = ()
    throttle: ThrottleLimits = ThrottleLimits()
    cache_seconds: float = 5.0
    pg_pool_size: int = 8
    redis_url: str | None = None
    redis_prefix: str = "guestgate:portal:"
    # GUESTGATE_MAX_BODY_BYTES: the portal reads its own forms, past the app's body limit middleware.
    max_body_bytes: int = 4 * 1024 * 1024
    # Keys the audit log's hash of a refused code (see `code_hash`); derived from the signing key.
    code_hash_key: bytes = b""
    # Sign and check the captive redirect's `orig` (`continue_links`): current key first, then the
    # previous one during a rotation.
    orig_keys: tuple[bytes, ...] = ()

    def code_hash(self, code: str) -> str:
        """What the audit log keeps of a typed code: 8 hex digits of a keyed HMAC-SHA256.

        Equal codes give equal hashes (a guest retrying one typo shows as one value; a guesser
        as many), but the code cannot be got back: the code space is small enough (31^6) to
        try every code against an unkeyed hash, and no org holds this key.
        """
        return hmac.new(self.code_hash_key, code.encode(), hashlib.sha256).hexdigest()[:CODE_HASH_CHARS]

    @classmethod
    def from_settings(cls, settings: Settings) -> PortalConfig:
        """The portal configuration of `settings`."""
        return cls(
            public_url=settings.public_url,
            token_ttl_seconds=settings.portal_token_ttl_seconds,
            entry_max_age_seconds=settings.portal_entry_max_age_seconds,
            trusted_proxies=parse_proxies(settings.portal_trusted_proxies),
            throttle=ThrottleLimits(
                client_max_failures=settings.portal_client_max_failures,
                site_max_failures=settings.portal_site_max_failures,
                window_seconds=settings.portal_failure_window_seconds,
                lockout_seconds=settings.portal_lockout_seconds,
                lockout_max_seconds=settings.portal_lockout_max_seconds,
                memory_seconds=settings.portal_lockout_memory_seconds,
            ),
            cache_seconds=settings.portal_cache_seconds,
            pg_pool_size=settings.portal_pg_pool_size,
            redis_url=settings.redis_url,
            redis_prefix=settings.portal_redis_prefix,
            max_body_bytes=settings.max_body_bytes,
            code_hash_key=_derived_keys(settings, b"guest-code-hash")[0],
            orig_keys=_derived_keys(settings, b"guest-orig"),
        )


def parse_proxies(value: str | list[str] | tuple[str, ...] | None) -> tuple[networks.Network, ...]:
    """The trusted proxy networks of a comma-separated string or a list; ValueError names a bad one."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    found: list[networks.Network] = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        try:
            found.append(networks.parse(networks.normalize(text)))
        except ValueError as exc:
            raise ValueError(
                f"GUESTGATE_PORTAL_TRUSTED_PROXIES: '{text}' is not an IP address or CIDR"
            ) from exc
    return tuple(found)


def _derived_keys(settings: Settings, purpose: bytes) -> tuple[bytes, ...]:
    """Keys for one purpose, derived from the signing key and the previous one (nothing to store)."""
    configured = [settings.signing_key, settings.signing_key_previous]
    secrets = [key.get_secret_value().encode() for key in configured if key is not None] or [b""]
    return tuple(hmac.new(secret, purpose, hashlib.sha256).digest() for secret in secrets)
