"""The portal's HTTP layer (portal/http.py) and the service's outcome mapping, without a server."""

from __future__ import annotations

import pytest
from starlette._utils import get_route_path

from guestgate.portal.http import MAX_QUERY_FIELDS, parse_query, route_path
from guestgate.portal.service import PortalError, SignInOutcome, signin_outcome
from guestgate.portal.store import Outcome


@pytest.mark.parametrize(
    ("root", "path"),
    [
        ("", "/guest/signin"),
        ("/guest", "/guest/signin"),
        ("/guest", "/guest"),
        ("/guest", "/guestbook/x"),
        ("/x", "/x/guest/entry"),
        ("/x", "/y/guest/entry"),
    ],
)
def test_route_path_is_what_starlettes_router_sees(root: str, path: str) -> None:
    scope = {"type": "http", "root_path": root, "path": path}
    assert route_path(scope) == get_route_path(scope)


def test_a_query_keeps_each_fields_first_value() -> None:
    assert parse_query("t=a&t=b&code=&x=1") == {"t": "a", "code": "", "x": "1"}


def test_a_query_with_too_many_fields_is_a_400() -> None:
    with pytest.raises(PortalError) as caught:
        parse_query("&".join(f"f{i}=1" for i in range(MAX_QUERY_FIELDS + 1)))
    assert (caught.value.status, caught.value.key) == (400, "err_params")


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_store_outcome_is_the_sign_in_outcome_of_its_name(outcome: Outcome) -> None:
    assert signin_outcome(outcome) is SignInOutcome[outcome.name]
