"""Notification groups [extension]: CRUD with webhook secrets sealed at rest.

Webhook URLs are tenant-aimed outbound destinations: each must pass the outbound policy
(`guestgate.outbound`, purpose `webhook`) when it is saved, and again when a delivery connects.
A secret follows its URL: an omitted secret keeps the stored one of that same URL only.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate import references
from guestgate.audit import service as audit_service
from guestgate.errors import NotFound
from guestgate.notifications.models import NotificationGroup
from guestgate.notifications.schemas import NotificationGroup as NotificationGroupOut
from guestgate.notifications.schemas import NotificationGroupIn, Webhook, WebhookIn
from guestgate.orgs import service as org_service
from guestgate.outbound import OutboundPolicy, secret_for_destination
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.schedules.models import CouponSchedule
from guestgate.security import SecretBox
from guestgate.tenancy import get_owned

GROUP_ID = re.compile(r"ng_[0-9a-f]{12}")
URL_CHANGED = "a stored secret is only used for the URL it was given with"


def new_group_id() -> str:
    """A fresh group id: `ng_` and 12 lowercase hex characters from a CSPRNG."""
    return "ng_" + secrets.token_hex(6)


def get(group_id: str, *, org_id: str, session: Session) -> NotificationGroup:
    """The org's notification group, or NotFound (also for ids not of the `ng_` form)."""
    if not GROUP_ID.fullmatch(group_id):
        raise NotFound("notification group", group_id)
    return get_owned(session, NotificationGroup, group_id, org_id, resource="notification group")


def list_groups(*, org_id: str, page: PageRequest, session: Session) -> Page[NotificationGroup]:
    """The org's notification groups, newest first."""
    stmt = select(NotificationGroup).where(NotificationGroup.org_id == org_id)
    return fetch_page(session, stmt, page, NotificationGroup.created_at, NotificationGroup.id)


def create(
    data: NotificationGroupIn, *, org_id: str, box: SecretBox, outbound: OutboundPolicy, session: Session
) -> NotificationGroup:
    """Create a group; every webhook needs a secret, stored sealed, and a URL the policy allows."""
    webhooks = _seal_webhooks(data.webhooks or [], stored={}, box=box, outbound=outbound)
    org_service.ensure(org_id, session=session)
    group_id = new_group_id()
    # 48 random bits make a clash all but impossible; checking keeps it from ever being a 500.
    while session.get(NotificationGroup, group_id) is not None:
        group_id = new_group_id()
    group = NotificationGroup(
        id=group_id, org_id=org_id, name=data.name, emails=list(data.emails or []), webhooks=webhooks
    )
    session.add(group)
    _audit(group, "notification_group.create", session=session)
    session.commit()
    return group


def replace(
    group_id: str,
    data: NotificationGroupIn,
    *,
    org_id: str,
    box: SecretBox,
    outbound: OutboundPolicy,
    session: Session,
) -> NotificationGroup:
    """Replace a group; omitted lists are kept, an omitted secret keeps the stored one of the same URL."""
    group = get(group_id, org_id=org_id, session=session)
    if data.webhooks is not None:
        stored = {hook["url"]: hook["secret_sealed"] for hook in group.webhooks or []}
        group.webhooks = _seal_webhooks(data.webhooks, stored=stored, box=box, outbound=outbound)
    if data.emails is not None:
        group.emails = list(data.emails)
    group.name = data.name
    _audit(group, "notification_group.update", session=session)
    session.commit()
    return group


def delete(group_id: str, *, org_id: str, session: Session) -> None:
    """Delete a group; refused (Conflict) while a coupon schedule sends to it."""
    group = get(group_id, org_id=org_id, session=session)
    users = (
        select(CouponSchedule.id, CouponSchedule.name)
        .where(CouponSchedule.notification_group_id == group.id)
        .order_by(CouponSchedule.created_at, CouponSchedule.id)
    )
    # Committed with the deletion, rolled back with it when a schedule still sends to the group.
    _audit(group, "notification_group.delete", session=session)
    references.delete_unless_used(
        group, users=users, what="notification group", user_kind="coupon schedule", session=session
    )


def _audit(group: NotificationGroup, action: str, *, session: Session) -> None:
    # Addresses and webhook URLs are counted, not listed: a webhook URL may carry a credential.
    audit_service.record(
        session,
        org_id=group.org_id,
        action=action,
        target_type="notification_group",
        target_id=group.id,
        detail={"name": group.name, "emails": len(group.emails or []), "webhooks": len(group.webhooks or [])},
    )


def webhook_targets(group: NotificationGroup, *, box: SecretBox) -> list[tuple[str, str]]:
    """The group's webhooks as (url, plaintext signing secret), for delivery."""
    return [(hook["url"], box.open(hook["secret_sealed"])) for hook in group.webhooks or []]


def to_out(group: NotificationGroup) -> NotificationGroupOut:
    """The API representation; webhook secrets are reported only as set or not."""
    return NotificationGroupOut(
        id=group.id,
        name=group.name,
        emails=list(group.emails or []),
        webhooks=[
            Webhook(url=hook["url"], secret_set=bool(hook.get("secret_sealed")))
            for hook in group.webhooks or []
        ],
        created_at=group.created_at,
    )


def _seal_webhooks(
    hooks: list[WebhookIn], *, stored: dict[str, str], box: SecretBox, outbound: OutboundPolicy
) -> list[dict[str, Any]]:
    sealed: list[dict[str, Any]] = []
    for i, hook in enumerate(hooks):
        outbound.check_url(hook.url, purpose="webhook", parameter=f"webhooks[{i}].url")
        secret_sealed = secret_for_destination(
            hook.url,
            given=box.seal(hook.secret.get_secret_value()) if hook.secret is not None else None,
            stored=stored,
            parameter=f"webhooks[{i}].secret",
            reason=URL_CHANGED,
        )
        sealed.append({"url": hook.url, "secret_sealed": secret_sealed})
    return sealed
