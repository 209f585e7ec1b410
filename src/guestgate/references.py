"""Deleting a row that other rows still refer to: refuse with a 409 naming who uses it."""

from __future__ import annotations

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from guestgate.errors import Conflict

# How many users a conflict message names before it says "and more".
NAMED_USERS = 5


def delete_unless_used(
    row: object, *, users: Select[str, str], what: str, user_kind: str, session: Session
) -> None:
    """Delete `row` and commit, unless `users` (id, name rows) finds something that refers to it.

    The database's RESTRICT foreign key is the guard for a user added between the check and the
    delete; that race is reported the same way.
    """
    found = session.execute(users.limit(NAMED_USERS + 1)).all()
    if found:
        named = ", ".join(f"'{name}' ({user_id})" for user_id, name in found[:NAMED_USERS])
        more = " and more" if len(found) > NAMED_USERS else ""
        noun = user_kind if len(found) == 1 else f"{user_kind}s"
        raise Conflict(f"The {what} is used by {noun} {named}{more}; change or delete them first.")
    session.delete(row)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"The {what} is used by a {user_kind}; change or delete it first.") from exc
