"""What a `guestgate` command checks before it starts work, and the exit codes it reports.

Every failure here is a `StartupError`: one or two lines naming the setting or the path and what
to do, and an `ExitCode` (the table in the README). The CLI prints the message and exits with the
code; nothing here prints or exits itself.

    ExitCode
    ├── OK        0  done
    ├── FAILED    1  the command ran but could not do what was asked (unknown site or org, ...)
    ├── USAGE     2  the command line is wrong (unknown option, bad value)
    ├── CONFIG    3  a GUESTGATE_* setting is invalid, or a required secret is missing or weak
    ├── DATA_DIR  4  the data directory or the SQLite file cannot be created, read or written
    ├── DATABASE  5  the database cannot be reached or migrated
    └── ADDRESS   6  the listen address is in use, not on this machine, or needs privileges
"""

from __future__ import annotations

import errno
import os
import socket
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from guestgate.config import DATA_DIR_WHAT, ConfigError, DataDirUnusable, Settings, ensure_directory

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


class ExitCode(IntEnum):
    """The exit status of a `guestgate` command."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CONFIG = 3
    DATA_DIR = 4
    DATABASE = 5
    ADDRESS = 6


# What each code means, as the README's table shows it (tests/core/test_startup.py compares them).
EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.FAILED: "the command ran but could not do what was asked (an unknown site or org, a gateway "
    "that refused, a token that does not verify)",
    ExitCode.USAGE: "the command line is wrong (an unknown option, a value of the wrong form)",
    ExitCode.CONFIG: "a `GUESTGATE_*` setting has a value guestgate cannot use, or a required secret is "
    "missing or weak",
    ExitCode.DATA_DIR: "the data directory or the SQLite database file cannot be created, read or written",
    ExitCode.DATABASE: "the database cannot be reached, opened or migrated",
    ExitCode.ADDRESS: "the listen address is in use, not an address of this machine, or needs privileges",
}


class StartupError(Exception):
    """A command cannot start; `message` says what and what to do, `code` is the exit status."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def exit_code_of(error: Exception) -> ExitCode:
    """The exit status for a start-up error or a configuration error."""
    if isinstance(error, StartupError):
        return error.code
    if isinstance(error, DataDirUnusable):
        return ExitCode.DATA_DIR
    if isinstance(error, ConfigError):
        return ExitCode.CONFIG
    return ExitCode.FAILED


def display_url(url: str) -> str:
    """A database URL as it may be shown: the password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def prepare_storage(settings: Settings, *, outbox: bool = False) -> None:
    """The data directory exists and is writable, and so is a SQLite database's directory.

    `outbox`: the process writes e-mails there while no SMTP server is configured.
    """
    try:
        ensure_directory(settings.data_dir, what=DATA_DIR_WHAT)
        path = sqlite_path(settings)
        if path is not None:
            ensure_directory(path.parent, what="The directory of the SQLite database (GUESTGATE_DATABASE_URL)")
            if path.is_dir():
                raise DataDirUnusable(
                    f"The SQLite database {path} is a directory: point GUESTGATE_DATABASE_URL (or the "
                    "data directory) at a file."
                )
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                raise DataDirUnusable(
                    f"The SQLite database {path} cannot be read and written by this user: fix its "
                    "owner or permissions."
                )
        if outbox and settings.smtp_host is None:
            ensure_directory(
                settings.outbox_dir, what="The e-mail outbox (<data dir>/outbox, used while GUESTGATE_SMTP_HOST is unset)"
            )
    except DataDirUnusable as exc:
        raise StartupError(str(exc), ExitCode.DATA_DIR) from None


def sqlite_path(settings: Settings) -> Path | None:
    """The file of a SQLite database URL (None for PostgreSQL or an in-memory database)."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return None
    database = _parse_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database).resolve()


def migrate(settings: Settings) -> None:
    """Bring the database up to the latest schema (creating a SQLite file), or StartupError naming it."""
    from alembic.util.exc import CommandError
    from sqlalchemy import exc as sa_exc

    from guestgate.db import make_engine
    from guestgate.migrate import upgrade

    prepare_storage(settings)
    url = settings.resolved_database_url
    _parse_url(url)
    try:
        engine = make_engine(url)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as exc:
        raise StartupError(
            f"GUESTGATE_DATABASE_URL={display_url(url)} cannot be used ({_first_line(exc)}): use "
            "sqlite:///<path> or postgresql+psycopg://user@host/db.",
            ExitCode.CONFIG,
        ) from None
    try:
        upgrade(engine)
    except sa_exc.DBAPIError as exc:
        raise StartupError(
            f"The database {display_url(url)} cannot be used: {_first_line(exc.orig)}. {_database_hint(url)}",
            ExitCode.DATABASE,
        ) from None
    except CommandError as exc:
        raise StartupError(
            f"The database {display_url(url)} cannot be migrated: {_first_line(exc)} (was it migrated by a "
            "newer guestgate? Run that version, or restore a backup).",
            ExitCode.DATABASE,
        ) from None
    finally:
        engine.dispose()


def bind(
    host: str, port: int, *, host_setting: str = "--host or GUESTGATE_HOST", port_setting: str = "--port or GUESTGATE_PORT"
) -> socket.socket:
    """The listening socket, bound now: a busy or foreign address fails before any other work starts."""
    if not 0 <= port <= 65535:
        raise StartupError(
            f"The port {port} ({port_setting}) must be between 1 and 65535 (0 picks a free one).", ExitCode.CONFIG
        )
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As uvicorn binds: a restart may reuse the port while old connections linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(_bind_problem(exc, where, host, host_setting, port_setting), ExitCode.ADDRESS) from None
    return sock


def _bind_problem(exc: OSError, where: str, host: str, host_setting: str, port_setting: str) -> str:
    if isinstance(exc, socket.gaierror):
        return f"The listen address '{host}' ({host_setting}) is not a name or address this machine resolves."
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where} is already in use (another guestgate?): stop that process or choose another port "
            f"({port_setting})."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine ({host_setting}): use one of its addresses or 0.0.0.0."
    if exc.errno == errno.EACCES:
        return (
            f"Listening on {where} needs privileges: choose a port above 1023 ({port_setting}), or grant "
            "CAP_NET_BIND_SERVICE."
        )
    return f"Cannot listen on {where} ({host_setting}, {port_setting}): {exc.strerror or exc}."


def _parse_url(url: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        raise StartupError(
            "GUESTGATE_DATABASE_URL is not a database URL: use sqlite:///<path> or "
            "postgresql+psycopg://user@host/db.",
            ExitCode.CONFIG,
        ) from None


def _database_hint(url: str) -> str:
    if url.startswith("sqlite"):
        return "Check that the file is a guestgate database and that its directory is writable."
    return "Check GUESTGATE_DATABASE_URL and that the server is running and lets this user in."


def _first_line(error: object) -> str:
    text = str(error).strip()
    return (text.splitlines() or [type(error).__name__])[0].rstrip(".")
