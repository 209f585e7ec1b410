"""The `guestgate` command: serve, migrate, token create."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from guestgate.config import ConfigError, Settings, get_settings
from guestgate.security import ALL_SCOPES, SCOPE_READ, SCOPE_WRITE, mint_token

app = typer.Typer(help="guestgate: captive-portal control plane for guest Wi-Fi.", no_args_is_help=True)
token_app = typer.Typer(help="Operator API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _migrate(settings: Settings) -> None:
    from guestgate.db import make_engine
    from guestgate.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@app.command()
def migrate() -> None:
    """Apply the database migrations (creates the SQLite file if needed)."""
    settings = _settings()
    _migrate(settings)
    typer.echo(f"database is at the latest schema: {_display_url(settings.resolved_database_url)}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (GUESTGATE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (GUESTGATE_PORT).")] = None,
    banner: Annotated[bool, typer.Option(help="Print URLs and a development token.")] = False,
) -> None:
    """Migrate, then serve the API, the portal and (unless disabled) the scheduler."""
    import uvicorn

    from guestgate.app import create_app
    from guestgate.logs import configure

    settings = _settings()
    configure(settings.log_level, json=settings.log_json)
    _migrate(settings)
    if banner:
        _print_banner(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Run the background jobs only (schedules, deliveries, expiry), for deployments with replicas."""
    import asyncio
    import signal

    from guestgate import worker as jobs
    from guestgate.logs import configure
    from guestgate.runtime import Runtime

    settings = _settings()
    configure(settings.log_level, json=settings.log_json)
    _migrate(settings)
    runtime = Runtime.build(settings)

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await jobs.run_jobs(runtime, stop)

    try:
        asyncio.run(main_loop())
    finally:
        runtime.close()


@token_app.command("create")
def token_create(
    org: Annotated[str, typer.Option(help="The org (tenant) id; created if new.")],
    scope: Annotated[
        list[str] | None, typer.Option(help=f"Scopes to grant (repeatable): {', '.join(ALL_SCOPES)}.")
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=60)] = 30 * 24 * 3600,
    sub: Annotated[str, typer.Option(help="Who the token is for (the `sub` claim).")] = "operator",
) -> None:
    """Print a signed operator token on stdout."""
    from guestgate.db import make_engine, make_sessionmaker
    from guestgate.orgs import service as org_service

    scopes = scope or [SCOPE_READ, SCOPE_WRITE]
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        typer.echo(f"unknown scope(s): {', '.join(unknown)}; choose from {', '.join(ALL_SCOPES)}", err=True)
        raise typer.Exit(2)
    if not org.strip() or len(org) > 128:
        typer.echo("--org must be 1 to 128 characters", err=True)
        raise typer.Exit(2)
    settings = _settings()
    _migrate(settings)
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as session:
        org_service.ensure(org, session=session)
        session.commit()
    engine.dispose()
    typer.echo(mint_token(settings, org=org, subject=sub, scopes=scopes, ttl_seconds=ttl))


def _print_banner(settings: Settings) -> None:
    from guestgate.db import make_engine, make_sessionmaker
    from guestgate.orgs import service as org_service

    org = "default"
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as session:
        org_service.ensure(org, session=session)
        session.commit()
    engine.dispose()
    token = mint_token(settings, org=org, subject="make-run", scopes=ALL_SCOPES, ttl_seconds=7 * 24 * 3600)
    base = settings.public_url
    lines = [
        "",
        "guestgate is starting",
        f"  API docs (Swagger UI): {base}/docs",
        f"  API docs (ReDoc):      {base}/redoc",
        f"  OpenAPI document:      {base}/openapi.json",
        "  Portal preview:        the `preview_url` of any instance (GET /captive/instances)",
        f"  Database:              {_display_url(settings.resolved_database_url)}",
        "",
        f"Operator token for org '{org}' (all scopes, 7 days) - paste it into /docs -> Authorize:",
        token,
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    """Entry point of the `guestgate` console script."""
    app()
