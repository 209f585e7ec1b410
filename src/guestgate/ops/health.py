"""Health checks: liveness (the process answers) and readiness (the database, and the gateways' state).

Neither needs a token, so neither reveals anything about a tenant: readiness counts sites by
gateway state across the deployment and names no site, org, address or error text.
"""

from __future__ import annotations

from sqlalchemy import func, select

from guestgate.gateways.metrics import STATES
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from guestgate.sites.service import reported_state

# A database slower than this to count the sites by gateway state is not ready.
READY_TIMEOUT_SECONDS = 3.0


def gateway_counts(runtime: Runtime) -> dict[str, int]:
    """How many sites' gateways are in each state (`none` drivers count as `not_enforcing`)."""
    counts = dict.fromkeys(STATES, 0)
    with runtime.engine.connect() as connection:
        rows = connection.execute(
            select(Site.gateway_driver, Site.gateway_status, func.count()).group_by(
                Site.gateway_driver, Site.gateway_status
            )
        )
        for driver, state, count in rows:
            reported = reported_state(driver, state)
            counts[reported if reported in counts else "unknown"] += int(count)
    return counts
