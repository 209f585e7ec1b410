"""HTTP of OAuth2 sign-in under /guest/oauth: the button, the one callback, the integrations' test runs.

`POST /oauth/start` answers with a page that moves on to the provider by itself (a meta
refresh, with a link as well) rather than a redirect: the sign-in page's CSP allows forms to
post only to guestgate (`form-action 'self'`), and Chromium applies that to every redirect
that follows a form post, so a 303 to the provider would be blocked.
`GET /oauth/callback` is the single redirect URI of every instance (operators register
`<public url>/guest/oauth/callback` once at their provider). `GET /oauth/test/<id>` runs an
integration's flow for an operator and shows the identity it got.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import cookie_parser
from starlette.routing import BaseRoute, Route
from starlette.types import Receive

from guestgate.portal import assistants
from guestgate.portal.http import GuestRequest, PortalPages, Reply, header, html, with_headers
from guestgate.portal.oauth import GOOGLE, PROVIDER_NAMES, Endpoints, IdentityProviders
from guestgate.portal.oauth_service import (
    Integrations,
    OAuthConfig,
    OAuthSignIn,
    Started,
    StartOutcome,
    Tested,
)
from guestgate.portal.oauth_state import COOKIE, MemorySpentStates, RedisSpentStates, SpentStates
from guestgate.portal.service import PortalError, SignInOutcome
from guestgate.portal.store import InstanceInfo
from guestgate.portal.tokens import TokenExpired, TokenInvalid
from guestgate.runtime import Runtime


class OAuthEndpoints:
    """The OAuth2 endpoints of a portal app, rendered with the app's pages."""

    def __init__(self, app: PortalPages, signin: OAuthSignIn) -> None:
        self.app = app
        self.signin = signin

    def routes(self) -> list[BaseRoute]:
        """The routes to add to the portal app."""
        return [
            Route("/oauth/start", self.app.endpoint(self.start), methods=["POST"]),
            Route("/oauth/callback", self.app.endpoint(self.callback), methods=["GET"]),
            Route("/oauth/test/{integration_id}", self.app.endpoint(self.test), methods=["GET"]),
        ]

    async def start(self, request: GuestRequest, receive: Receive) -> Reply:
        """The sign-in button: on to the provider, or the form again saying what is missing."""
        form = await self.app.read_form(request, receive)
        started = await self.signin.start(form, peer=request.peer, user_agent=header(request, b"user-agent"))
        t = self.app.translator(request, started.instance)
        if started.outcome is StartOutcome.TERMS_REQUIRED:
            return self.app.form_page(
                request,
                t,
                started.instance,
                token=started.token,
                status=400,
                error=t("err_terms"),
                error_field="accept",
                outcome=SignInOutcome.TERMS_REQUIRED.value,
            )
        if started.outcome is StartOutcome.USE_BROWSER:
            return self.app.form_page(request, t, started.instance, token=started.token, accepted=True)
        return self._to_provider(request, started)

    def _to_provider(self, request: GuestRequest, started: Started) -> Reply:
        t = self.app.translator(request, started.instance)
        page = self.app.renderer.render(
            "oauth_redirect.html",
            t=t,
            title=t("oauth_redirect_title"),
            instance=started.instance,
            now=self.app.portal.clock(),
            base=request.base,
            provider_name=PROVIDER_NAMES[started.provider],
            refresh_url=started.url,
            refresh_seconds=0,
        )
        return html(200, page, {"set-cookie": self._cookie(request, started.cookie)})

    async def callback(self, request: GuestRequest, _receive: Receive) -> Reply:
        """The provider sends the guest back here: the session (or the test's identity), or why not."""
        # Whatever happens, the flow is over: its cookie goes.
        spent = {"set-cookie": self._cookie(request, "")}
        try:
            finished = await self.signin.finish(request.query, cookie=_cookie(request), peer=request.peer)
        except PortalError as exc:
            return with_headers(self.app.portal_error_page(request, exc), spent)
        if isinstance(finished, Tested):
            t = self.app.translator(request, None)
            page = self.app.renderer.render(
                "oauth_test.html",
                t=t,
                title=t("oauth_test_title"),
                instance=None,
                now=self.app.portal.clock(),
                base=request.base,
                identity=finished.identity,
                provider_name=PROVIDER_NAMES[finished.identity.provider],
            )
            return html(200, page, spent)
        t = self.app.translator(request, finished.instance)
        granted = finished.granted
        title = t("success_title") if granted.outcome is SignInOutcome.SUCCESS else t("status_title")
        reply = self.app.session_page(
            request,
            t,
            finished.instance,
            granted.session,
            granted.status_token,
            finished.guest,
            title,
            activating=granted.activating,
        )
        return with_headers(reply, spent)

    async def test(self, request: GuestRequest, _receive: Receive) -> Reply:
        """An auth integration's signed test URL: straight on to the provider."""
        integration_id = str(request.scope.get("path_params", {}).get("integration_id", ""))
        url, cookie = await self.signin.start_test(integration_id, request.query)
        headers = {
            "location": url,
            "set-cookie": self._cookie(request, cookie),
            "cache-control": "no-store",
            "referrer-policy": "no-referrer",
        }
        return Reply(303, b"", headers)

    def form_extras(self, request: GuestRequest, instance: InstanceInfo, token: str) -> dict[str, Any]:
        """What the sign-in form of an oauth2 instance shows: the provider's button, or the way out."""
        provider = instance.auth_provider or ""
        extras: dict[str, Any] = {
            "provider_name": PROVIDER_NAMES.get(provider, ""),
            "oauth_action": f"{request.base}/oauth/start",
        }
        assistant = assistants.detect(header(request, b"user-agent"))
        if provider == GOOGLE and assistant is not None:
            extras["assistant"] = assistant
            extras["browser_url"] = self._browser_url(token)
        return extras

    def _browser_url(self, token: str) -> str:
        """The portal address a guest can open in its real browser (its site's entry page)."""
        entry = f"{self.signin.config.public_url}/guest/entry"
        try:
            guest = self.app.portal.sealer.open_guest(token, now=self.app.portal.clock().timestamp())
        except (TokenInvalid, TokenExpired):
            return entry
        return f"{entry}?site={guest.site_id}"

    def _cookie(self, request: GuestRequest, value: str) -> str:
        max_age = self.signin.config.state_ttl_seconds if value else 0
        parts = [f"{COOKIE}={value}", f"Path={request.base}/oauth", f"Max-Age={max_age}", "HttpOnly"]
        # Lax: the provider's redirect back is a top-level GET, which carries it.
        parts.append("SameSite=Lax")
        if self.signin.config.secure_cookies:
            parts.append("Secure")
        return "; ".join(parts)


def install(
    app: PortalPages,
    runtime: Runtime,
    *,
    providers: IdentityProviders | None = None,
    spent: SpentStates | None = None,
) -> OAuthEndpoints:
    """Add OAuth2 sign-in to a portal app (providers and the spent-state ledger replaceable for tests)."""
    settings = runtime.settings
    if spent is None:
        redis_url = app.portal.config.redis_url
        spent = (
            RedisSpentStates(redis_url, prefix=app.portal.config.redis_prefix)
            if redis_url
            else MemorySpentStates()
        )
    signin = OAuthSignIn(
        portal=app.portal,
        providers=providers
        or IdentityProviders(Endpoints.from_settings(settings), outbound=runtime.outbound),
        integrations=Integrations(runtime.sessions, runtime.box),
        spent=spent,
        config=OAuthConfig.from_settings(settings),
    )
    endpoints = OAuthEndpoints(app, signin)
    app.include(endpoints.routes(), form_extras=endpoints.form_extras)
    return endpoints


def _cookie(request: GuestRequest) -> str | None:
    value = header(request, b"cookie")
    return cookie_parser(value).get(COOKIE) if value else None
