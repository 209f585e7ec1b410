"""Agent-site changes shared by every process on one PostgreSQL, over LISTEN/NOTIFY.

With several `serve` replicas an agent long-polls one of them, while the change it waits for (a
sign-in, a disconnect, a walled-garden edit, an OAuth auth window) may be made on another
replica or in a worker. Each process's `AgentFeed` publishes its changes on the channel
`guestgate_agents`; every `serve` process listens and applies them to its own feed, so:

- a long-poll wakes within milliseconds whichever process made the change, and
- every replica holds the same auth windows (the opener's `until` travels with the message), so
  an agent gets the same state, and the same version, from any replica. A process that starts
  listening (a replica started or restarted during a rolling upgrade) asks the others for the
  windows still open, and they send them again.

A listener that loses its connection reconnects and then wakes every poll once, so a
notification missed meanwhile costs one re-read, never a lost change. SQLite deployments (one
host) have no bus; their polls re-read the database every second instead.
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from guestgate.db import libpq_conninfo
from guestgate.gateways.agent import AgentFeed, FeedChange

log = structlog.get_logger(__name__)
CHANNEL = "guestgate_agents"
RECONNECT_SECONDS = 1.0
# How long one wait for notifications lasts before the listener checks whether it must stop.
_WAIT_SECONDS = 0.5


class AgentBus:
    """Publishes this process's agent-site changes and, once started, applies everyone else's."""

    def __init__(self, engine: Engine, feed: AgentFeed) -> None:
        self._engine = engine
        self._feed = feed
        self._dsn = libpq_conninfo(engine.url)
        # Messages carry their sender, so a process does not apply its own changes twice.
        self._origin = secrets.token_hex(8)
        # A channel only this listener hears: `stop` notifies it to end the wait at once.
        self._wake_channel = f"{CHANNEL}_stop_{self._origin}"
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None
        feed.publish = self.publish

    @property
    def listening(self) -> bool:
        """True while the listener holds its connection and receives changes."""
        return self._listening.is_set()

    def publish(self, change: FeedChange) -> None:
        """Tell every other process about `change`; a failure is logged (polls re-read on their own)."""
        self._notify(encode(change, origin=self._origin), site_id=change.site_id)

    def _notify(self, payload: str, *, site_id: str | None = None, channel: str = CHANNEL) -> None:
        try:
            with self._engine.connect() as conn:
                conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
                )
                conn.commit()
        except SQLAlchemyError as exc:
            log.warning("agent_bus.publish_failed", site_id=site_id, error=str(exc))

    def start(self) -> None:
        """Start listening in a background thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="guestgate-agent-bus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the connection (at once: the listener's wait is woken)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            if self._listening.is_set():
                self._notify("", channel=self._wake_channel)
            thread.join(timeout=5)

    def wait_listening(self, timeout: float) -> bool:
        """Wait until the listener is connected; True if it is."""
        return self._listening.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {self._wake_channel}")
                    self._listening.set()
                    # Whatever was published while nobody listened is re-read by every poll,
                    # and the auth windows opened meanwhile are asked for.
                    self._feed.wake_all()
                    self._notify(encode_sync_request(origin=self._origin))
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_WAIT_SECONDS):
                            if note.channel == self._wake_channel:
                                break
                            self._apply(note.payload)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("agent_bus.listen_failed", error=str(exc))
            finally:
                self._listening.clear()
            self._stop.wait(RECONNECT_SECONDS)

    def _apply(self, payload: str) -> None:
        try:
            origin, change = decode(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("agent_bus.bad_message", payload=payload[:200])
            return
        if origin == self._origin:
            return
        if change is None:
            # A process that just started listening: send it the windows still open here.
            for window in self._feed.open_windows(now=datetime.now(UTC)):
                self.publish(window)
            return
        self._feed.receive(change)


def encode(change: FeedChange, *, origin: str) -> str:
    """The NOTIFY payload of a change."""
    message: dict[str, Any] = {"o": origin, "s": change.site_id}
    if change.window is not None:
        ip, until = change.window
        message["w"] = [ip, until.isoformat()]
    return json.dumps(message, separators=(",", ":"))


def encode_sync_request(*, origin: str) -> str:
    """The NOTIFY payload asking every other process for its open auth windows."""
    return json.dumps({"o": origin, "sync": True}, separators=(",", ":"))


def decode(payload: str) -> tuple[str, FeedChange | None]:
    """The sender and the change of a NOTIFY payload (None: a request for the open windows).

    ValueError, KeyError or TypeError if it is malformed.
    """
    message = json.loads(payload)
    origin = message["o"]
    if not isinstance(origin, str):
        raise TypeError("the origin must be a string")
    if message.get("sync") is True:
        return origin, None
    site_id = message["s"]
    if not isinstance(site_id, str):
        raise TypeError("the site must be a string")
    window = message.get("w")
    if window is None:
        return origin, FeedChange(site_id)
    ip, until = window
    if not isinstance(ip, str) or not isinstance(until, str):
        raise TypeError("a window is [ip, ISO time]")
    moment = datetime.fromisoformat(until)
    if moment.tzinfo is None:
        raise ValueError("a window's time must carry its offset")
    return origin, FeedChange(site_id, (ip, moment.astimezone(UTC)))
