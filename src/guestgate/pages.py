"""Service pages outside the API: `/errors/<code>` documentation and health checks."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text

from guestgate.deps import get_runtime
from guestgate.errors import ERROR_CODES, NotFound, kind_of

router = APIRouter(include_in_schema=False)


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
def healthz() -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers."""
    try:
        with get_runtime(request).engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
