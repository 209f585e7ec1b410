"""Pure ASGI middleware: operator authentication (with the per-token rate limit) and the request body limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guestgate.error_handlers import error_response
from guestgate.errors import GuestgateError, PayloadTooLarge, RateLimited
from guestgate.ops import metrics, ratelimit
from guestgate.security import TokenVerifier

# Paths under /captive reachable without a bearer token: they carry their own signature.
PUBLIC_PREFIXES = ("/captive/coupons", "/captive/assets/")


class OperatorAuthMiddleware:
    """Verifies the bearer token of every operator request before routing (401 comes first),
    then holds the token to its rate limit (429 before any work is done)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        public_url: str,
        limiter: ratelimit.Limiter | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public_url = public_url
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_operator_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            principal = await self.verifier.authenticate(authorization)
        except GuestgateError as error:
            await error_response(error, self.public_url)(scope, receive, send)
            return
        if self.limiter is not None and authorization is not None:
            retry_after = await ratelimit.check(self.limiter, authorization.partition(" ")[2].strip())
            if retry_after is not None:
                metrics.RATE_LIMITED.inc()
                limited = RateLimited(
                    "Too many requests with this token. Retry after the number of seconds in Retry-After.",
                    retry_after=retry_after,
                )
                await error_response(limited, self.public_url)(scope, receive, send)
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _is_operator_path(path: str) -> bool:
    if not (path == "/captive" or path.startswith("/captive/")):
        return False
    if path == "/captive/coupons":
        return False
    return not path.startswith("/captive/assets/")


class BodyLimitMiddleware:
    """Answers 413 when a body is larger than the limit, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, public_url: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(self._error(), self.public_url)(scope, receive, send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as error:
            if not started:
                await error_response(error, self.public_url)(scope, receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than {self.max_bytes} bytes.")
