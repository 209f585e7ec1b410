"""The stored statuses (`SessionStatus`) and the API's status names (`StatusName`) are one set."""

from __future__ import annotations

from typing import get_args

from guestgate.site_users.models import SessionStatus
from guestgate.site_users.schemas import StatusName


def test_every_stored_status_is_an_api_status_and_back() -> None:
    assert {status.value for status in SessionStatus} == set(get_args(StatusName))
