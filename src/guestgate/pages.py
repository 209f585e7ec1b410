"""Service pages outside the API: `/errors/<code>` documentation and health checks."""

from __future__ import annotations

import asyncio
import html

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from guestgate.deps import get_runtime
from guestgate.error_handlers import error_response
from guestgate.errors import ERROR_CODES, NotFound, ServiceUnavailable, kind_of
from guestgate.ops import health

router = APIRouter(include_in_schema=False)
log = structlog.get_logger(__name__)


@router.get("/errors/{code}", response_class=HTMLResponse)
def error_page(code: str) -> HTMLResponse:
    """A page describing one error code."""
    if code not in ERROR_CODES:
        raise NotFound("error code", code)
    owner, description = ERROR_CODES[code]
    kind = kind_of(owner)
    status_line = f"<p>HTTP status <strong>{kind.status}</strong>, type <code>{kind.type}</code>.</p>"
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(code)} · guestgate</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}}
code{{background:#f3f3f3;padding:.1em .3em;border-radius:3px}}</style></head><body>
<h1><code>{html.escape(code)}</code></h1>{status_line}<p>{html.escape(description)}</p>
<p>Every error body has the form <code>{{"type", "code", "message", "doc_url"}}</code>; the
<code>message</code> names the parameter or resource concerned.</p></body></html>"""
    return HTMLResponse(body)


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """Liveness: the process answers (the database is not asked)."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers; with it, how many sites' gateways are in each state."""
    runtime = get_runtime(request)
    try:
        gateways = await asyncio.wait_for(
            asyncio.to_thread(health.gateway_counts, runtime), timeout=health.READY_TIMEOUT_SECONDS
        )
    except Exception as exc:  # any failure to reach the database means "not ready", never a 500
        log.warning("readyz.database_unavailable", error=type(exc).__name__)
        error = ServiceUnavailable("The database is unavailable.")
        return error_response(error, runtime.settings.public_url)
    return JSONResponse({"status": "ok", "database": "ok", "gateways": gateways})
