"""Refuses text no database can store: NUL characters and unpaired UTF-16 surrogates.

PostgreSQL refuses NUL in text and neither database can encode a lone surrogate (which JSON
can carry as `\\ud800`), so either would surface as a 500 from deep inside a query. Checked
once, before routing, for every operator request: the path, each query parameter and every
string (keys too) of a JSON body. The answer is the usual 400 naming the parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guestgate.error_handlers import error_response
from guestgate.errors import ParameterInvalid

_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
_MAY_CARRY = re.compile(rb"\\u|[\x00\xed]")
_REASON = "contains a character that is not allowed (NUL or an unpaired surrogate)"


def _bad_strings(value: Any, path: str) -> Iterator[str]:
    """The parameter name of each string in a JSON document that has a forbidden character."""
    if isinstance(value, str):
        if _FORBIDDEN.search(value):
            yield path or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if _FORBIDDEN.search(key):
                yield path or "body"
            yield from _bad_strings(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_strings(item, f"{path}[{index}]")


class TextGuardMiddleware:
    """400 for a NUL or unpaired surrogate anywhere in an operator request's text."""

    def __init__(self, app: ASGIApp, *, public_url: str, prefix: str = "/captive") -> None:
        self.app = app
        self.public_url = public_url
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        problem = self._url_problem(scope)
        if problem is None and _is_json(scope):
            body, receive = await _buffer(receive)
            try:
                # Only a body with a `\u` escape, a 0xED byte (how UTF-8-like bytes spell a
                # surrogate, which json.loads lets through) or a NUL byte (UTF-16/32 JSON) can
                # carry a forbidden character; the rest, nearly every body, needs no second parse.
                document = json.loads(body) if _MAY_CARRY.search(body) else None
            except (ValueError, RecursionError):
                document = None  # not JSON: the framework reports invalid_json
            problem = next(_bad_strings(document, ""), None)
        if problem is not None:
            response = error_response(ParameterInvalid(problem, _REASON), self.public_url)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _url_problem(scope: Scope) -> str | None:
        if _FORBIDDEN.search(scope["path"]):
            return "path"
        query = scope.get("query_string", b"").decode("latin-1")
        if "%00" in query or "\x00" in query:
            for key, value in parse_qsl(query, keep_blank_values=True):
                if "\x00" in key or "\x00" in value:
                    return key.replace("\x00", "") or "query"
        return None


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json"
    return False


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (the body limit middleware outside bounds it) and a receive that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
