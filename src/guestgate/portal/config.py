"""The portal's limits and knobs, taken from the `GUESTGATE_PORTAL_*` settings."""

from __future__ import annotations

from dataclasses import dataclass

from guestgate import networks
from guestgate.config import Settings


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
