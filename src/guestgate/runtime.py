"""What a running process holds: settings, database, keys. Built once by `serve`, `worker` or tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import guestgate.models  # noqa: F401  (every table registered: foreign keys resolve in any process)
from guestgate.config import Settings
from guestgate.db import make_engine, make_sessionmaker
from guestgate.security import SecretBox, TokenVerifier, UrlSigner

if TYPE_CHECKING:
    from guestgate.gateways.registry import GatewayPool


_POOL_LOCK = threading.Lock()


@dataclass
class Runtime:
    """The process-wide objects every use case needs."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    signer: UrlSigner
    box: SecretBox
    verifier: TokenVerifier
    # One driver per site (connections kept), shared by the portal, the operator routes and the
    # reconciler; built on first use so processes that never touch a gateway never load drivers.
    _gateways: GatewayPool | None = field(default=None, repr=False)

    @property
    def gateways(self) -> GatewayPool:
        """The process's gateway drivers."""
        if self._gateways is None:
            from guestgate.gateways.registry import GatewayPool

            with _POOL_LOCK:
                if self._gateways is None:
                    self._gateways = GatewayPool(box=self.box, default_portal_port=self.settings.port)
        return self._gateways

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Connect to the database and load the keys."""
        engine = make_engine(settings.resolved_database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            signer=UrlSigner(settings),
            box=SecretBox(settings),
            verifier=TokenVerifier(settings),
        )

    def close(self) -> None:
        """Release the gateway connections and the database connections."""
        if self._gateways is not None:
            self._gateways.close()
        self.engine.dispose()
