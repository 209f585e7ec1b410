"""Database engine, the declarative base and column types shared by every domain.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy timeout, so
several processes can share one file; PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from guestgate.errors import DatabaseUnavailable, GuestgateError, InsufficientStorage

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLITE_BUSY_TIMEOUT_MS = 10_000
# SQLite primary result codes of a database that is there but cannot be used right now.
_SQLITE_UNAVAILABLE = {
    5,  # SQLITE_BUSY: locked by another writer past the busy timeout
    6,  # SQLITE_LOCKED
    10,  # SQLITE_IOERR
    14,  # SQLITE_CANTOPEN
}
_SQLITE_FULL = 13
# The database holds every org's sessions, sealed secrets and audit log: owner only.
SQLITE_FILE_MODE = 0o600
# The files SQLite keeps beside the database (WAL mode, and a rollback journal while one is hot).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both databases (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONDoc(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())


class UUIDStr(TypeDecorator[str]):
    """A UUID kept as its lowercase 36-character string on both databases."""

    impl = String(36)
    cache_ok = True


def new_id() -> str:
    """A new random (v4) UUID as a lowercase string."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def libpq_conninfo(url: str | URL) -> str:
    """A PostgreSQL SQLAlchemy URL as psycopg's own connections take it (password included)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url` with the pragmas and pool settings guestgate relies on."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            protect_sqlite_files(database)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own BEGIN handling is off (see _sqlite_pragmas); jobs that must hold the write
        # lock from their first read use `immediate(engine)`, which begins with BEGIN IMMEDIATE.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


def protect_sqlite_files(path: str) -> None:
    """Make the SQLite database and its side files owner-only (0600), creating the database so.

    SQLite creates its `-wal` and `-shm` files with the database file's permissions, so a
    database that is 0600 from its first byte keeps them 0600 too; files left by an earlier
    version with a wider mode are narrowed here, at every start.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, SQLITE_FILE_MODE)
    except OSError:
        # Unwritable or missing directory: SQLite names the failure when it opens the file.
        return
    try:
        # Not ours to change (another owner): SQLite still opens it as before.
        with contextlib.suppress(OSError):
            os.fchmod(fd, SQLITE_FILE_MODE)
    finally:
        os.close(fd)
    for suffix in SQLITE_SIDE_FILES:
        with contextlib.suppress(OSError):  # absent, or not ours
            os.chmod(path + suffix, SQLITE_FILE_MODE)


def immediate(engine: Engine) -> Engine:
    """The same engine, but SQLite transactions take the write lock at BEGIN (no-op on PostgreSQL)."""
    return engine.execution_options(sqlite_immediate=True)


def _sqlite_begin(conn: Connection) -> None:
    immediate_lock = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate_lock else "BEGIN")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" listener issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """The session factory services receive their sessions from."""
    return sessionmaker(engine, expire_on_commit=False)


def fault_of(error: BaseException) -> GuestgateError | None:
    """The domain error for a database or disk failure that a retry can cure, else None (a bug).

    A database that is down, restarting or locked past the busy timeout is `DatabaseUnavailable`
    (503); a full disk, under the data directory, the temporary files or PostgreSQL's own, is
    `InsufficientStorage` (507). Schema or SQL errors are not faults of the environment: None.
    """
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return InsufficientStorage()
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return DatabaseUnavailable()
    driver_error = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if isinstance(driver_error, sqlite3.OperationalError):
        primary = getattr(driver_error, "sqlite_errorcode", 0) & 0xFF
        if primary == _SQLITE_FULL:
            return InsufficientStorage()
        return DatabaseUnavailable() if primary in _SQLITE_UNAVAILABLE else None
    if isinstance(driver_error, psycopg.errors.DiskFull):
        return InsufficientStorage()
    if isinstance(driver_error, psycopg.OperationalError):
        return DatabaseUnavailable()
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return DatabaseUnavailable()
    return None
