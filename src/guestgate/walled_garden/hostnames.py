"""Host names of walled-garden entries: what a valid one is, and its one stored spelling.

An entry's `hostname` is an exact DNS name (`accounts.google.com`) or a wildcard covering every
name below a domain (`*.example.com`: `a.example.com`, `a.b.example.com`, and not
`example.com` itself, as in TLS certificates). The stored spelling is the IDNA (UTS #46)
A-label form in lowercase without a trailing dot, so `Bücher.Example` and `xn--bcher-kva.example`
are the same entry.

Refused, with the reason: IP addresses (they go in `ip_address`), `localhost` and its subdomains,
names of one label (`intranet`: never a public name), a `*` anywhere but as the whole first
label, a wildcard of a top-level domain alone (`*.com`), labels outside letters, digits and
inner hyphens, labels over 63 and names over 253 octets.
"""

from __future__ import annotations

import ipaddress
import re

import idna

WILDCARD_PREFIX = "*."
MAX_NAME_OCTETS = 253
# Letters, digits and inner hyphens: what a host name label is after IDNA encoding.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_ALL_DIGITS = re.compile(r"[0-9]+")


class HostnameInvalid(ValueError):
    """The text is not a usable walled-garden host name; the message completes `The 'hostname' parameter ...`."""


def normalize(text: str) -> str:
    """The stored spelling of a host name or `*.` wildcard; HostnameInvalid says what is wrong."""
    value = text.strip(" ")
    if not value:
        raise HostnameInvalid("must not be empty")
    if any(ch.isspace() for ch in value):
        raise HostnameInvalid("must not contain white space")
    wildcard = value.startswith(WILDCARD_PREFIX)
    name = value[len(WILDCARD_PREFIX) :] if wildcard else value
    if "*" in name:
        raise HostnameInvalid("may contain '*' only as its whole first label ('*.example.com')")
    name = name.removesuffix(".")
    if _is_ip_literal(name):
        raise HostnameInvalid("must be a DNS name, not an IP address (an address goes in 'ip_address')")
    try:
        # UTS #46 mapping first (case, full-width forms, ideographic full stops), then label by label,
        # so the length rules below are ours and name what is wrong.
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
        labels = [idna.encode(label).decode("ascii").lower() if label else "" for label in mapped.split(".")]
    except (idna.IDNAError, UnicodeError) as exc:
        raise HostnameInvalid("must be a valid DNS host name (IDNA)") from exc
    encoded = ".".join(labels)
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise HostnameInvalid(
            "must be a DNS host name of labels of letters, digits and inner hyphens, each at most 63 long"
        )
    full = WILDCARD_PREFIX + encoded if wildcard else encoded
    if len(full) > MAX_NAME_OCTETS:
        raise HostnameInvalid(f"must be at most {MAX_NAME_OCTETS} characters long (after IDNA encoding)")
    if len(labels) < 2:
        what = "a wildcard must cover a domain below a top-level domain" if wildcard else "a name of one label"
        raise HostnameInvalid(f"must be a fully qualified name ({what} is not)")
    if _ALL_DIGITS.fullmatch(labels[-1]):
        raise HostnameInvalid("must end in a top-level domain, not a number")
    if labels[-1] == "localhost":
        raise HostnameInvalid("must not name this host (localhost)")
    return full


def is_wildcard(name: str) -> bool:
    """Whether a stored host name is a `*.` wildcard."""
    return name.startswith(WILDCARD_PREFIX)


def domain_of(name: str) -> str:
    """The domain a stored name covers: the name itself, or what follows `*.` of a wildcard."""
    return name[len(WILDCARD_PREFIX) :] if is_wildcard(name) else name


def _is_ip_literal(text: str) -> bool:
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ipaddress.ip_network(candidate, strict=False)
    except ValueError:
        # `10.1`, `10.0.0.300`: digits and dots are never a host name either.
        return bool(re.fullmatch(r"[0-9./]+", candidate))
    return True
