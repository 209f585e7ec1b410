"""Structured logging (structlog): console lines in development, JSON in production."""

from __future__ import annotations

import logging

import structlog


def configure(level: str = "info", *, json: bool = False) -> None:
    """Configure structlog and the standard library's root logger."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, format="%(message)s")
    # Alembic announces every plugin and the DDL mode at INFO; only the migrations it runs matter.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("alembic.runtime.migration").setLevel(numeric)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
