"""Console pages of notification groups: list, create/edit, delete, and "send test" per address or webhook.

Changes go through `notifications.service` with the API's `NotificationGroupIn` (the outbound
policy checks each webhook URL, a secret follows its URL); a test goes through the delivery
code (`delivery.send_test`), and its result is told in our words.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from guestgate.console.web import (
    PREFIX,
    ConsoleRoute,
    FormDep,
    Reader,
    Writer,
    field_errors,
    lines,
    optional,
    page_request,
    parse_model,
    redirect,
    render,
)
from guestgate.db import utcnow
from guestgate.deps import RuntimeDep, SessionDep
from guestgate.errors import GuestgateError, kind_of
from guestgate.notifications import delivery
from guestgate.notifications import service as group_service
from guestgate.notifications.models import NotificationGroup
from guestgate.notifications.schemas import MAX_WEBHOOKS, NotificationGroupIn

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
# Empty webhook rows the form offers below the stored ones (a URL cleared removes its webhook).
BLANK_ROWS = 2
ROWS = MAX_WEBHOOKS + BLANK_ROWS
FIELDS = frozenset(
    {"name", "emails", "webhooks"}
    | {f"webhooks[{i}].{part}" for i in range(ROWS) for part in ("url", "secret")}
)
_HOOK_PARAM = re.compile(r"^webhooks\[(\d+)\]")


def group_in(form: dict[str, str]) -> tuple[NotificationGroupIn, list[int]]:
    """The posted form as the API's model, and the form row of each webhook it lists."""
    hooks: list[dict[str, Any]] = []
    rows: list[int] = []
    for row in range(ROWS):
        url = optional(form, f"webhooks[{row}].url")
        if url is None:
            continue
        hook: dict[str, Any] = {"url": url}
        secret = form.get(f"webhooks[{row}].secret", "")
        if secret:
            hook["secret"] = secret
        hooks.append(hook)
        rows.append(row)
    data = {"name": form.get("name", ""), "emails": lines(form, "emails"), "webhooks": hooks}
    try:
        return parse_model(NotificationGroupIn, data), rows
    except GuestgateError as error:
        raise _at_row(error, rows) from None


def _at_row(error: GuestgateError, rows: list[int]) -> GuestgateError:
    # `webhooks[1].url` is the second webhook listed: the form row it came from may be another.
    param = getattr(error, "param", None)
    if not isinstance(param, str):
        return error
    found = _HOOK_PARAM.match(param)
    if found is not None and int(found.group(1)) < len(rows):
        moved = f"webhooks[{rows[int(found.group(1))]}]" + param[found.end() :]
        setattr(error, "param", moved)  # noqa: B010
        error.message = error.message.replace(f"'{param}'", f"'{moved}'")
    return error


def values_of(group: NotificationGroup) -> dict[str, str]:
    """A stored group as the form's values (never a secret)."""
    values = {"name": group.name, "emails": "\n".join(group.emails or [])}
    for row, hook in enumerate(group.webhooks or []):
        values[f"webhooks[{row}].url"] = hook["url"]
    return values


def _group_form(
    request: Request,
    *,
    group: NotificationGroup | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    result: delivery.TestOutcome | None = None,
) -> Response:
    used = max((row + 1 for row in range(ROWS) if values.get(f"webhooks[{row}].url")), default=0)
    stored = {hook["url"] for hook in (group.webhooks or [])} if group else set()
    return render(
        request,
        "group_form.html",
        {
            "group": group,
            "values": values,
            "errors": errors,
            "rows": min(ROWS, used + BLANK_ROWS),
            "stored": stored,
            "result": result,
        },
        status=status,
    )


@router.get("/notification-groups")
def groups_page(
    request: Request, who: Reader, session: SessionDep, cursor: Annotated[str | None, Query()] = None
) -> Response:
    """The org's notification groups, newest first."""
    page = group_service.list_groups(org_id=who.org_id, page=page_request(cursor), session=session)
    return render(request, "groups.html", {"page": page})


@router.get("/notification-groups/new")
def new_group(request: Request, who: Writer) -> Response:
    """The form to add a group."""
    return _group_form(request, group=None, values={}, errors={})


def _errors(
    request: Request,
    error: GuestgateError,
    session: Session,
    group: NotificationGroup | None,
    form: dict[str, str],
) -> Response:
    session.rollback()
    return _group_form(
        request,
        group=group,
        values={k: v for k, v in form.items() if not k.endswith(".secret")},
        errors=field_errors(error, fields=FIELDS),
        status=kind_of(error).status,
    )


@router.post("/notification-groups")
def create_group(
    request: Request, who: Writer, session: SessionDep, runtime: RuntimeDep, form: FormDep
) -> Response:
    """Add a group (as `POST /captive/notification-groups`); every new webhook needs its secret."""
    try:
        data, rows = group_in(form)
        try:
            group = group_service.create(
                data, org_id=who.org_id, box=runtime.box, outbound=runtime.outbound, session=session
            )
        except GuestgateError as error:
            raise _at_row(error, rows) from None
    except GuestgateError as error:
        return _errors(request, error, session, None, form)
    return redirect(f"{PREFIX}/notification-groups/{group.id}")


@router.get("/notification-groups/{group_id}")
def group_page(request: Request, group_id: str, who: Reader, session: SessionDep) -> Response:
    """A group: its addresses and webhooks, a test button for each."""
    group = group_service.get(group_id, org_id=who.org_id, session=session)
    return _group_form(request, group=group, values=values_of(group), errors={})


@router.post("/notification-groups/{group_id}")
def update_group(
    request: Request, group_id: str, who: Writer, session: SessionDep, runtime: RuntimeDep, form: FormDep
) -> Response:
    """Replace a group (as `PUT`); a blank secret keeps the stored one of the same URL."""
    group = group_service.get(group_id, org_id=who.org_id, session=session)
    try:
        data, rows = group_in(form)
        try:
            group_service.replace(
                group_id, data, org_id=who.org_id, box=runtime.box, outbound=runtime.outbound, session=session
            )
        except GuestgateError as error:
            raise _at_row(error, rows) from None
    except GuestgateError as error:
        return _errors(
            request, error, session, group_service.get(group_id, org_id=who.org_id, session=session), form
        )
    return redirect(f"{PREFIX}/notification-groups/{group.id}")


@router.post("/notification-groups/{group_id}/delete")
def delete_group(
    request: Request, group_id: str, who: Writer, session: SessionDep, _form: FormDep
) -> Response:
    """Delete a group; refused while a coupon schedule sends to it (told on the group's page)."""
    try:
        group_service.delete(group_id, org_id=who.org_id, session=session)
    except GuestgateError as error:
        session.rollback()
        group = group_service.get(group_id, org_id=who.org_id, session=session)
        return _group_form(
            request,
            group=group,
            values=values_of(group),
            errors=field_errors(error),
            status=kind_of(error).status,
        )
    return redirect(f"{PREFIX}/notification-groups")


@router.post("/notification-groups/{group_id}/test")
def send_test(
    request: Request, group_id: str, who: Writer, session: SessionDep, runtime: RuntimeDep, form: FormDep
) -> Response:
    """Send a test message to one of the group's addresses or webhooks; the outcome in words."""
    group = group_service.get(group_id, org_id=who.org_id, session=session)
    result = anyio.from_thread.run(
        lambda: delivery.send_test(
            group,
            channel=form.get("channel", ""),
            target=form.get("target", ""),
            runtime=runtime,
            now=utcnow(),
        )
    )
    return _group_form(request, group=group, values=values_of(group), errors={}, result=result)
