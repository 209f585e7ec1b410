"""What the guest's status page shows of its plan: data left and speed, and the end over quota.

The figures come from the session's row (`guestgate.site_users.usage`), which the reconciler
keeps up to date from the gateway's counters every few seconds; the look-ups run in a worker
thread, off the event loop, and only on the status page (never on the sign-in's path).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from guestgate.portal.i18n import Translator
from guestgate.runtime import Runtime
from guestgate.site_users import usage
from guestgate.site_users.usage import SessionUsage

# Locales that write a decimal comma.
_DECIMAL_COMMA = frozenset({"de", "es", "fr", "pt"})


class UsageLookup:
    """The status page's reads of a session's limits and usage."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def of(self, session_id: str) -> SessionUsage | None:
        """The session's state, limits and usage."""
        return await asyncio.to_thread(self._of, session_id)

    async def ended_over_quota(self, site_id: str, ip: str, *, now: datetime) -> bool:
        """Whether the guest at `ip` was dropped for its data limit from a session that would still run."""
        return await asyncio.to_thread(self._ended, site_id, ip, now)

    def _of(self, session_id: str) -> SessionUsage | None:
        with self.runtime.sessions() as session:
            return usage.session_usage(session_id, session=session)

    def _ended(self, site_id: str, ip: str, now: datetime) -> bool:
        with self.runtime.sessions() as session:
            return usage.ended_over_quota(site_id, ip, now=now, session=session)


def data_left_text(found: SessionUsage | None, t: Translator) -> str | None:
    """`1.2 GB`, `350 MB`: what is left of the data limit (None: no data limit)."""
    left = found.data_left if found is not None else None
    if left is None:
        return None
    if left >= 1_000_000_000:
        text = f"{left / 1_000_000_000:.1f} GB"
    elif left >= 10_000_000:
        text = f"{left / 1_000_000:.0f} MB"
    elif left >= 1_000_000:
        text = f"{left / 1_000_000:.1f} MB"
    else:
        text = f"{left // 1000} kB"
    return text.replace(".", ",") if t.locale in _DECIMAL_COMMA else text


def speed_text(found: SessionUsage | None, t: Translator) -> str | None:
    """`↓ 10 Mbit/s · ↑ 2 Mbit/s`: the session's speed limits (None: neither is limited)."""
    if found is None or (found.download_kbps is None and found.upload_kbps is None):
        return None
    return t("speed_value", down=_rate(found.download_kbps, t), up=_rate(found.upload_kbps, t))


def _rate(kbps: int | None, t: Translator) -> str:
    if kbps is None:
        return t("speed_unlimited")
    text = f"{kbps / 1000:g} Mbit/s" if kbps >= 1000 else f"{kbps} kbit/s"
    return text.replace(".", ",") if t.locale in _DECIMAL_COMMA else text
