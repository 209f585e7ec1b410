"""OAuth2 sign-in of guests (contract §6.4 step 3) and the auth integrations' test runs.

Start: the guest's sealed entry token and accepted terms -> the guest's address may reach the
site's `captive-auth` walled garden for the instance's `auth_window_ttl` -> a new flow (state,
PKCE, nonce) sealed for the guest's browser -> the provider's URL. Callback (one fixed URL for
every instance): the browser's flow, its state spent once -> the provider's answer checked ->
a session with the identity, through the portal's own session path, and the gateway told.
A test run is the same flow without a guest: it ends by showing the identity, and writes
nothing and touches no gateway. Every failure is a `PortalError` (a page), and none writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import anyio.to_thread
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guestgate.auth_integrations import service as integration_service
from guestgate.auth_integrations.models import AuthIntegration
from guestgate.config import Settings
from guestgate.errors import PermissionDenied
from guestgate.instances.models import Instance
from guestgate.ops.metrics import SigninCounter
from guestgate.portal import assistants, oauth_state
from guestgate.portal.oauth import GOOGLE, Attempt, Identity, IdentityProviders, Integration, SignInFailed
from guestgate.portal.oauth_state import Flow, LedgerUnavailable, SpentStates
from guestgate.portal.service import Granted, Portal, PortalError
from guestgate.portal.store import InstanceInfo
from guestgate.portal.tokens import GuestIdentity, TokenExpired, TokenInvalid
from guestgate.security import SecretBox

log = structlog.get_logger(__name__)
# A callback that ended on an error page: refused, replayed, expired or failed at the provider.
FAILED = "failed"
_OAUTH_SIGNINS = SigninCounter("oauth2", ("success", "already_active", FAILED))

CALLBACK_PATH = "/guest/oauth/callback"
STRATEGY = "oauth2"
ACCEPTED = ("yes", "on", "1", "true")
# Far above any real value; longer query values are refused unread.
MAX_PARAM_CHARS = 4096
# Status and page of each way a provider round trip can fail.
_FAILURES = {
    SignInFailed.UNREACHABLE: (502, "err_oauth_unreachable"),
    SignInFailed.EXCHANGE: (502, "err_oauth_failed"),
    SignInFailed.VERIFY: (502, "err_oauth_failed"),
    SignInFailed.USER: (502, "err_oauth_failed"),
}


@dataclass(frozen=True)
class OAuthConfig:
    """The OAuth2 settings of the portal."""

    public_url: str
    state_ttl_seconds: int = 600

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthConfig:
        """The configuration of `settings`."""
        return cls(public_url=settings.public_url, state_ttl_seconds=settings.oauth_state_ttl_seconds)

    @property
    def callback_url(self) -> str:
        """The one redirect URI operators register at their provider."""
        return f"{self.public_url}{CALLBACK_PATH}"

    @property
    def secure_cookies(self) -> bool:
        """Whether the flow cookie may only travel over HTTPS."""
        return self.public_url.startswith("https://")


class StartOutcome(StrEnum):
    """How a press of the sign-in button ends."""

    REDIRECT = "redirect"
    TERMS_REQUIRED = "terms_required"
    USE_BROWSER = "use_browser"


@dataclass(frozen=True)
class Started:
    """The answer to the button: the provider to go to (with the flow's cookie), or the form again."""

    outcome: StartOutcome
    guest: GuestIdentity
    instance: InstanceInfo
    token: str
    url: str = ""
    cookie: str = ""
    provider: str = ""


@dataclass(frozen=True)
class Tested:
    """A completed test run: who the provider says the operator is."""

    identity: Identity


@dataclass(frozen=True)
class SignedIn:
    """A completed guest sign-in: the identity and the session it opened (or found)."""

    identity: Identity
    guest: GuestIdentity
    instance: InstanceInfo
    granted: Granted


@dataclass(frozen=True)
class InstanceAuth:
    """The auth integration of an oauth2 instance and how long its auth window stays open."""

    integration: Integration
    window_seconds: int


class Integrations:
    """Reads auth integrations from the database, fresh (a replaced secret applies at once)."""

    def __init__(self, sessions: sessionmaker[Session], box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box

    async def for_instance(self, instance_id: str) -> InstanceAuth | None:
        """The instance's integration and auth window, or None if it has none (or it is unusable)."""
        return await anyio.to_thread.run_sync(self._for_instance, instance_id)

    async def by_id(self, integration_id: str) -> Integration | None:
        """The integration, or None if it does not exist (or its secret cannot be read)."""
        return await anyio.to_thread.run_sync(self._by_id, integration_id)

    def _for_instance(self, instance_id: str) -> InstanceAuth | None:
        with self._sessions() as session:
            row = session.execute(
                select(AuthIntegration, Instance.auth_window_ttl)
                .join(Instance, Instance.auth_integration_id == AuthIntegration.id)
                .where(Instance.id == instance_id, Instance.strategy == STRATEGY)
            ).first()
            if row is None:
                return None
            integration = self._plain(row[0])
            return None if integration is None else InstanceAuth(integration, int(row[1]))

    def _by_id(self, integration_id: str) -> Integration | None:
        with self._sessions() as session:
            row = session.get(AuthIntegration, integration_id)
            return None if row is None else self._plain(row)

    def _plain(self, row: AuthIntegration) -> Integration | None:
        try:
            secret = integration_service.client_secret(row, box=self._box)
        except RuntimeError as exc:
            log.error("portal.oauth_secret_unreadable", integration_id=row.id, error=str(exc))
            return None
        return Integration(
            id=row.id,
            org_id=row.org_id,
            type=row.type,
            client_id=row.client_id,
            client_secret=secret,
            tenant=row.tenant,
            issuer=row.issuer,
            sign_in_host=row.sign_in_host,
        )


class OAuthSignIn:
    """The OAuth2 use cases of the portal."""

    def __init__(
        self,
        *,
        portal: Portal,
        providers: IdentityProviders,
        integrations: Integrations,
        spent: SpentStates,
        config: OAuthConfig,
    ) -> None:
        self.portal = portal
        self.providers = providers
        self.integrations = integrations
        self.spent = spent
        self.config = config

    async def start(self, form: Mapping[str, str], *, peer: str | None, user_agent: str | None) -> Started:
        """The sign-in button: open the guest's auth window and send it to the provider."""
        token = form.get("t") or ""
        guest = self.portal.identify(token, peer=peer)
        instance = await self.portal.instance(guest.instance_id)
        if instance is None:
            raise PortalError(404, "err_no_portal", site_id=guest.site_id)
        if instance.strategy != STRATEGY:
            raise PortalError(400, "err_params", site_id=guest.site_id)
        if instance.terms_text and form.get("accept") not in ACCEPTED:
            return Started(StartOutcome.TERMS_REQUIRED, guest, instance, token)
        auth = await self.integrations.for_instance(instance.id)
        if auth is None:
            raise PortalError(503, "err_oauth_unavailable", site_id=guest.site_id)
        integration = auth.integration
        if integration.type == GOOGLE and assistants.detect(user_agent) is not None:
            # Google answers `disallowed_useragent` here; the form says where to go instead.
            return Started(StartOutcome.USE_BROWSER, guest, instance, token)
        flow = self._new_flow(integration, guest)
        url = await self._authorization_url(integration, flow, site_id=guest.site_id)
        await self.portal.open_auth_window(guest, auth.window_seconds)
        log.info("portal.oauth_started", site_id=guest.site_id, ip=guest.ip, provider=integration.type)
        return Started(
            StartOutcome.REDIRECT,
            guest,
            instance,
            token,
            url=url,
            cookie=oauth_state.seal(self.portal.sealer, flow),
            provider=integration.type,
        )

    async def start_test(self, integration_id: str, params: Mapping[str, str]) -> tuple[str, str]:
        """An auth integration's signed test URL: (provider URL, flow cookie) of a run with no guest."""
        expires = params.get("expires") or ""
        signature = params.get("signature") or ""
        if (
            not (expires.isascii() and expires.isdigit())
            or len(expires) > 12
            or not signature
            or len(signature) > 128
        ):
            raise PortalError(403, "err_oauth_test_link")
        try:
            self.portal.signer.verify_expiring(
                signature, int(expires), "oauth-test", integration_id, now=self.portal.clock().timestamp()
            )
        except PermissionDenied as exc:
            raise PortalError(403, "err_oauth_test_link") from exc
        integration = await self.integrations.by_id(integration_id)
        if integration is None:
            raise PortalError(404, "err_oauth_unavailable")
        flow = self._new_flow(integration, None)
        url = await self._authorization_url(integration, flow, site_id=None)
        return url, oauth_state.seal(self.portal.sealer, flow)

    async def finish(
        self, params: Mapping[str, str], *, cookie: str | None, peer: str | None
    ) -> Tested | SignedIn:
        """The provider's callback: who the guest is, and its new session (none for a test run)."""
        try:
            return await self._finish(params, cookie=cookie, peer=peer)
        except PortalError:
            _OAUTH_SIGNINS.count(FAILED)
            raise

    async def _finish(
        self, params: Mapping[str, str], *, cookie: str | None, peer: str | None
    ) -> Tested | SignedIn:
        now = self.portal.clock().timestamp()
        if not cookie:
            raise PortalError(400, "err_oauth_state")
        try:
            flow = oauth_state.unseal(self.portal.sealer, cookie, now=now)
        except TokenExpired as exc:
            raise PortalError(400, "err_oauth_expired", site_id=_site_of(exc.claims.get("g"))) from exc
        except TokenInvalid as exc:
            raise PortalError(400, "err_oauth_state") from exc
        site_id = flow.guest.site_id if flow.guest else None
        if any(len(value) > MAX_PARAM_CHARS for value in params.values()):
            raise PortalError(400, "err_oauth_state", site_id=site_id)
        if not oauth_state.state_matches(flow, params.get("state") or ""):
            raise PortalError(400, "err_oauth_state", site_id=site_id)
        # From here the flow is genuine: a failure is the guest's, and is audited like a wrong code.
        try:
            return await self._finish_flow(flow, params, peer=peer, now=now, site_id=site_id)
        except PortalError as exc:
            if flow.guest is not None:
                await self.portal.record_failure(flow.guest, strategy=STRATEGY, reason=exc.key)
            raise

    async def _finish_flow(
        self, flow: Flow, params: Mapping[str, str], *, peer: str | None, now: float, site_id: str | None
    ) -> Tested | SignedIn:
        try:
            first = await self.spent.spend(flow.attempt.state, until=flow.expires, now=now)
        except LedgerUnavailable as exc:
            log.warning("portal.oauth_ledger_unavailable", error=str(exc))
            raise PortalError(503, "err_unavailable", site_id=site_id) from exc
        if not first:
            raise PortalError(409, "err_oauth_replayed", site_id=site_id)
        if flow.guest is not None and flow.guest.peer != (peer or ""):
            raise PortalError(403, "err_token_invalid", site_id=site_id)
        error = params.get("error")
        if error:
            log.info("portal.oauth_refused", site_id=site_id, error=error[:64])
            if error == "access_denied":
                raise PortalError(403, "err_oauth_denied", site_id=site_id)
            raise PortalError(502, "err_oauth_failed", site_id=site_id)
        code = params.get("code") or ""
        if not code:
            raise PortalError(400, "err_oauth_state", site_id=site_id)
        integration = await self._integration_of(flow)
        identity = await self._identify(integration, flow, code, site_id=site_id)
        if flow.guest is None:
            log.info("portal.oauth_tested", integration_id=integration.id, provider=integration.type)
            return Tested(identity)
        instance = await self.portal.instance(flow.guest.instance_id)
        if instance is None:
            raise PortalError(404, "err_no_portal", site_id=site_id)
        granted = await self.portal.grant(flow.guest, strategy=STRATEGY, details=identity.as_record())
        log.info("portal.oauth_signed_in", site_id=site_id, ip=flow.guest.ip, provider=identity.provider)
        _OAUTH_SIGNINS.count(granted.outcome.value)
        return SignedIn(identity, flow.guest, instance, granted)

    def _new_flow(self, integration: Integration, guest: GuestIdentity | None) -> Flow:
        expires = int(self.portal.clock().timestamp()) + self.config.state_ttl_seconds
        return Flow(integration_id=integration.id, attempt=Attempt.new(), guest=guest, expires=expires)

    async def _authorization_url(self, integration: Integration, flow: Flow, *, site_id: str | None) -> str:
        try:
            return await self.providers.authorization_url(
                integration, redirect_uri=self.config.callback_url, attempt=flow.attempt
            )
        except SignInFailed as exc:
            log.warning(
                "portal.oauth_provider_failed",
                integration_id=integration.id,
                reason=exc.reason,
                detail=exc.detail,
            )
            raise PortalError(502, "err_oauth_unreachable", site_id=site_id) from exc

    async def _integration_of(self, flow: Flow) -> Integration:
        site_id = flow.guest.site_id if flow.guest else None
        if flow.guest is None:
            integration = await self.integrations.by_id(flow.integration_id)
        else:
            auth = await self.integrations.for_instance(flow.guest.instance_id)
            # The operator may have changed the instance's integration since the flow started.
            integration = auth.integration if auth and auth.integration.id == flow.integration_id else None
        if integration is None:
            raise PortalError(503, "err_oauth_unavailable", site_id=site_id)
        return integration

    async def _identify(
        self, integration: Integration, flow: Flow, code: str, *, site_id: str | None
    ) -> Identity:
        try:
            return await self.providers.identify(
                integration, code=code, redirect_uri=self.config.callback_url, attempt=flow.attempt
            )
        except SignInFailed as exc:
            log.warning(
                "portal.oauth_failed", integration_id=integration.id, reason=exc.reason, detail=exc.detail
            )
            status, key = _FAILURES.get(exc.reason, (502, "err_oauth_failed"))
            raise PortalError(status, key, site_id=site_id) from exc


def _site_of(guest: object) -> str | None:
    site = guest.get("s") if isinstance(guest, dict) else None
    return site if isinstance(site, str) else None
