"""The `guestgate` command: serve, worker, migrate, doctor, token create, gateway apply/script/agent-key, agent."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from guestgate.config import ConfigError, Settings, get_settings
from guestgate.security import ALL_SCOPES, SCOPE_READ, SCOPE_WRITE, UrlSigner, mint_token

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="guestgate: captive-portal control plane for guest Wi-Fi.", no_args_is_help=True)
token_app = typer.Typer(help="Operator API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
gateway_app = typer.Typer(
    help="Gateways: install nftables tables, RouterOS set-up, agent keys.", no_args_is_help=True
)
app.add_typer(gateway_app, name="gateway")


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
    """Migrate, then serve the API, the portal and (unless disabled) the scheduler.

    SIGTERM (or Ctrl-C) stops accepting connections, lets the requests in flight finish (up to
    GUESTGATE_SHUTDOWN_TIMEOUT_SECONDS), finishes the job in progress, and exits 0.
    """
    import uvicorn

    from guestgate.app import create_app
    from guestgate.logs import configure_for
    from guestgate.runtime import Runtime
    from guestgate.server import GracefulServer

    settings = _settings()
    configure_for(settings)
    _migrate(settings)
    if banner:
        _print_banner(settings)
    _warn_process_local_state(settings)
    runtime = Runtime.build(settings)
    config = uvicorn.Config(
        create_app(runtime=runtime),
        host=host or settings.host,
        port=port or settings.port,
        # uvloop measured a worse p99 on the sign-in path than the stdlib loop.
        loop="asyncio",
        log_level=settings.log_level,
        # The portal reads X-Forwarded-For itself, only from GUESTGATE_PORTAL_TRUSTED_PROXIES.
        proxy_headers=False,
        access_log=False,
        # uvicorn's lines go through guestgate's logging (JSON with GUESTGATE_LOG_JSON).
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )
    GracefulServer(config, on_signal=runtime.draining.set).run()


def _warn_process_local_state(settings: Settings) -> None:
    """Name what stays in this process when the deployment looks like it has replicas."""
    import structlog

    if settings.resolved_database_url.startswith("postgresql") and not settings.redis_url:
        structlog.get_logger("guestgate.cli").warning(
            "replicas.state_in_process",
            detail="without GUESTGATE_REDIS_URL, sign-in throttling counters and spent OAuth states "
            "are per process: with several replicas, set it",
        )


@app.command()
def worker() -> None:
    """Run the background jobs only (schedules, deliveries, expiry), for deployments with replicas."""
    import asyncio
    import signal

    from guestgate import worker as jobs
    from guestgate.logs import configure_for
    from guestgate.runtime import Runtime

    settings = _settings()
    configure_for(settings)
    _migrate(settings)
    runtime = Runtime.build(settings)
    metrics_server = None
    if settings.worker_metrics_port:
        from guestgate.ops.metrics import WorkerMetricsServer

        metrics_server = WorkerMetricsServer(settings, settings.worker_metrics_port)
        metrics_server.start()

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            # The schedule runner commits the batch it holds and claims no more.
            runtime.draining.set()
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping)
        await jobs.run_jobs(runtime, stop)

    try:
        asyncio.run(main_loop())
    finally:
        if metrics_server is not None:
            metrics_server.stop()
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


@app.command()
def doctor() -> None:
    """Name stored settings that the current rules refuse (exit 1 if there are any)."""
    from guestgate.doctor import diagnose
    from guestgate.runtime import Runtime

    settings = _settings()
    _migrate(settings)
    runtime = Runtime.build(settings)
    try:
        problems = diagnose(runtime)
    finally:
        runtime.close()
    if not problems:
        typer.echo("No problems found.")
        return
    for problem in problems:
        typer.echo(problem.line())
    typer.echo(
        f"{len(problems)} problem(s). Sites keep working with these settings until they are edited "
        "(a refused RouterOS host or webhook URL is not connected to); an edit must fix them."
    )
    raise typer.Exit(1)


@gateway_app.command("apply")
def gateway_apply(site_id: Annotated[str, typer.Argument(help="The site (nftables driver).")]) -> None:
    """Install or repair the site's nft table on this host, with its active guests and walled garden."""
    from guestgate.db import utcnow
    from guestgate.errors import NotFound
    from guestgate.gateways import service as gateway_service
    from guestgate.gateways.base import GatewayError
    from guestgate.runtime import Runtime

    settings = _settings()
    _migrate(settings)
    runtime = Runtime.build(settings)
    try:
        applied = gateway_service.apply_table(runtime, site_id, now=utcnow())
    except (NotFound, GatewayError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    where = f" in network namespace {applied.netns}" if applied.netns else ""
    typer.echo(
        f"nft table inet {applied.table} applied{where}: "
        f"{applied.guests} guests, {applied.walled_garden} walled-garden entries"
    )


@gateway_app.command("script")
def gateway_script(
    site_id: Annotated[str, typer.Argument(help="The site (routeros driver).")],
    api_user: Annotated[
        str | None, typer.Option(help="RouterOS user guestgate logs in as (default: the site's username).")
    ] = None,
    controller_address: Annotated[
        str | None, typer.Option(help="Only this address (or CIDR) may log in as the API user.")
    ] = None,
) -> None:
    """Print the RouterOS commands (.rsc) that prepare the site's router for guestgate."""
    from guestgate.errors import NotFound
    from guestgate.gateways import service as gateway_service
    from guestgate.gateways.base import GatewayError
    from guestgate.runtime import Runtime

    settings = _settings()
    _migrate(settings)
    runtime = Runtime.build(settings)
    try:
        script = gateway_service.bootstrap_script(
            runtime, site_id, api_user=api_user, controller_address=controller_address
        )
    except (NotFound, GatewayError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    sys.stdout.write(script)


@gateway_app.command("agent-key")
def gateway_agent_key(site_id: Annotated[str, typer.Argument(help="The site (agent driver).")]) -> None:
    """Print the key `guestgate agent` authenticates with for the site (derived from the signing key)."""
    from guestgate.audit import service as audit_service
    from guestgate.errors import NotFound
    from guestgate.gateways import service as gateway_service
    from guestgate.gateways.agent import agent_keys
    from guestgate.runtime import Runtime

    settings = _settings()
    _migrate(settings)
    runtime = Runtime.build(settings)
    try:
        with runtime.sessions() as session:
            site = gateway_service.find_site(site_id, session=session)
            driver = site.gateway_driver
            # Who may hold a site's agent key is worth knowing later: handing it out is audited.
            audit_service.act_as(session, audit_service.Actor("cli"))
            audit_service.record(
                session,
                org_id=site.org_id,
                action="site.agent_key_shown",
                target_type="site",
                target_id=site.id,
                detail={"driver": driver},
            )
            session.commit()
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    finally:
        runtime.close()
    if driver != "agent":
        typer.echo(
            f"note: site {site_id} uses the '{driver}' driver; set it to 'agent' for the agent to connect",
            err=True,
        )
    typer.echo(agent_keys(settings, site_id)[0])


@app.command()
def agent(
    controller: Annotated[
        str, typer.Option(help="The controller's base URL, e.g. https://guestgate.example.com.")
    ],
    site: Annotated[str, typer.Option(help="The site this gateway enforces.")],
    key: Annotated[
        str,
        typer.Option(
            envvar="GUESTGATE_AGENT_KEY", help="The site's agent key (`guestgate gateway agent-key`)."
        ),
    ],
    netns: Annotated[str | None, typer.Option(help="Network namespace to apply the rules in.")] = None,
    interface: Annotated[
        str | None, typer.Option(help="Guest interface (default: the site's setting).")
    ] = None,
    portal_address: Annotated[
        str | None, typer.Option(help="Where web traffic of guests not signed in goes (default: the site's).")
    ] = None,
    portal_port: Annotated[
        int | None, typer.Option(help="The portal's port (default: the site's).", min=1, max=65535)
    ] = None,
    table: Annotated[
        str | None, typer.Option(help="nft table name (default: the site's, or guestgate).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(help="Long-poll wait in seconds (the table is re-checked as often).", min=1, max=60),
    ] = 25.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run on a Linux gateway: pull the site's state from the controller and apply it with nftables."""
    import signal
    import threading

    from guestgate.gateways.agent_client import AgentOptions, run_agent
    from guestgate.logs import configure

    # The HTTP client's line per long-poll is held back there (it would name every URL, too).
    configure(log_level, json=False)
    options = AgentOptions(
        controller=controller,
        site_id=site.strip().lower(),
        key=key,
        netns=netns,
        interface=interface,
        portal_address=portal_address,
        portal_port=portal_port,
        table=table,
        wait_seconds=wait,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_agent(options, stop)


def _print_banner(settings: Settings) -> None:
    from guestgate.db import make_engine, make_sessionmaker

    org = "default"
    engine = make_engine(settings.resolved_database_url)
    with make_sessionmaker(engine)() as session:
        preview = _example_preview(org, settings, session=session)
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
        f"  Portal preview:        {preview}",
        f"  Database:              {_display_url(settings.resolved_database_url)}",
        "",
        f"Operator token for org '{org}' (all scopes, 7 days) - paste it into /docs -> Authorize:",
        token,
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _example_preview(org: str, settings: Settings, *, session: Session) -> str:
    """The preview URL of the org's newest instance; a new org gets an example instance to look at."""
    from sqlalchemy import select

    from guestgate.db import utcnow
    from guestgate.instances import service as instance_service
    from guestgate.instances.models import Instance
    from guestgate.instances.schemas import InstanceCreate
    from guestgate.instances.urls import preview_url
    from guestgate.orgs import service as org_service
    from guestgate.orgs.models import Org

    is_new = session.get(Org, org) is None
    org_service.ensure(org, session=session)
    newest = session.scalars(
        select(Instance.id).where(Instance.org_id == org).order_by(Instance.created_at.desc()).limit(1)
    ).first()
    if newest is None and is_new:
        example = InstanceCreate(name="Example guest portal", strategy="coupon", session_ttl=3600)
        newest = instance_service.create(example, org_id=org, session=session).instance.id
    if newest is None:
        return "create an instance (POST /captive/instances): its `preview_url` shows the page"
    return preview_url(newest, signer=UrlSigner(settings), public_url=settings.public_url, now=utcnow())


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    """Entry point of the `guestgate` console script."""
    app()
