"""Forged tokens naming unknown `kid`s against a JWKS-configured server (issue 9, item 6).

Before: each such token made a synchronous 30 s JWKS fetch on the event loop, with no cooldown;
`/healthz` took 14.7 s. Now the keys are fetched asynchronously, shared by every waiting request,
at most once per cooldown for unknown `kid`s, with a short timeout. A real server (uvicorn on
loopback) and a real JWKS server on loopback that counts its fetches and answers slowly.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from guestgate.app import create_app
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES
from tests.utils.hostile import LiveServer
from tests.utils.settings import make_settings

_SIGNER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ROTATED = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ATTACKER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", "alg": "RS256"}


def token(key: rsa.RSAPrivateKey, kid: str) -> str:
    now = int(time.time())
    claims = {"sub": "ops", "org": "org-a", "scope": " ".join(ALL_SCOPES), "iat": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@dataclass
class Jwks:
    """The identity provider's JWKS endpoint on loopback."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=lambda: [jwk(_SIGNER, "key-1")])
    delay: float = 0.0
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    state = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.fetches += 1
                body = json.dumps({"keys": state.keys}).encode()
            time.sleep(state.delay)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (the timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def serve(db_url: str, tmp_path: Path, jwks: Jwks, **overrides: Any) -> tuple[LiveServer, Runtime]:
    settings = make_settings(db_url, tmp_path / "var", jwt_secret=None, jwt_jwks_url=jwks.url, **overrides)
    runtime = Runtime.build(settings)
    return LiveServer(create_app(runtime=runtime)), runtime


async def flood(base: str, *, forged: int, concurrency: int) -> tuple[list[int], list[float]]:
    """`forged` requests with unknown kids, `concurrency` at a time, while /healthz is timed."""
    statuses: list[int] = []
    health: list[float] = []
    done = asyncio.Event()
    limits = httpx2.Limits(max_connections=concurrency + 2)
    async with httpx2.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def attack() -> None:
            gate = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with gate:
                    forged_token = token(_ATTACKER, f"forged-{secrets.token_hex(4)}")
                    answer = await client.get(
                        "/captive/instances", headers={"Authorization": f"Bearer {forged_token}"}
                    )
                    statuses.append(answer.status_code)

            await asyncio.gather(*(one() for _ in range(forged)))
            done.set()

        async def probe() -> None:
            while not done.is_set():
                started = time.monotonic()
                assert (await client.get("/healthz")).status_code == 200
                health.append(time.monotonic() - started)
                await asyncio.sleep(0.02)

        await asyncio.gather(attack(), probe())
    return statuses, health


def test_forged_kids_cost_one_fetch_and_never_stall_the_server(
    db_url: str, tmp_path: Path, jwks: Jwks
) -> None:
    # A slow identity provider: each fetch takes 3 s. A fetch on the event loop would hold
    # /healthz for all of it; half of it leaves room for a loaded machine (40 requests in flight).
    jwks.delay = 3.0
    live, runtime = serve(db_url, tmp_path, jwks, jwt_jwks_cooldown_seconds=60, jwt_jwks_timeout_seconds=5)
    try:
        with live:
            base = f"http://127.0.0.1:{live.port}"
            statuses, health = asyncio.run(flood(base, forged=300, concurrency=40))
            assert statuses == [401] * 300
            assert jwks.fetches == 1
            assert len(health) >= 5 and max(health) < 1.5, f"/healthz took up to {max(health):.2f} s"
            # The real key was fetched with that one fetch: a valid token needs no other.
            with httpx2.Client(base_url=base) as client:
                good = client.get(
                    "/captive/instances", headers={"Authorization": f"Bearer {token(_SIGNER, 'key-1')}"}
                )
            assert good.status_code == 200, good.text
            assert jwks.fetches == 1
    finally:
        runtime.close()


def test_a_rotated_key_is_picked_up_after_the_cooldown(db_url: str, tmp_path: Path, jwks: Jwks) -> None:
    live, runtime = serve(db_url, tmp_path, jwks, jwt_jwks_cooldown_seconds=0.5)
    try:
        with live, httpx2.Client(base_url=f"http://127.0.0.1:{live.port}") as client:

            def call(signed: str) -> int:
                return client.get(
                    "/captive/instances", headers={"Authorization": f"Bearer {signed}"}
                ).status_code

            assert call(token(_SIGNER, "key-1")) == 200
            assert jwks.fetches == 1
            jwks.keys = [jwk(_SIGNER, "key-1"), jwk(_ROTATED, "key-2")]
            # Within the cooldown an unknown kid is refused without a fetch ...
            assert call(token(_ROTATED, "key-2")) == 401
            assert jwks.fetches == 1
            time.sleep(0.6)
            # ... after it, the first token with the new kid fetches once and is accepted.
            assert call(token(_ROTATED, "key-2")) == 200
            assert call(token(_ROTATED, "key-2")) == 200
            assert jwks.fetches == 2
    finally:
        runtime.close()


def test_a_provider_that_does_not_answer_is_given_up_on_quickly(
    db_url: str, tmp_path: Path, jwks: Jwks
) -> None:
    jwks.delay = 10
    live, runtime = serve(db_url, tmp_path, jwks, jwt_jwks_timeout_seconds=0.5)
    try:
        with live, httpx2.Client(base_url=f"http://127.0.0.1:{live.port}", timeout=30) as client:
            started = time.monotonic()
            refused = client.get(
                "/captive/instances", headers={"Authorization": f"Bearer {token(_SIGNER, 'key-1')}"}
            )
            took = time.monotonic() - started
            assert refused.status_code == 401
            assert refused.json()["message"] == "The token's signing key is not in the JWKS."
            assert took < 2, f"the request waited {took:.1f} s for the JWKS"
            assert client.get("/healthz").status_code == 200
    finally:
        runtime.close()
