"""What a running process holds: settings, database, keys. Built once by `serve`, `worker` or tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import guestgate.models  # noqa: F401  (every table registered: foreign keys resolve in any process)
from guestgate.config import Settings
from guestgate.db import make_engine, make_sessionmaker
from guestgate.security import SecretBox, TokenVerifier, UrlSigner


@dataclass
class Runtime:
    """The process-wide objects every use case needs."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    signer: UrlSigner
    box: SecretBox
    verifier: TokenVerifier

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
        """Release the database connections."""
        self.engine.dispose()
