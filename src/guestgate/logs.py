"""Structured logging (structlog): console lines in development, one JSON object a line in production.

structlog's own loggers and the standard library's (uvicorn, alembic, httpx) go through the
same processors, so with `GUESTGATE_LOG_JSON=true` every line of the process is JSON, carries
the level and an ISO timestamp, and, inside a request, its `request_id`.

Secrets never reach the output, by two independent guards: values under a key that names a
secret (`password`, `client_secret`, `authorization`, `token`, ...) are replaced, and the
configured secret values themselves (the JWT secret, the signing and encryption keys, the
SMTP password) are blanked wherever they appear in a line, exceptions included. Nothing logs
request bodies, headers or query strings in the first place: the HTTP client libraries, which
log every outbound request's full URL (httpx2 at INFO, httpcore2's traces at DEBUG), are held at
WARNING whatever the level, and any URL that reaches a line anyway loses its query string
(`?[redacted]`): signed URLs carry their signature there, some webhook URLs a token.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from guestgate.config import Settings

REDACTED = "[redacted]"
# A key containing one of these names a secret: its value is never written.
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "authorization",
    "token",
    "api_key",
    "cookie",
    "private_key",
)
# Shorter than this, a "secret" value would blank ordinary words; real keys are >= 32 bytes.
MIN_SECRET_CHARS = 8
# Loggers of the HTTP clients: their INFO and DEBUG lines name whole request URLs.
HTTP_CLIENT_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2")
# The query string (and fragment) of an absolute URL anywhere in a line.
_URL_QUERY = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)[?#][^\s\"'<>]*")


class _Redactor:
    """A processor blanking secret-named keys and known secret values in an event."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = self._clean(key, event[key])
        return event

    def _clean(self, key: str, value: Any) -> Any:
        if is_secret_key(key) and value is not None:
            return REDACTED
        if isinstance(value, str):
            return self._blank(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean("", v) for v in value]
        if isinstance(value, BaseException):
            return self._blank(repr(value))
        return value

    def _blank(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "://" in text:
            text = _URL_QUERY.sub(rf"\1?{REDACTED}", text)
        return text


def _drop_color_message(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """uvicorn hands every line a coloured copy of its message as `extra`; `event` already says it."""
    event.pop("color_message", None)
    return event


def is_secret_key(key: str) -> bool:
    """True if a log key (or a detail key) names a secret."""
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def configure(
    level: str = "info", *, json: bool = False, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's root logger to write through one processor chain.

    `secrets` are values blanked wherever they appear; `stream` defaults to standard error.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    out = stream if stream is not None else sys.stderr
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    # The exception is rendered to text before redaction, so secrets in its message are blanked too.
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _Redactor(secrets),
    ]
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                _drop_color_message,
                *shared,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Alembic announces every plugin and the DDL mode at INFO; only the migrations it runs matter.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("alembic.runtime.migration").setLevel(numeric)
    # The HTTP clients log every request's full URL; signed URLs carry their signature in the query.
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        # Not cached, so a reconfiguration reaches loggers already used; no hot path logs.
        cache_logger_on_first_use=False,
    )


def configure_for(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Configure logging from the settings, with every configured secret value blanked."""
    values = (
        settings.jwt_secret,
        settings.encryption_key,
        settings.encryption_key_previous,
        settings.signing_key,
        settings.signing_key_previous,
        settings.smtp_password,
        settings.metrics_token,
    )
    configure(
        settings.log_level,
        json=settings.log_json,
        secrets=[value.get_secret_value() for value in values if value is not None],
        stream=stream,
    )
