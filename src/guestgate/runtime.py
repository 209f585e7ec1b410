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
from guestgate.outbound import OutboundPolicy
from guestgate.security import SecretBox, TokenVerifier, UrlSigner

if TYPE_CHECKING:
    from guestgate.api_tokens.revocation import RevocationCache
    from guestgate.gateways.bus import AgentBus
    from guestgate.gateways.policy import GatewayRules
    from guestgate.gateways.registry import GatewayPool
    from guestgate.walled_garden.resolver import GardenResolver


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
    # Where connections a tenant's settings aim (RouterOS, webhooks) may go; tests swap its resolver.
    outbound: OutboundPolicy
    # Set when the process is told to stop (SIGTERM): long-polls answer at once and the
    # schedule runner stops claiming new work, so in-flight requests and jobs end soon.
    draining: threading.Event = field(default_factory=threading.Event, repr=False)
    # Which API token ids (`jti`) are still accepted, remembered in memory; also `verifier.revocations`.
    revocations: RevocationCache | None = field(default=None, repr=False)
    # One driver per site (connections kept), shared by the portal, the operator routes and the
    # reconciler; built on first use so processes that never touch a gateway never load drivers.
    _gateways: GatewayPool | None = field(default=None, repr=False)
    _bus: AgentBus | None = field(default=None, repr=False)
    _garden_resolver: GardenResolver | None = field(default=None, repr=False)

    @property
    def garden_resolver(self) -> GardenResolver:
        """Resolves walled-garden host names with their TTL (one cache per process)."""
        if self._garden_resolver is None:
            from guestgate.walled_garden.resolver import GardenResolver, dns_query

            servers = [s.strip() for s in self.settings.garden_nameservers.split(",") if s.strip()]
            with _POOL_LOCK:
                if self._garden_resolver is None:
                    self._garden_resolver = GardenResolver(self.outbound, query=dns_query(servers))
        return self._garden_resolver

    @property
    def gateways(self) -> GatewayPool:
        """The process's gateway drivers."""
        if self._gateways is None:
            from guestgate.gateways.registry import GatewayPool

            with _POOL_LOCK:
                if self._gateways is None:
                    self._gateways = GatewayPool(
                        box=self.box, default_portal_port=self.settings.port, outbound=self.outbound
                    )
                    if self.engine.dialect.name == "postgresql":
                        from guestgate.gateways.bus import AgentBus

                        # Every process publishes its agent-site changes; `serve` also listens.
                        self._bus = AgentBus(self.engine, self._gateways.agents)
        return self._gateways

    @property
    def gateway_rules(self) -> GatewayRules:
        """The deployment's rules for sites' gateway settings (nftables places, outbound policy)."""
        from guestgate.gateways.policy import GatewayRules

        return GatewayRules(nftables_allow=self.settings.nftables_allow, outbound=self.outbound)

    def listen_for_agent_changes(self) -> None:
        """Apply agent-site changes made by other processes to this one's feed (PostgreSQL only)."""
        self.gateways  # noqa: B018  (builds the pool and, on PostgreSQL, the bus)
        if self._bus is not None:
            self._bus.start()

    @property
    def agent_changes_shared(self) -> bool:
        """True when other processes' agent-site changes reach this process at once."""
        return self._bus is not None and self._bus.listening

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Connect to the database and load the keys."""
        from guestgate.api_tokens.revocation import RevocationCache

        engine = make_engine(settings.resolved_database_url)
        sessions = make_sessionmaker(engine)
        verifier = TokenVerifier(settings)
        revocations = RevocationCache(sessions, ttl_seconds=settings.api_token_revocation_seconds)
        verifier.revocations = revocations
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            signer=UrlSigner(settings),
            box=SecretBox(settings),
            verifier=verifier,
            outbound=OutboundPolicy.from_settings(
                settings.outbound_allow_networks, settings.outbound_gateway_networks
            ),
            revocations=revocations,
        )

    def close(self) -> None:
        """Release the gateway connections and the database connections."""
        if self._bus is not None:
            self._bus.stop()
        if self._gateways is not None:
            self._gateways.close()
        self.engine.dispose()
