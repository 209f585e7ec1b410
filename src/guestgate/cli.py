"""The `guestgate` command: serve, worker, migrate, doctor, token create/inspect, org list, gateway ..., agent.

Exit codes are `guestgate.startup.ExitCode` (the table in the README).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from guestgate import startup
from guestgate.cli_base import App
from guestgate.config import Settings, get_settings
from guestgate.security import ALL_SCOPES, SCOPE_READ, SCOPE_WRITE, UrlSigner, mint_token

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


app = App(help="guestgate: captive-portal control plane for guest Wi-Fi.", no_args_is_help=True)
token_app = App(help="Operator API tokens: mint, list, revoke, inspect.", no_args_is_help=True)
app.add_typer(token_app, name="token")
org_app = App(help="Orgs (tenants): the `org` claim of operator tokens.", no_args_is_help=True)
app.add_typer(org_app, name="org")
gateway_app = App(
    help="Gateways: nftables tables, RouterOS set-up, agent keys, guest entry URLs.", no_args_is_help=True
)
app.add_typer(gateway_app, name="gateway")
user_app = App(help="Operator console users: e-mail, password, role per org.", no_args_is_help=True)
app.add_typer(user_app, name="user")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Data directory: SQLite database, development secrets, outbox (default: GUESTGATE_DATA_DIR, "
        "else ./var).",
        show_default=False,
    ),
]


def _settings(data_dir: Path | None = None, *, create_secrets: bool = True) -> Settings:
    return get_settings(data_dir, create_secrets=create_secrets)


def _migrate(settings: Settings) -> None:
    startup.migrate(settings)


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A session on the (migrated) database of `settings`, for a command's few queries."""
    from guestgate.db import make_engine, make_sessionmaker

    _migrate(settings)
    engine = make_engine(settings.resolved_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply the database migrations (creates the SQLite file if needed)."""
    settings = _settings(data_dir)
    _migrate(settings)
    typer.echo(f"database is at the latest schema: {startup.display_url(settings.resolved_database_url)}")
    typer.echo(f"data directory: {settings.data_dir.resolve()}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default: GUESTGATE_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port; 0 picks a free one (default: GUESTGATE_PORT).")
    ] = None,
    banner: Annotated[bool, typer.Option(help="Print the URLs and a development token.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Migrate, then serve the API, the portal and (unless disabled) the scheduler.

    The address is taken first: if it is in use, nothing else happens. SIGTERM (or Ctrl-C) stops
    accepting connections, lets the requests in flight finish (up to
    GUESTGATE_SHUTDOWN_TIMEOUT_SECONDS), finishes the job in progress, and exits 0.
    """
    import structlog
    import uvicorn

    from guestgate.app import create_app
    from guestgate.logs import configure_for
    from guestgate.runtime import Runtime
    from guestgate.server import GracefulServer

    settings = _settings(data_dir)
    settings = settings.listening_on(host or settings.host, settings.port if port is None else port)
    configure_for(settings)
    sock = startup.bind(settings.host, settings.port)
    try:
        # Port 0: the URLs name the port the system picked.
        settings = settings.listening_on(settings.host, sock.getsockname()[1])
        startup.prepare_storage(settings, outbox=settings.scheduler_enabled)
        _migrate(settings)
    except BaseException:
        sock.close()
        raise
    if banner:
        _print_banner(settings)
    _warn_process_local_state(settings)
    runtime = Runtime.build(settings)
    structlog.get_logger("guestgate.cli").info(
        "serve.listening",
        url=f"http://{_host_port(settings.host, settings.port)}",
        public_url=settings.public_url,
    )
    config = uvicorn.Config(
        create_app(runtime=runtime),
        host=settings.host,
        port=settings.port,
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
    GracefulServer(config, on_signal=runtime.draining.set).run(sockets=[sock])


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
def worker(data_dir: DataDir = None) -> None:
    """Run the background jobs only (schedules, deliveries, expiry), for deployments with replicas."""
    import asyncio
    import signal

    from guestgate import worker as jobs
    from guestgate.logs import configure_for
    from guestgate.runtime import Runtime

    settings = _settings(data_dir)
    configure_for(settings)
    metrics_server = None
    if settings.worker_metrics_port:
        from guestgate.ops.metrics import WorkerMetricsServer

        # Bound before the migrations: a busy port stops the worker at once.
        metrics_server = WorkerMetricsServer(settings, settings.worker_metrics_port)
    startup.prepare_storage(settings, outbox=True)
    _migrate(settings)
    runtime = Runtime.build(settings)
    if metrics_server is not None:
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
    org: Annotated[str, typer.Option(help="The org (tenant) id; it must exist unless --create-org.")],
    create_org: Annotated[bool, typer.Option("--create-org", help="Create the org if it is new.")] = False,
    scope: Annotated[
        list[str] | None, typer.Option(help=f"Scope to grant (repeatable): {', '.join(ALL_SCOPES)}.")
    ] = None,
    ttl: Annotated[
        int,
        typer.Option(
            metavar="DURATION",
            parser=lambda text: _duration(text, minimum=60),
            help="Lifetime: seconds (3600) or 90m, 12h, 30d; 60 s to 365d; default 30d.",
            show_default=False,
        ),
    ] = 30 * 24 * 3600,
    sub: Annotated[str, typer.Option(help="Who the token is for (the `sub` claim).")] = "operator",
    name: Annotated[
        str | None, typer.Option(help="What the token is for, shown by `token list` (default: the --sub).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Print a signed operator token on stdout; say on stderr which data directory's key signed it.

    The token is registered (its id is the `jti` claim), so `token list` shows it and `token
    revoke` withdraws it. A server accepts the token only if it verifies it with the same JWT
    secret and finds it in the same database: run this with the server's data directory
    (--data-dir or GUESTGATE_DATA_DIR) or its GUESTGATE_JWT_SECRET and GUESTGATE_DATABASE_URL.
    """
    from guestgate.api_tokens import service as token_service
    from guestgate.db import utcnow
    from guestgate.errors import GuestgateError
    from guestgate.orgs import service as org_service

    scopes = scope or [SCOPE_READ, SCOPE_WRITE]
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        typer.echo(f"unknown scope(s): {', '.join(unknown)}; choose from {', '.join(ALL_SCOPES)}", err=True)
        raise typer.Exit(startup.ExitCode.USAGE)
    if not org.strip() or len(org) > 128:
        typer.echo("--org must be 1 to 128 characters", err=True)
        raise typer.Exit(startup.ExitCode.USAGE)
    if ttl > token_service.MAX_TTL_SECONDS:
        typer.echo("--ttl must be at most 365d", err=True)
        raise typer.Exit(startup.ExitCode.USAGE)
    label = (name if name is not None else sub).strip()
    if not label or len(label) > token_service.MAX_NAME_CHARS:
        typer.echo(f"--name must be 1 to {token_service.MAX_NAME_CHARS} characters", err=True)
        raise typer.Exit(startup.ExitCode.USAGE)
    settings = _settings(data_dir)
    if settings.jwt_secret is None:
        typer.echo(
            "guestgate: no GUESTGATE_JWT_SECRET to sign with (tokens come from the identity provider "
            "whose key is configured)",
            err=True,
        )
        raise typer.Exit(startup.ExitCode.CONFIG)
    with _session(settings) as session:
        created = not org_service.exists(org, session=session)
        if created and not create_org:
            typer.echo(_unknown_org(org, settings, session=session), err=True)
            raise typer.Exit(startup.ExitCode.FAILED)
        org_service.ensure(org, session=session)
        session.commit()
        try:
            row, token = token_service.mint(
                org, label, scopes, ttl, "cli", settings=settings, session=session, now=utcnow(), subject=sub
            )
        except GuestgateError as exc:
            typer.echo(f"guestgate: {exc.message}", err=True)
            raise typer.Exit(startup.ExitCode.FAILED) from None
        token_id = row.id
    if created:
        typer.echo(f"created org '{org}'", err=True)
    typer.echo(
        f"data directory {settings.data_dir.resolve()}; signed with the JWT secret of "
        f"{settings.secret_source('jwt_secret')}; token id {token_id} (`guestgate token revoke {token_id}`)",
        err=True,
    )
    if "jwt_secret" in settings.secrets_generated:
        typer.echo(
            "note: these secrets are new, so a server started with another data directory rejects "
            "this token; pass that server's --data-dir",
            err=True,
        )
    typer.echo(token)


@token_app.command("list")
def token_list(
    org: Annotated[str, typer.Option(help="The org (tenant) id.")],
    limit: Annotated[
        int, typer.Option(help="Show at most this many tokens, newest first.", min=1, max=1000)
    ] = 100,
    data_dir: DataDir = None,
) -> None:
    """List the org's registered tokens, newest first: id, name, scopes, expiry, state (never the token)."""
    from guestgate.api_tokens import service as token_service
    from guestgate.db import utcnow
    from guestgate.pagination import PageRequest

    now = utcnow()
    with _session(_settings(data_dir)) as session:
        page = token_service.list_tokens(org, page=PageRequest(limit=limit), session=session)
    if not page.items:
        typer.echo(f"no tokens registered for org '{org}'", err=True)
        return
    typer.echo(f"{'ID':<36}  {'STATE':<7}  {'EXPIRES (UTC)':<19}  {'CREATED BY':<10}  {'SCOPES':<40}  NAME")
    for row in page.items:
        state = "revoked" if row.revoked_at is not None else "expired" if row.expires_at <= now else "active"
        expires = row.expires_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{row.id:<36}  {state:<7}  {expires:<19}  {row.created_by:<10}  {row.scopes:<40}  {row.name}"
        )
    if page.next_cursor is not None:
        typer.echo("... more (--limit, at most 1000)", err=True)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        str, typer.Argument(metavar="ID", help="The token's id (its `jti`), as `token list` shows.")
    ],
    data_dir: DataDir = None,
) -> None:
    """Revoke a registered token; servers refuse it within GUESTGATE_API_TOKEN_REVOCATION_SECONDS.

    Revoking a revoked token changes nothing. Exits 1 if no token has this id.
    """
    from guestgate.api_tokens import service as token_service
    from guestgate.db import utcnow

    settings = _settings(data_dir)
    with _session(settings) as session:
        row = token_service.find(token_id, session=session)
        if row is None:
            typer.echo(
                f"guestgate: no API token '{token_id}' in {startup.display_url(settings.resolved_database_url)}",
                err=True,
            )
            raise typer.Exit(startup.ExitCode.FAILED)
        already = row.revoked_at is not None
        token_service.revoke(row.id, org_id=row.org_id, session=session, now=utcnow())
        org, name = row.org_id, row.name
    verb = "was already revoked" if already else "revoked"
    typer.echo(
        f"token {token_id} ('{name}', org '{org}') {verb}; servers refuse it within "
        f"{settings.api_token_revocation_seconds:g} s"
    )


@token_app.command("inspect")
def token_inspect(
    token: Annotated[str, typer.Argument(help="The token, or - to read it from standard input.")],
    data_dir: DataDir = None,
) -> None:
    """Show a token's claims, its validity, and whether this data directory's key verifies it.

    Nothing is created: a data directory without secrets is reported as such. Exits 0 if a server
    with these settings accepts the token, 1 if it does not.
    """
    from guestgate import token_report

    if token == "-":  # noqa: S105  (the conventional "read standard input", not a password)
        token = sys.stdin.readline().strip()
    settings = _settings(data_dir, create_secrets=False)
    lines, accepted = token_report.inspect(token.removeprefix("Bearer ").strip(), settings)
    typer.echo("\n".join(lines))
    raise typer.Exit(startup.ExitCode.OK if accepted else startup.ExitCode.FAILED)


@org_app.command("list")
def org_list(
    limit: Annotated[int, typer.Option(help="Show at most this many orgs.", min=1, max=100_000)] = 1000,
    data_dir: DataDir = None,
) -> None:
    """List the orgs of this database with their instance and site counts."""
    from guestgate.orgs import service as org_service

    with _session(_settings(data_dir)) as session:
        orgs = org_service.summaries(limit=limit, session=session)
        total = org_service.count(session=session)
    if not orgs:
        typer.echo("no orgs yet: `guestgate token create --org ORG --create-org` makes one", err=True)
        return
    width = max(len("ORG"), *(len(o.id) for o in orgs))
    typer.echo(f"{'ORG':<{width}}  {'CREATED (UTC)':<20}  {'INSTANCES':>9}  {'SITES':>5}")
    for item in orgs:
        created = item.created_at.strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{item.id:<{width}}  {created:<20}  {item.instances:>9}  {item.sites:>5}")
    if total > len(orgs):
        typer.echo(f"... {total - len(orgs)} more (--limit)", err=True)


@user_app.command("create")
def user_create(
    org: Annotated[str, typer.Option(help="The org the user joins (created if new).")],
    email: Annotated[str, typer.Option(help="The user's e-mail address (their login).")],
    role: Annotated[str, typer.Option(help="owner, admin, viewer or front-desk.")] = "owner",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input instead of printing a link.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Give a person a role in an org of the console; prints a one-time set-password link for a new user."""
    from guestgate.console import service as console_service
    from guestgate.db import utcnow
    from guestgate.errors import GuestgateError

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    settings = _settings(data_dir)
    with _session(settings) as session:
        try:
            invited = console_service.add_member(
                org_id=org, email=email, role=role, now=utcnow(), settings=settings, session=session, password=password
            )
        except GuestgateError as error:
            typer.echo(f"error: {error.message}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{invited.user.email} is {role} of {org}")
    if invited.invite_token is not None:
        typer.echo(
            f"set-password link (once, valid {settings.console_invite_hours} h): "
            f"{settings.public_url}/console/set-password/{invited.invite_token}"
        )


def _duration(text: str | int, *, minimum: int) -> int:
    from guestgate.durations import DurationError, parse_duration

    if isinstance(text, int):  # the option's default, handed to the parser as it is
        return text
    try:
        return parse_duration(text, minimum=minimum)
    except DurationError as exc:
        raise typer.BadParameter(str(exc)) from None


def _unknown_org(org: str, settings: Settings, *, session: Session) -> str:
    from guestgate.orgs import service as org_service

    near = org_service.near(org, session=session)
    where = startup.display_url(settings.resolved_database_url)
    hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
    return (
        f"guestgate: no org '{org}' in {where}: {hint}pass --create-org to create it "
        "(`guestgate org list` shows the orgs)."
    )


@app.command()
def doctor(data_dir: DataDir = None) -> None:
    """Name stored settings that the current rules refuse (exit 1 if there are any)."""
    from guestgate.doctor import diagnose
    from guestgate.runtime import Runtime

    settings = _settings(data_dir)
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
    raise typer.Exit(startup.ExitCode.FAILED)


@gateway_app.command("apply")
def gateway_apply(
    site_id: Annotated[str, typer.Argument(help="The site (nftables driver).")], data_dir: DataDir = None
) -> None:
    """Install or repair the site's nft table on this host, with its active guests and walled garden."""
    from guestgate.db import utcnow
    from guestgate.errors import NotFound
    from guestgate.gateways import service as gateway_service
    from guestgate.gateways.base import GatewayError
    from guestgate.runtime import Runtime

    settings = _settings(data_dir)
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
        str | None,
        typer.Option(
            metavar="USER", help="RouterOS user guestgate logs in as (default: the site's username)."
        ),
    ] = None,
    controller_address: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Only this address (or CIDR) may log in as the API user."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Print the RouterOS commands (.rsc) that prepare the site's router for guestgate."""
    from guestgate.errors import NotFound
    from guestgate.gateways import service as gateway_service
    from guestgate.gateways.base import GatewayError
    from guestgate.runtime import Runtime

    settings = _settings(data_dir)
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


@gateway_app.command("dnsmasq")
def gateway_dnsmasq(
    site_id: Annotated[str, typer.Argument(help="The site (nftables or agent driver).")],
    data_dir: DataDir = None,
) -> None:
    """Print the dnsmasq lines (`nftset=`) that let the site's wildcard walled-garden names through."""
    from guestgate.errors import NotFound
    from guestgate.gateways.base import GatewayError
    from guestgate.walled_garden import dnsmasq

    settings = _settings(data_dir)
    try:
        with _session(settings) as session:
            config = dnsmasq.site_config(site_id, session=session)
    except (NotFound, GatewayError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(startup.ExitCode.FAILED) from exc
    sys.stdout.write(config)


@gateway_app.command("agent-key")
def gateway_agent_key(
    site_id: Annotated[str, typer.Argument(help="The site (agent driver).")], data_dir: DataDir = None
) -> None:
    """Print the site's current agent key (derived from the signing key and, once rotated, the site's salt)."""
    from guestgate.audit import service as audit_service
    from guestgate.errors import NotFound
    from guestgate.gateways import service as gateway_service
    from guestgate.gateways.agent import agent_keys
    from guestgate.runtime import Runtime

    settings = _settings(data_dir)
    _migrate(settings)
    runtime = Runtime.build(settings)
    try:
        with runtime.sessions() as session:
            site = gateway_service.find_site(site_id, session=session)
            driver = site.gateway_driver
            salt = site.agent_key_salt
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
    typer.echo(agent_keys(settings, site_id, salt)[0])


@gateway_app.command("entry-url")
def gateway_entry_url(
    site_id: Annotated[str, typer.Argument(help="The site.")],
    ip: Annotated[str, typer.Option(help="The guest's address, e.g. 10.10.0.5 (inside the site's subnets).")],
    mac: Annotated[str | None, typer.Option(help="The guest's MAC address, if the gateway knows it.")] = None,
    orig: Annotated[str | None, typer.Option(metavar="URL", help="The page the guest asked for.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Print the signed portal URL a gateway sends the guest at --ip to: open it to see the portal as that guest.

    The URL is valid for GUESTGATE_PORTAL_ENTRY_MAX_AGE_SECONDS; codes redeemed through it start real
    sessions for that address.
    """
    import ipaddress
    from urllib.parse import urlencode

    from guestgate.db import utcnow
    from guestgate.errors import NotFound
    from guestgate.gateways import service as gateway_service
    from guestgate.portal.entry_signing import entry_query

    try:
        address = str(ipaddress.ip_address(ip.strip()))
    except ValueError:
        raise typer.BadParameter(f"'{ip}' is not an IP address", param_hint="--ip") from None
    settings = _settings(data_dir)
    try:
        with _session(settings) as session:
            site_id = gateway_service.find_site(site_id, session=session).id
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(startup.ExitCode.FAILED) from exc
    query = entry_query(settings, site_id=site_id, ip=address, mac=mac, orig=orig, now=utcnow())
    typer.echo(f"{settings.public_url}/guest/entry?{urlencode(query)}")


@app.command()
def agent(
    controller: Annotated[
        str, typer.Option(metavar="URL", help="The controller's base URL (its GUESTGATE_PUBLIC_URL).")
    ],
    site: Annotated[str, typer.Option(metavar="SITE_ID", help="The site this gateway enforces.")],
    key: Annotated[
        str,
        typer.Option(
            envvar="GUESTGATE_AGENT_KEY",
            metavar="KEY",
            help="The site's agent key (`guestgate gateway agent-key`).",
        ),
    ],
    netns: Annotated[
        str | None, typer.Option(metavar="NS", help="Network namespace to apply the rules in.")
    ] = None,
    interface: Annotated[
        str | None, typer.Option(metavar="IFACE", help="Guest interface (default: the site's setting).")
    ] = None,
    portal_address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS", help="Where web traffic of guests not signed in goes (default: the site's)."
        ),
    ] = None,
    portal_port: Annotated[
        int | None,
        typer.Option(metavar="PORT", help="The portal's port (default: the site's).", min=1, max=65535),
    ] = None,
    table: Annotated[
        str | None, typer.Option(metavar="NAME", help="nft table name (default: the site's, or guestgate).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            help="Long-poll wait in seconds (the table is re-checked as often).",
            min=1,
            max=60,
        ),
    ] = 25.0,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="debug, info, warning or error.")] = "info",
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
        f"  Database:              {startup.display_url(settings.resolved_database_url)}",
        f"  Data directory:        {settings.data_dir.resolve()}",
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


def main() -> None:
    """Entry point of the `guestgate` console script."""
    app()
