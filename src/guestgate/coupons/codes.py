"""Coupon codes (§6.1): six characters a guest can read off paper and type without doubt.

The alphabet leaves out the look-alikes 0/O and 1/I/L, which leaves 31 symbols: about
30 bits per code, so guessing is kept hopeless by throttling at sign-in, not by length.
"""

from __future__ import annotations

import secrets
import string

LENGTH = 6
ALPHABET = "".join(c for c in string.digits + string.ascii_uppercase if c not in "01OIL")
_ALPHABET_SET = frozenset(ALPHABET)


def generate() -> str:
    """A new random code drawn from the CSPRNG."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize(code: str) -> str | None:
    """A guest's input as a stored code (trimmed, upper case), or None if it cannot be one."""
    # Checked before upper-casing: Unicode case mapping can turn non-ASCII into ASCII
    # ('ß' -> 'SS', 'ﬀ' -> 'FF') and must not yield a valid-looking code.
    candidate = code.strip()
    if not candidate.isascii():
        return None
    candidate = candidate.upper()
    if len(candidate) != LENGTH or not _ALPHABET_SET.issuperset(candidate):
        return None
    return candidate
