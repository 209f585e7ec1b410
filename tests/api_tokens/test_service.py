"""API token service and revocation cache, called directly with an explicit `now` (both databases)."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from guestgate.api_tokens import service
from guestgate.api_tokens.revocation import RevocationCache
from guestgate.db import utcnow
from guestgate.errors import InvalidRequest, NotFound, ParameterInvalid, PermissionDenied
from guestgate.orgs import service as org_service
from guestgate.pagination import PageRequest
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ, SCOPE_WRITE
from tests.utils.settings import TEST_KEYS


@pytest.fixture
def orgs(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        org_service.ensure("org-a", session=session)
        org_service.ensure("org-b", session=session)
        session.commit()


def _mint(runtime: Runtime, org: str = "org-a", **kwargs: object) -> tuple[str, str]:
    values: dict[str, object] = {
        "name": "ci",
        "scopes": [SCOPE_READ],
        "ttl_seconds": 3600,
        "created_by": "cli",
    }
    values.update(kwargs)
    with runtime.sessions() as session:
        row, token = service.mint(
            org,
            str(values["name"]),
            values["scopes"],  # type: ignore[arg-type]
            int(values["ttl_seconds"]),  # type: ignore[call-overload]
            str(values["created_by"]),
            settings=runtime.settings,
            session=session,
            now=utcnow(),
            granted_by=values.get("granted_by"),  # type: ignore[arg-type]
        )
        return row.id, token


def test_mint_registers_a_row_whose_id_is_the_jti(runtime: Runtime, orgs: None) -> None:
    token_id, token = _mint(runtime, scopes=[SCOPE_READ, SCOPE_ISSUE])
    claims = jwt.decode(token, TEST_KEYS["jwt_secret"], algorithms=["HS256"])
    assert claims["jti"] == token_id
    assert claims["org"] == "org-a"
    assert claims["scope"] == f"{SCOPE_READ} {SCOPE_ISSUE}"
    assert claims["exp"] - claims["iat"] == 3600
    with runtime.sessions() as session:
        row = service.get(token_id, org_id="org-a", session=session)
        assert (row.name, row.scopes, row.created_by, row.revoked_at) == ("ci", claims["scope"], "cli", None)
        assert not service.is_revoked(token_id, org_id="org-a", session=session)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "  "}, ParameterInvalid),
        ({"name": "x" * 201}, ParameterInvalid),
        ({"scopes": []}, ParameterInvalid),
        ({"scopes": ["admin"]}, ParameterInvalid),
        ({"ttl_seconds": 59}, ParameterInvalid),
        ({"ttl_seconds": service.MAX_TTL_SECONDS + 1}, ParameterInvalid),
        ({"scopes": [SCOPE_WRITE], "granted_by": {SCOPE_READ}}, PermissionDenied),
        ({"scopes": [SCOPE_ISSUE], "granted_by": {SCOPE_WRITE}}, PermissionDenied),
    ],
)
def test_mint_refuses_bad_names_scopes_lifetimes_and_escalation(
    runtime: Runtime, orgs: None, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _mint(runtime, **kwargs)
    with runtime.sessions() as session:
        assert service.list_tokens("org-a", page=PageRequest(), session=session).items == []


def test_write_covers_read_when_granting(runtime: Runtime, orgs: None) -> None:
    token_id, _ = _mint(runtime, scopes=[SCOPE_READ], granted_by={SCOPE_WRITE})
    assert token_id


def test_an_org_has_at_most_the_cap_of_active_tokens_and_revoking_frees_one(
    runtime: Runtime, orgs: None
) -> None:
    ids = [_mint(runtime, name=f"t{i}")[0] for i in range(service.MAX_ACTIVE_PER_ORG)]
    with pytest.raises(InvalidRequest, match="at most 100 active"):
        _mint(runtime)
    _mint(runtime, org="org-b")  # the cap is per org
    with runtime.sessions() as session:
        service.revoke(ids[0], org_id="org-a", session=session, now=utcnow())
    _mint(runtime)


def test_list_pages_newest_first_and_never_another_orgs(runtime: Runtime, orgs: None) -> None:
    now = utcnow()
    with runtime.sessions() as session:
        for i in range(5):
            service.mint(
                "org-a",
                f"t{i}",
                [SCOPE_READ],
                3600,
                "cli",
                settings=runtime.settings,
                session=session,
                now=now + timedelta(seconds=i),
            )
    _mint(runtime, org="org-b")
    with runtime.sessions() as session:
        first = service.list_tokens("org-a", page=PageRequest(limit=3), session=session)
        assert [r.name for r in first.items] == ["t4", "t3", "t2"]
        assert first.next_cursor is not None
        rest = service.list_tokens("org-a", page=PageRequest.parse(3, first.next_cursor), session=session)
        assert [r.name for r in rest.items] == ["t1", "t0"]
        assert rest.next_cursor is None


def test_revoke_is_idempotent_and_another_orgs_token_is_not_found(runtime: Runtime, orgs: None) -> None:
    token_id, _ = _mint(runtime)
    with runtime.sessions() as session:
        with pytest.raises(NotFound):
            service.revoke(token_id, org_id="org-b", session=session, now=utcnow())
        first = service.revoke(token_id, org_id="org-a", session=session, now=utcnow()).revoked_at
        again = service.revoke(token_id, org_id="org-a", session=session, now=utcnow() + timedelta(hours=1))
        assert again.revoked_at == first
        assert service.is_revoked(token_id, org_id="org-a", session=session)
        assert service.is_revoked("no-such-id", org_id="org-a", session=session)


def test_cache_answers_from_memory_until_the_bound_then_asks_again(runtime: Runtime, orgs: None) -> None:
    clock = [1000.0]
    cache = RevocationCache(runtime.sessions, ttl_seconds=5.0, clock=lambda: clock[0])
    token_id, _ = _mint(runtime)
    assert cache.cached(token_id, "org-a") is None
    assert cache.load(token_id, "org-a") is True
    assert cache.cached(token_id, "org-a") is True
    assert cache.cached(token_id, "org-b") is False  # a token of org-a never speaks for org-b
    with runtime.sessions() as session:  # revoked elsewhere: this cache is not told
        service.revoke(token_id, org_id="org-a", session=session, now=utcnow())
    clock[0] += 4.9
    assert cache.cached(token_id, "org-a") is True
    clock[0] += 0.1
    assert cache.cached(token_id, "org-a") is None
    assert cache.load(token_id, "org-a") is False
    clock[0] += 3600
    assert cache.cached(token_id, "org-a") is False  # a refusal is final


def test_forget_refuses_at_once_and_memory_is_bounded(runtime: Runtime, orgs: None) -> None:
    cache = RevocationCache(runtime.sessions, ttl_seconds=60.0, max_entries=2)
    first, _ = _mint(runtime, name="1")
    second, _ = _mint(runtime, name="2")
    third, _ = _mint(runtime, name="3")
    assert cache.load(first, "org-a") and cache.load(second, "org-a")
    cache.forget(second)
    assert cache.cached(second, "org-a") is False
    assert cache.load(third, "org-a")
    assert len(cache) == 2
    assert cache.cached(first, "org-a") is None  # the oldest answer went first
