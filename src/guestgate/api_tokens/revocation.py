"""The in-process answer to "is this token id still accepted?", so checking costs a dict lookup.

Each process remembers, per `jti`, what the database said:

- accepted (the row exists, is the token's org's and is not revoked): remembered for
  `ttl_seconds` (GUESTGATE_API_TOKEN_REVOCATION_SECONDS), then asked again. This is the bound
  within which a revocation made by another process (another replica, the CLI) takes effect.
- refused (revoked, unknown, another org's): remembered until evicted; a revocation is final,
  and an unknown id cannot become known (a token's row is committed before the token exists).

A revocation made by this process (`forget`) takes effect here at once. The memory is bounded
(`max_entries`, oldest answer first out): an evicted id is asked again, nothing else.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from guestgate.api_tokens import service

MAX_ENTRIES = 100_000


class RevocationCache:
    """Implements `guestgate.security.Revocations` over the `api_tokens` table."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        ttl_seconds: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        # jti -> (org of the row or None, accepted, when the database said so)
        self._entries: OrderedDict[str, tuple[str | None, bool, float]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, jti: str, org_id: str) -> bool | None:
        """True or False if the answer is fresh enough, None if the database must be asked."""
        entry = self._entries.get(jti)
        if entry is None:
            return None
        row_org, accepted, at = entry
        if not accepted:
            return False
        if self._clock() - at >= self._ttl:
            return None
        return row_org == org_id

    def load(self, jti: str, org_id: str) -> bool:
        """Ask the database whether `jti` is accepted for `org_id`, and remember the answer."""
        with self._sessions() as session:
            row_org = service.accepted_org(jti, session=session)
        self._remember(jti, row_org, accepted=row_org is not None)
        return row_org is not None and row_org == org_id

    def forget(self, jti: str) -> None:
        """`jti` was revoked by this process: refuse it from now on."""
        self._remember(jti, None, accepted=False)

    def __len__(self) -> int:
        return len(self._entries)

    def _remember(self, jti: str, row_org: str | None, *, accepted: bool) -> None:
        with self._lock:
            self._entries.pop(jti, None)
            self._entries[jti] = (row_org, accepted, self._clock())
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
