"""Sealed guest tokens: who a guest is, encrypted and authenticated (AES-256-GCM).

The key is derived with HKDF from the encryption key, so the token key never equals the key
that protects secrets at rest. A token made under the previous encryption key still opens
during a key rotation. The token's kind is bound as associated data: a status link cannot
be used as a sign-in token, nor the other way round.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from guestgate.config import Settings

VERSION = 1
NONCE_BYTES = 12
# Far above any real token (a few hundred characters); longer input is refused unread.
MAX_TOKEN_CHARS = 4096
KIND_SIGNIN = "signin"
KIND_STATUS = "status"
_HKDF_INFO = b"guestgate portal token v1"


class TokenInvalid(Exception):
    """The token is damaged, forged, of another kind, or was made with an unknown key."""


class TokenExpired(Exception):
    """The token is genuine but past its expiry; `claims` still tell where it came from."""

    def __init__(self, claims: dict[str, Any]) -> None:
        super().__init__("token expired")
        self.claims = claims


@dataclass(frozen=True)
class GuestIdentity:
    """A guest as the entry identified it: where, which instance, and which device."""

    site_id: str
    instance_id: str
    ip: str
    mac: str | None = None
    orig: str | None = None
    # The address the entry request came from; sign-in must come from the same one.
    peer: str = ""
    # The gateway or the captive redirect vouched for `orig`: the success page may link to it.
    orig_vouched: bool = False


@dataclass(frozen=True)
class StatusRef:
    """What a status link points at: one session of one site."""

    session_id: str
    site_id: str


def derive_key(encryption_key: str) -> bytes:
    """The 32-byte token key derived from a configured encryption key."""
    try:
        material = base64.urlsafe_b64decode(encryption_key.encode())
    except (ValueError, binascii.Error):
        material = encryption_key.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(material)


class TokenSealer:
    """Seals and opens portal tokens; seals with the first key, opens with any."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one token key is needed")
        self._ciphers = [AESGCM(key) for key in keys]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSealer:
        """A sealer with keys derived from the current (and previous) encryption key."""
        configured = [settings.encryption_key, settings.encryption_key_previous]
        keys = [derive_key(k.get_secret_value()) for k in configured if k is not None]
        return cls(keys)

    def seal(self, kind: str, claims: dict[str, Any], *, expires: int) -> str:
        """An opaque URL-safe token carrying `claims` until `expires` (unix seconds)."""
        # One read of the OS CSPRNG for the AES-GCM nonce and the claims' own random "n".
        drawn = os.urandom(NONCE_BYTES + 9)
        nonce = drawn[:NONCE_BYTES]
        n = base64.urlsafe_b64encode(drawn[NONCE_BYTES:]).rstrip(b"=").decode()
        payload = {**claims, "v": VERSION, "exp": int(expires), "n": n}
        data = json.dumps(payload, separators=(",", ":")).encode()
        sealed = self._ciphers[0].encrypt(nonce, data, kind.encode())
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()

    def open(self, token: str, kind: str, *, now: float) -> dict[str, Any]:
        """The claims of a genuine, unexpired token of `kind`; TokenInvalid or TokenExpired otherwise."""
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise TokenInvalid("malformed")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, binascii.Error) as exc:
            raise TokenInvalid("malformed") from exc
        if len(raw) <= NONCE_BYTES + 16:
            raise TokenInvalid("malformed")
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        for cipher in self._ciphers:
            try:
                data = cipher.decrypt(nonce, sealed, kind.encode())
                break
            except InvalidTag:
                continue
        else:
            raise TokenInvalid("not sealed by us")
        claims = json.loads(data)
        if (
            not isinstance(claims, dict)
            or claims.get("v") != VERSION
            or not isinstance(claims.get("exp"), int)
        ):
            raise TokenInvalid("unknown layout")
        if claims["exp"] <= now:
            raise TokenExpired(claims)
        return claims

    def seal_guest(self, identity: GuestIdentity, *, expires: int) -> str:
        """A sign-in token for `identity`."""
        claims = {
            "s": identity.site_id,
            "i": identity.instance_id,
            "ip": identity.ip,
            "m": identity.mac,
            "o": identity.orig,
            "ov": identity.orig_vouched,
            "p": identity.peer,
        }
        return self.seal(KIND_SIGNIN, claims, expires=expires)

    def open_guest(self, token: str, *, now: float) -> GuestIdentity:
        """The identity in a sign-in token."""
        return guest_of(self.open(token, KIND_SIGNIN, now=now))

    def seal_status(self, ref: StatusRef, *, expires: int) -> str:
        """A status link token for one session, valid until the session ends."""
        return self.seal(KIND_STATUS, {"sid": ref.session_id, "s": ref.site_id}, expires=expires)

    def open_status(self, token: str, *, now: float) -> StatusRef:
        """The session a status token points at."""
        claims = self.open(token, KIND_STATUS, now=now)
        sid, site = claims.get("sid"), claims.get("s")
        if not isinstance(sid, str) or not isinstance(site, str):
            raise TokenInvalid("unknown layout")
        return StatusRef(session_id=sid, site_id=site)


def guest_of(claims: dict[str, Any]) -> GuestIdentity:
    """The identity in a sign-in token's claims; TokenInvalid if they are not one."""
    site, instance, ip = claims.get("s"), claims.get("i"), claims.get("ip")
    mac, orig, peer = claims.get("m"), claims.get("o"), claims.get("p", "")
    if not (isinstance(site, str) and isinstance(instance, str) and isinstance(ip, str)):
        raise TokenInvalid("unknown layout")
    if not (mac is None or isinstance(mac, str)) or not (orig is None or isinstance(orig, str)):
        raise TokenInvalid("unknown layout")
    if not isinstance(peer, str):
        raise TokenInvalid("unknown layout")
    return GuestIdentity(
        site_id=site,
        instance_id=instance,
        ip=ip,
        mac=mac,
        orig=orig,
        peer=peer,
        orig_vouched=claims.get("ov") is True,
    )
