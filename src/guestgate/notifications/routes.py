"""HTTP routes of notification groups [extension]."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from guestgate.deps import PageDep, Reader, RuntimeDep, SessionDep, Writer, set_next_link
from guestgate.notifications import service
from guestgate.notifications.schemas import NotificationGroup, NotificationGroupIn
from guestgate.openapi import errors

router = APIRouter(prefix="/captive/notification-groups", tags=["Notification Groups"])
GroupId = Annotated[
    str,
    Path(
        alias="groupId",
        description="The unique identifier for the notification group.",
        examples=["ng_a1b2c3d4e5f6"],
    ),
]


@router.get(
    "",
    operation_id="listNotificationGroups",
    summary="List notification groups",
    responses=errors(401, 403),
)
def list_notification_groups(
    request: Request, response: Response, who: Reader, session: SessionDep, page: PageDep
) -> list[NotificationGroup]:
    """Lists the notification groups of your organisation, newest first."""
    result = service.list_groups(org_id=who.org_id, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(group) for group in result.items]


@router.post(
    "",
    status_code=201,
    operation_id="createNotificationGroup",
    summary="Create a notification group",
    responses=errors(400, 401, 403),
)
def create_notification_group(
    body: NotificationGroupIn, who: Writer, session: SessionDep, runtime: RuntimeDep
) -> NotificationGroup:
    """Creates a group of e-mail addresses and webhooks that coupon schedules deliver batches to."""
    group = service.create(
        body, org_id=who.org_id, box=runtime.box, outbound=runtime.outbound, session=session
    )
    return service.to_out(group)


@router.get(
    "/{groupId}",
    operation_id="getNotificationGroup",
    summary="Retrieve a notification group",
    responses=errors(401, 403, 404),
)
def get_notification_group(group_id: GroupId, who: Reader, session: SessionDep) -> NotificationGroup:
    """Retrieves a notification group; webhook secrets are never returned."""
    return service.to_out(service.get(group_id, org_id=who.org_id, session=session))


@router.put(
    "/{groupId}",
    operation_id="updateNotificationGroup",
    summary="Update a notification group",
    responses=errors(400, 401, 403, 404),
)
def update_notification_group(
    group_id: GroupId, body: NotificationGroupIn, who: Writer, session: SessionDep, runtime: RuntimeDep
) -> NotificationGroup:
    """Replaces a notification group; an omitted webhook secret keeps the stored one of that URL."""
    group = service.replace(
        group_id, body, org_id=who.org_id, box=runtime.box, outbound=runtime.outbound, session=session
    )
    return service.to_out(group)


@router.delete(
    "/{groupId}",
    status_code=204,
    operation_id="deleteNotificationGroup",
    summary="Delete a notification group",
    responses=errors(401, 403, 404, 409),
)
def delete_notification_group(group_id: GroupId, who: Writer, session: SessionDep) -> Response:
    """Deletes a notification group; refused while a coupon schedule sends to it."""
    service.delete(group_id, org_id=who.org_id, session=session)
    return Response(status_code=204)
