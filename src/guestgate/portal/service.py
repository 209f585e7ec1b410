"""The guest flow (contract §6.4): entry, coupon sign-in, status, RFC 8908 and preview.

Framework-free: the routes turn HTTP into these calls and the results into pages. Blocking
store calls run inline for SQLite (microseconds, one connection) and in a worker thread for
PostgreSQL (network round trips must not stall the event loop).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlencode

import anyio.to_thread
import structlog

from guestgate import networks
from guestgate.coupons import codes
from guestgate.errors import PermissionDenied
from guestgate.ops.metrics import SigninCounter
from guestgate.portal import clients, continue_links, resolution
from guestgate.portal.config import PortalConfig
from guestgate.portal.entry_signing import entry_signature_valid
from guestgate.portal.gateway import GatewayNotifier
from guestgate.portal.store import (
    AsyncGuestStore,
    AuditRecord,
    Grant,
    GuestSession,
    InstanceInfo,
    Outcome,
    Redemption,
    SiteNetworks,
)
from guestgate.portal.throttle import SCOPE_SITE, Lockout, Throttle
from guestgate.portal.tokens import GuestIdentity, StatusRef, TokenExpired, TokenInvalid, TokenSealer
from guestgate.security import UrlSigner

log = structlog.get_logger(__name__)
T = TypeVar("T")

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Longer input is not a mistyped code; it is refused without a look-up.
MAX_CODE_INPUT = 64
# Gateway clocks may run a little ahead of ours.
ENTRY_CLOCK_SKEW_SECONDS = 60
_CACHE_MAX_ENTRIES = 10_000
# The cache entry of every org's instance subnets (site ids are UUIDs: no site has this key).
_CLAIMS_KEY = "*claims*"
_CODE_SEPARATORS = re.compile(r"[\s\-]+")


class PortalError(Exception):
    """A request the portal cannot serve: the status, the message key, and where to start again."""

    def __init__(self, status: int, key: str, *, site_id: str | None = None) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.site_id = site_id


class SignInOutcome(StrEnum):
    """Every way a sign-in form can end."""

    SUCCESS = "success"
    ALREADY_ACTIVE = "already_active"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    IN_USE = "in_use"
    MISSING_CODE = "missing_code"
    MALFORMED = "malformed"
    TERMS_REQUIRED = "terms_required"
    LOCKED = "locked"


def signin_outcome(outcome: Outcome) -> SignInOutcome:
    """How a form ends when the store has answered: each of the store's outcomes, named."""
    match outcome:
        case Outcome.SUCCESS:
            return SignInOutcome.SUCCESS
        case Outcome.ALREADY_ACTIVE:
            return SignInOutcome.ALREADY_ACTIVE
        case Outcome.UNKNOWN:
            return SignInOutcome.UNKNOWN
        case Outcome.EXPIRED:
            return SignInOutcome.EXPIRED
        case Outcome.USED:
            return SignInOutcome.USED
        case Outcome.IN_USE:
            return SignInOutcome.IN_USE


# A form refused before any code was looked at (bad or expired token, wrong address, no portal).
REJECTED = "rejected"
_COUPON_SIGNINS = SigninCounter("coupon", (*(o.value for o in SignInOutcome), REJECTED))


@dataclass(frozen=True)
class Entry:
    """An identified guest: its token for the form, or its session if already signed in."""

    identity: GuestIdentity
    instance: InstanceInfo
    token: str
    session: GuestSession | None = None
    status_token: str | None = None
    # The guest is locked out: the page says until when instead of offering a form it cannot use.
    lockout: Lockout | None = None
    now: float = 0.0


@dataclass(frozen=True)
class SignInResult:
    """How a sign-in ended, with what the next page shows."""

    outcome: SignInOutcome
    identity: GuestIdentity
    instance: InstanceInfo
    token: str
    code: str = ""
    session: GuestSession | None = None
    status_token: str | None = None
    lockout: Lockout | None = None
    now: float = 0.0
    # The session stands but its gateway has not let the guest through yet.
    activating: bool = False
    # A refused code's limit, for the words: its devices (IN_USE) or its sign-ins (USED).
    allowed: int | None = None


@dataclass(frozen=True)
class Granted:
    """A session started (or found active) for a guest signed in without a coupon."""

    outcome: SignInOutcome
    session: GuestSession
    status_token: str
    # The session stands but its gateway has not let the guest through yet.
    activating: bool = False


@dataclass(frozen=True)
class StatusView:
    """What the status page shows: the session (or none) and where to sign in."""

    site_id: str
    instance: InstanceInfo | None
    session: GuestSession | None
    status_token: str | None = None
    # The session a valid status link names, even when it has ended (to say why it did).
    session_id: str | None = None


class _Cache:
    """A small time-limited cache of look-ups (site subnets, instance pages)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> tuple[bool, Any]:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return False, None
        return True, item[1]

    def put(self, key: str, value: Any) -> None:
        if self._seconds <= 0:
            return
        if len(self._items) >= _CACHE_MAX_ENTRIES:
            self._items.clear()
        self._items[key] = (time.monotonic() + self._seconds, value)


class Portal:
    """The guest portal's use cases, wired to a store, keys, a throttle and a gateway."""

    def __init__(
        self,
        *,
        config: PortalConfig,
        store: AsyncGuestStore,
        sealer: TokenSealer,
        signer: UrlSigner,
        entry_keys: Callable[[str], list[bytes]],
        throttle: Throttle,
        notifier: GatewayNotifier,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.store = store
        self.sealer = sealer
        self.signer = signer
        self.entry_keys = entry_keys
        self.throttle = throttle
        self.notifier = notifier
        self.clock = clock
        self._sites = _Cache(config.cache_seconds)
        self._instances = _Cache(config.cache_seconds)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """One of the store's blocking calls, made the store's way from the event loop."""
        return await self.store.call(fn, *args)

    async def site(self, site_id: str) -> SiteNetworks | None:
        """The site's networks (cached briefly)."""
        hit, value = self._sites.get(site_id)
        if not hit:
            value = await self._db(self.store.site_networks, site_id)
            self._sites.put(site_id, value)
        site: SiteNetworks | None = value
        return site

    async def instance(self, instance_id: str, *, fresh: bool = False) -> InstanceInfo | None:
        """The instance's page data (cached briefly unless `fresh`)."""
        hit, value = (False, None) if fresh else self._instances.get(instance_id)
        if not hit:
            value = await self._db(self.store.instance, instance_id)
            self._instances.put(instance_id, value)
        instance: InstanceInfo | None = value
        return instance

    async def enter(self, params: Mapping[str, str], *, peer: str | None) -> Entry:
        """Identify a guest arriving at the portal and seal its identity into a token."""
        now = self.clock()
        raw_site = (params.get("site") or "").strip()
        gateway_params = any(params.get(name) for name in ("ip", "mac", "sig", "ts"))
        if not raw_site:
            # A link without a site (a printed card's QR code) works where the address alone
            # names one site.
            if gateway_params or peer is None:
                raise PortalError(400, "err_site_missing")
            try:
                raw_site = await self._site_of(peer, instance_id=scope_hint(params))
            except PortalError as exc:
                raise PortalError(400, "err_site_missing") from exc
        site = await self._known_site(raw_site)
        site_id = site.site_id
        ip: str | None
        mac: str | None = None
        if gateway_params:
            ip, mac = self._gateway_identity(raw_site, params, now)
        else:
            ip = peer
        if ip is None:
            raise PortalError(403, "err_outside", site_id=site_id)
        instance_id = locate(site, ip)
        instance = await self.instance(instance_id)
        if instance is None:
            raise PortalError(404, "err_no_portal", site_id=site_id)
        orig = clients.safe_orig(params.get("orig"))
        identity = GuestIdentity(
            site_id=site_id,
            instance_id=instance_id,
            ip=ip,
            mac=mac,
            orig=orig,
            peer=peer or "",
            orig_vouched=orig is not None and (gateway_params or self._orig_vouched(params, peer, now)),
        )
        session = await self._db(self.store.active_session, site_id, ip, mac, now)
        if session is not None:
            return Entry(identity, instance, "", session, self._status_token(session))
        stamp = now.timestamp()
        if instance.strategy == "coupon":
            lockout = await self.throttle.check(site_id, ip, mac, stamp)
            if lockout is not None:
                return Entry(identity, instance, "", lockout=lockout, now=stamp)
        token = self.sealer.seal_guest(identity, expires=int(stamp) + self.config.token_ttl_seconds)
        return Entry(identity, instance, token)

    def _orig_vouched(self, params: Mapping[str, str], peer: str | None, now: datetime) -> bool:
        """True if guestgate's captive redirect signed this `orig` for this guest, recently."""
        return continue_links.vouched(
            self.config.orig_keys,
            orig=params.get("orig") or "",
            client=peer,
            ts=params.get("ots"),
            signature=params.get("osig"),
            now=now.timestamp(),
            max_age=self.config.entry_max_age_seconds,
        )

    def _gateway_identity(
        self, site_id: str, params: Mapping[str, str], now: datetime
    ) -> tuple[str, str | None]:
        raw_ip, raw_mac = params.get("ip") or "", params.get("mac") or None
        signature, ts = params.get("sig") or "", params.get("ts") or ""
        if not signature:
            raise PortalError(403, "err_signature", site_id=site_id)
        valid = entry_signature_valid(
            self.entry_keys(site_id),
            signature,
            site_id=site_id,
            ip=raw_ip,
            mac=raw_mac,
            orig=params.get("orig") or None,
            ts=ts,
        )
        if not valid:
            raise PortalError(403, "err_signature", site_id=site_id)
        if not (ts.isascii() and ts.isdigit()) or len(ts) > 12:
            raise PortalError(400, "err_params", site_id=site_id)
        age = now.timestamp() - int(ts)
        if age > self.config.entry_max_age_seconds or age < -ENTRY_CLOCK_SKEW_SECONDS:
            raise PortalError(403, "err_link_expired", site_id=site_id)
        ip = clients.parse_ip(raw_ip)
        mac = clients.parse_mac(raw_mac) if raw_mac else None
        if ip is None or (raw_mac and mac is None):
            raise PortalError(400, "err_params", site_id=site_id)
        return ip, mac

    async def _known_site(self, site_id: str) -> SiteNetworks:
        if not _UUID.fullmatch(site_id):
            raise PortalError(404, "err_site_unknown")
        site = await self.site(site_id.lower())
        if site is None:
            raise PortalError(404, "err_site_unknown")
        return site

    async def sign_in(self, form: Mapping[str, str], *, peer: str | None) -> SignInResult:
        """Redeem a coupon code from the sign-in form: a session, or why not (counted by result)."""
        try:
            result = await self._sign_in(form, peer=peer)
        except PortalError:
            _COUPON_SIGNINS.count(REJECTED)
            raise
        _COUPON_SIGNINS.count(result.outcome.value)
        return result

    async def _sign_in(self, form: Mapping[str, str], *, peer: str | None) -> SignInResult:
        now = self.clock()
        stamp = now.timestamp()
        token = form.get("t") or ""
        if not token:
            raise PortalError(400, "err_token_missing")
        try:
            identity = self.sealer.open_guest(token, now=stamp)
        except TokenExpired as exc:
            site = exc.claims.get("s")
            raise PortalError(
                403, "err_token_expired", site_id=site if isinstance(site, str) else None
            ) from exc
        except TokenInvalid as exc:
            raise PortalError(403, "err_token_invalid") from exc
        if identity.peer != (peer or ""):
            # A token copied to another machine is worth nothing there.
            raise PortalError(403, "err_token_invalid", site_id=identity.site_id)
        instance = await self.instance(identity.instance_id)
        if instance is None:
            raise PortalError(404, "err_no_portal", site_id=identity.site_id)
        raw_code = form.get("code") or ""
        echo = raw_code[:16] if len(raw_code) <= MAX_CODE_INPUT else ""

        def result(outcome: SignInOutcome, **extra: Any) -> SignInResult:
            return SignInResult(outcome, identity, instance, token, code=echo, now=stamp, **extra)

        lockout = await self.throttle.check(identity.site_id, identity.ip, identity.mac, stamp)
        if lockout is not None:
            return result(SignInOutcome.LOCKED, lockout=lockout)
        if instance.strategy != "coupon":
            raise PortalError(400, "err_params", site_id=identity.site_id)
        if instance.terms_text and form.get("accept") not in ("yes", "on", "1", "true"):
            return result(SignInOutcome.TERMS_REQUIRED)
        if not raw_code.strip():
            return result(SignInOutcome.MISSING_CODE)
        code = normalize_code(raw_code)
        if code is None:
            return result(SignInOutcome.MALFORMED)
        attempt = Redemption(
            identity.site_id,
            identity.instance_id,
            code,
            identity.ip,
            identity.mac,
            self.config.code_hash(code),
        )
        redeemed = await self.store.redeem_async(attempt, now)
        if redeemed.outcome in (Outcome.SUCCESS, Outcome.ALREADY_ACTIVE):
            session = redeemed.session
            assert session is not None
            if redeemed.outcome is Outcome.SUCCESS:
                activating = not await self._allow(session)
            else:
                activating = await self.activating(session)
            return result(
                signin_outcome(redeemed.outcome),
                session=session,
                status_token=self._status_token(session),
                activating=activating,
            )
        lockouts = await self.throttle.failed(identity.site_id, identity.ip, identity.mac, stamp)
        if lockouts:
            await self._db(
                self.store.audit, [lockout_record(identity, x, redeemed.org_id, stamp) for x in lockouts], now
            )
        # A site put under attack refuses nobody: only the guest's own (or its /64's) lock-out does.
        refusing = [x for x in lockouts if x.scope != SCOPE_SITE]
        if refusing:
            return result(SignInOutcome.LOCKED, lockout=max(refusing, key=lambda x: x.until))
        return result(signin_outcome(redeemed.outcome), allowed=redeemed.allowed)

    async def record_failure(self, identity: GuestIdentity, *, strategy: str, reason: str) -> None:
        """Audit a sign-in that failed outside the coupon store (an OAuth2 callback refused).

        Best effort: the guest is shown the failure whether or not the event could be written.
        """
        try:
            instance = await self.instance(identity.instance_id)
            record = AuditRecord(
                action="guest.signin_failed",
                org_id=instance.org_id if instance else None,
                actor=f"guest:{identity.ip}",
                ip=identity.ip,
                target_type="instance",
                target_id=identity.instance_id,
                detail={
                    "reason": reason,
                    "strategy": strategy,
                    "site_id": identity.site_id,
                    "mac_address": identity.mac,
                },
            )
            await self._db(self.store.audit, [record], self.clock())
        except Exception as exc:
            log.warning("portal.audit_failed", error=type(exc).__name__, site_id=identity.site_id)

    def identify(self, token: str, *, peer: str | None) -> GuestIdentity:
        """The guest a sign-in token names, if the token is genuine, unexpired and used from its address."""
        if not token:
            raise PortalError(400, "err_token_missing")
        try:
            identity = self.sealer.open_guest(token, now=self.clock().timestamp())
        except TokenExpired as exc:
            site = exc.claims.get("s")
            raise PortalError(
                403, "err_token_expired", site_id=site if isinstance(site, str) else None
            ) from exc
        except TokenInvalid as exc:
            raise PortalError(403, "err_token_invalid") from exc
        if identity.peer != (peer or ""):
            raise PortalError(403, "err_token_invalid", site_id=identity.site_id)
        return identity

    async def grant(self, identity: GuestIdentity, *, strategy: str, details: dict[str, Any]) -> Granted:
        """Start the session of a guest an identity provider vouched for, and tell the gateway."""
        now = self.clock()
        grant = Grant(identity.site_id, identity.instance_id, identity.ip, identity.mac, strategy, details)
        done = await self._db(self.store.grant, grant, now)
        if done.session is None:
            raise PortalError(404, "err_no_portal", site_id=identity.site_id)
        if done.outcome is Outcome.SUCCESS:
            activating = not await self._allow(done.session)
        else:
            activating = await self.activating(done.session)
        return Granted(
            signin_outcome(done.outcome), done.session, self._status_token(done.session), activating
        )

    async def open_auth_window(self, identity: GuestIdentity, seconds: int) -> None:
        """Let the guest reach the identity provider (the site's captive-auth walled garden) for a while."""
        try:
            await self.notifier.open_auth_window(identity.site_id, identity.ip, seconds)
        except Exception as exc:
            # The provider may still be reachable (a captive-portal entry, or no enforcement yet).
            log.warning("portal.auth_window_failed", site_id=identity.site_id, ip=identity.ip, error=str(exc))

    async def _allow(self, session: GuestSession) -> bool:
        """Tell the gateway; False when it has not let the guest through (yet)."""
        try:
            applied = await self.notifier.allow(session)
        except Exception as exc:
            # The session is committed; the gateway reconciler catches up with it.
            log.warning("portal.gateway_allow_failed", session_id=session.id, error=str(exc))
            return False
        return applied is not False

    async def activating(self, session: GuestSession) -> bool:
        """True while the session's gateway has not let the guest through yet."""
        try:
            return await self.notifier.pending(session)
        except Exception as exc:
            # Not knowing is not a reason to keep a guest on a waiting page.
            log.warning("portal.gateway_pending_failed", session_id=session.id, error=str(exc))
            return False

    def _status_token(self, session: GuestSession) -> str:
        ref = StatusRef(session_id=session.id, site_id=session.site_id)
        return self.sealer.seal_status(ref, expires=int(session.expires_at.timestamp()))

    async def status(self, params: Mapping[str, str], *, peer: str | None) -> StatusView:
        """The guest's session, found by a status link or by its address at a site."""
        now = self.clock()
        token = params.get("t") or ""
        if token:
            try:
                ref = self.sealer.open_status(token, now=now.timestamp())
            except TokenExpired as exc:
                site = exc.claims.get("s")
                if not isinstance(site, str):
                    raise PortalError(403, "err_token_invalid") from exc
                return StatusView(site, None, None)
            except TokenInvalid as exc:
                raise PortalError(403, "err_token_invalid") from exc
            session = await self._db(self.store.session, ref.session_id, now)
            instance = await self.instance(session.instance_id) if session else None
            return StatusView(ref.site_id, instance, session, token if session else None, ref.session_id)
        site_id = (params.get("site") or "").strip()
        if not site_id:
            raise PortalError(400, "err_site_missing")
        site = await self._known_site(site_id)
        if peer is None:
            raise PortalError(403, "err_outside", site_id=site.site_id)
        instance = await self.instance(locate(site, peer))
        session = await self._db(self.store.active_session, site.site_id, peer, None, now)
        link = self._status_token(session) if session else None
        return StatusView(site.site_id, instance, session, link, session.id if session else None)

    async def capport(
        self, site_id: str | None, *, peer: str | None, instance_id: str | None = None
    ) -> dict[str, Any]:
        """The RFC 8908 API state of the calling guest (`instance_id`: a scope hint without a site)."""
        now = self.clock()
        if peer is None:
            raise PortalError(404, "err_outside")
        if site_id:
            site = await self._known_site(site_id)
            locate(site, peer)
            found = site.site_id
        else:
            found = await self._site_of(peer, instance_id=instance_id)
        session = await self._db(self.store.active_session, found, peer, None, now)
        remaining = max(0, int(session.expires_at.timestamp() - now.timestamp())) if session else 0
        base = self.config.public_url
        return {
            "captive": session is None or remaining == 0,
            "user-portal-url": f"{base}/guest/entry?{urlencode({'site': found})}",
            "venue-info-url": f"{base}/guest/status?{urlencode({'site': found})}",
            "seconds-remaining": remaining,
            "can-extend-session": False,
        }

    async def _site_of(self, ip: str, *, instance_id: str | None = None) -> str:
        """The site of an address for a request that names none (`portal.resolution`)."""
        hit, index = self._sites.get(_CLAIMS_KEY)
        if not hit:
            rows = await self._db(self.store.subnet_claims)
            # Parsing every claim is CPU work in proportion to the deployment: not on the loop.
            index = await anyio.to_thread.run_sync(resolution.ClaimIndex.of_rows, rows)
            self._sites.put(_CLAIMS_KEY, index)
        site_id = resolution.site_of(index, ip, instance_id=instance_id)
        if site_id is None:
            # No site, or several of the owning org's sites with the same range: the URL must name one.
            raise PortalError(404, "err_outside")
        return site_id

    async def preview(self, instance_id: str, params: Mapping[str, str]) -> InstanceInfo:
        """The instance whose preview URL this is (fresh from the database)."""
        expires = params.get("expires") or ""
        signature = params.get("signature") or ""
        if (
            not (expires.isascii() and expires.isdigit())
            or len(expires) > 12
            or not signature
            or len(signature) > 128
        ):
            raise PortalError(403, "err_preview")
        try:
            self.signer.verify_expiring(
                signature, int(expires), "preview", instance_id, now=self.clock().timestamp()
            )
        except PermissionDenied as exc:
            raise PortalError(403, "err_preview") from exc
        instance = await self.instance(instance_id, fresh=True) if _UUID.fullmatch(instance_id) else None
        if instance is None:
            raise PortalError(404, "err_not_found")
        return instance


def scope_hint(params: Mapping[str, str]) -> str | None:
    """The instance a site-less link names (`instance=`, printed cards), if it is an instance id."""
    value = (params.get("instance") or "").strip()
    return value.lower() if _UUID.fullmatch(value) else None


def locate(site: SiteNetworks, ip: str) -> str:
    """The instance serving `ip` at the site; PortalError if the address is not the site's."""
    address = networks.parse(ip)
    best: tuple[int, str] | None = None
    for network, instance_id in site.instance_subnets:
        if networks.within(address, network) and (best is None or network.prefixlen > best[0]):
            best = (network.prefixlen, instance_id)
    if best is not None:
        return best[1]
    if networks.within_any(address, site.subnets):
        raise PortalError(404, "err_no_portal", site_id=site.site_id)
    raise PortalError(403, "err_outside", site_id=site.site_id)


def normalize_code(raw: str) -> str | None:
    """A guest's typed code as stored, or None if it cannot be a code (spaces and dashes ignored)."""
    if len(raw) > MAX_CODE_INPUT:
        return None
    return codes.normalize(_CODE_SEPARATORS.sub("", raw))


def lockout_record(identity: GuestIdentity, lockout: Lockout, org_id: str | None, now: float) -> AuditRecord:
    """The audit event of a lock-out starting (`guest.site_under_attack` for the site's)."""
    return AuditRecord(
        action="guest.site_under_attack" if lockout.scope == SCOPE_SITE else "guest.lockout",
        org_id=org_id,
        actor=f"guest:{identity.ip}",
        ip=identity.ip,
        target_type="site",
        target_id=identity.site_id,
        detail={
            "scope": lockout.scope,
            "key": lockout.key,
            "level": lockout.level,
            "seconds": round(lockout.until - now),
            "mac_address": identity.mac,
            "instance_id": identity.instance_id,
        },
    )
