"""`guestgate doctor`: stored settings that today's rules refuse, named with what is wrong.

Rules tighten (who may use the nftables driver, per-site nft tables, the outbound policy, the
subnet limits);
settings saved before keep working until they are edited, when the edit must follow the rules.
The doctor lists them so the deployment can act first: `guestgate doctor` prints them (exit 1
when there are any), and `guestgate serve` logs each one at start (`doctor.problem`). The rules
are the API's own (`gateways.policy`, `outbound`), so what the doctor names is exactly what an
edit would be refused for, with one exception by design: a RouterOS host, webhook URL or OIDC
issuer the outbound policy refuses does not keep working, since every connection is checked too.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from guestgate.auth_integrations.models import AuthIntegration
from guestgate.notifications.models import NotificationGroup
from guestgate.outbound import OutboundRefused
from guestgate.runtime import Runtime
from guestgate.sites import service as site_service
from guestgate.sites.models import Site

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Problem:
    """One stored setting a rule refuses."""

    kind: str
    id: str
    org_id: str
    parameter: str
    problem: str

    def line(self) -> str:
        """The problem as one line of text."""
        return f"{self.kind} {self.id} (org {self.org_id}): '{self.parameter}' {self.problem}"


def diagnose(runtime: Runtime) -> list[Problem]:
    """Every stored site, notification group and auth integration setting the current rules refuse."""
    rules = runtime.gateway_rules
    found: list[Problem] = []
    with runtime.sessions() as session:
        for site in session.scalars(select(Site).order_by(Site.created_at, Site.id)):
            config = dict(site.gateway_config or {})
            for finding in rules.findings(site.id, site.org_id, site.gateway_driver, config, session=session):
                found.append(Problem("site", site.id, site.org_id, finding.parameter, finding.problem))
        for org_id, site_id, what in site_service.over_limits(session=session):
            found.append(Problem("site", site_id, org_id, "subnets", f"is beyond today's limits: {what}"))
        groups = session.scalars(select(NotificationGroup).order_by(NotificationGroup.created_at))
        for group in groups:
            for i, hook in enumerate(group.webhooks or []):
                try:
                    runtime.outbound.vet_url(str(hook.get("url", "")), "webhook")
                except OutboundRefused as exc:
                    found.append(
                        Problem(
                            "notification_group",
                            group.id,
                            group.org_id,
                            f"webhooks[{i}].url",
                            f"is refused: {exc}",
                        )
                    )
        integrations = session.scalars(
            select(AuthIntegration)
            .where(AuthIntegration.issuer.is_not(None))
            .order_by(AuthIntegration.created_at, AuthIntegration.id)
        )
        for integration in integrations:
            try:
                runtime.outbound.vet_url(str(integration.issuer), "identity-provider")
            except OutboundRefused as exc:
                found.append(
                    Problem(
                        "auth_integration",
                        integration.id,
                        integration.org_id,
                        "config.issuer",
                        f"is refused: {exc}",
                    )
                )
    return found


def log_problems(runtime: Runtime) -> int:
    """Log every problem (at server start); returns how many. Never raises."""
    try:
        problems = diagnose(runtime)
    except SQLAlchemyError as exc:
        # The database is down at start: the server says so elsewhere; `guestgate doctor` can be run later.
        log.warning("doctor.failed", error=str(exc).splitlines()[0])
        return 0
    except Exception:
        log.exception("doctor.failed")
        return 0
    for problem in problems:
        log.warning(
            "doctor.problem",
            kind=problem.kind,
            id=problem.id,
            org_id=problem.org_id,
            parameter=problem.parameter,
            problem=problem.problem,
        )
    return len(problems)
