"""Where a guest was going, and who vouches for it: the Continue link of the success page.

The entry page's `orig` is the URL the guest asked for before the gateway intercepted it. Taken
from the query string alone it is anyone's to choose: a link to the portal with `orig` set to a
look-alike site would make the portal's own success page send the guest there. So the page links
to `orig` only when it is vouched for:

- by the gateway, whose entry signature (`sig`, see `entry_signing`) covers `orig`; or
- by guestgate's own captive redirect (`gateways.captive`), which adds `ots` (unix seconds) and
  `osig`, the hex HMAC-SHA256 of the lines `orig`, the guest's address and the URL, `ots`,
  under a key derived from the signing key. It is bound to the address the intercepted request
  came from, so a link someone else obtained this way is worth nothing on the guest's device,
  and it expires with the gateway entries (`GUESTGATE_PORTAL_ENTRY_MAX_AGE_SECONDS`).

Any other http(s) `orig` is shown as plain text, never as a link; anything else is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

# Gateway and server clocks may differ a little.
CLOCK_SKEW_SECONDS = 60
MAX_SIGNATURE_CHARS = 128


def sign(key: bytes, *, orig: str, client: str, ts: int | str) -> str:
    """The hex signature of an original URL as the captive redirect saw it from `client`."""
    message = "\n".join(["orig", client, orig, str(ts)]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def redirect_params(key: bytes, *, orig: str, client: str, now: float) -> dict[str, str]:
    """The entry URL's query parameters for an intercepted request: `orig`, `ots`, `osig`."""
    ts = int(now)
    return {"orig": orig, "ots": str(ts), "osig": sign(key, orig=orig, client=client, ts=ts)}


def vouched(
    keys: Sequence[bytes],
    *,
    orig: str,
    client: str | None,
    ts: str | None,
    signature: str | None,
    now: float,
    max_age: float,
) -> bool:
    """True if the captive redirect signed `orig` for `client` no longer than `max_age` ago."""
    if not client or not ts or not signature or len(signature) > MAX_SIGNATURE_CHARS:
        return False
    if not (ts.isascii() and ts.isdigit()) or len(ts) > 12:
        return False
    age = now - int(ts)
    if age > max_age or age < -CLOCK_SKEW_SECONDS:
        return False
    given = signature.strip().lower().encode()
    return any(
        hmac.compare_digest(sign(key, orig=orig, client=client, ts=ts).encode(), given) for key in keys
    )
