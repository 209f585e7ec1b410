"""A long schemathesis run against our own /openapi.json: stateless fuzzing of every operation,
then stateful scenarios that chain create -> read/update/delete through links.

The links are the ones schemathesis infers from our response schemas and path parameters (its
dependency analysis, schemathesis >= 4.1); the test asserts they connect every create to its
reads, updates and deletes, so a schema change that breaks the chaining fails here. No 500,
every status documented, every body matching its schema. Marked slow: `make test` runs it,
`make test-fast` does not.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from guestgate.app import create_app
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from tests.utils.settings import make_settings

pytestmark = pytest.mark.slow

STATELESS_EXAMPLES = 35
SCENARIOS = 250
STEPS = 15
MIN_STATELESS_CALLS = 1000
MIN_STATEFUL_CALLS = 2000
MIN_LINKED_CALLS = 150
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]
# create operation -> the operations its 201 must link to (by the created resource's id).
REQUIRED_LINKS = {
    "POST /captive/instances": [
        "GET /captive/instances/{instanceId}",
        "PUT /captive/instances/{instanceId}",
        "DELETE /captive/instances/{instanceId}",
        "POST /captive/instances/{instanceId}/coupons",
        "POST /captive/instances/{instanceId}/coupon-schedules",
    ],
    "POST /captive/instances/{instanceId}/coupon-schedules": [
        "GET /captive/instances/{instanceId}/coupon-schedules/{scheduleId}",
        "PUT /captive/instances/{instanceId}/coupon-schedules/{scheduleId}",
        "DELETE /captive/instances/{instanceId}/coupon-schedules/{scheduleId}",
        "POST /captive/instances/{instanceId}/coupon-schedules/{scheduleId}/run",
    ],
    "POST /captive/auth-integrations": [
        "GET /captive/auth-integrations/{authIntegrationId}",
        "PUT /captive/auth-integrations/{authIntegrationId}",
        "DELETE /captive/auth-integrations/{authIntegrationId}",
    ],
    "POST /captive/sites": [
        "GET /captive/sites/{siteId}",
        "PUT /captive/sites/{siteId}",
        "DELETE /captive/sites/{siteId}",
    ],
    "POST /captive/notification-groups": [
        "GET /captive/notification-groups/{groupId}",
        "PUT /captive/notification-groups/{groupId}",
        "DELETE /captive/notification-groups/{groupId}",
    ],
    "POST /captive/walled-garden/{siteId}": [
        "GET /captive/walled-garden/{siteId}/{walledGardenEntryId}",
        "PUT /captive/walled-garden/{siteId}/{walledGardenEntryId}",
        "DELETE /captive/walled-garden/{siteId}/{walledGardenEntryId}",
    ],
}


@pytest.fixture
def fuzz(db_url: str, tmp_path: Path) -> Iterator[tuple[FastAPI, dict[str, str]]]:
    """The app with the operator rate limit off (one token makes thousands of calls) and its token."""
    runtime = Runtime.build(make_settings(db_url, tmp_path / "var", rate_limit_per_minute=0))
    app = create_app(runtime=runtime)
    with TestClient(app):  # runs the lifespan
        yield app, bearer(runtime, "org-fuzz")
    runtime.close()


def bearer(runtime: Runtime, org: str) -> dict[str, str]:
    """Headers of an all-scopes token of `org` (created on the token's first use)."""
    token = mint_token(runtime.settings, org=org, subject="fuzzer", scopes=ALL_SCOPES, ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}"}


def _hypothesis(examples: int, **extra: Any) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        derandomize=False,
        **extra,
    )


def test_every_operation_fuzzed_at_length(fuzz: tuple[FastAPI, dict[str, str]]) -> None:
    app, headers = fuzz
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    calls: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @_hypothesis(STATELESS_EXAMPLES)
        def check(case: Any) -> None:
            response = case.call(headers={**(case.headers or {}), **headers})
            calls[case.operation.label] += 1
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # every operation's failure, reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert set(calls) == {op.label for op in operations}, "an operation was never exercised"
    assert sum(calls.values()) >= MIN_STATELESS_CALLS, sum(calls.values())
    assert 500 not in statuses
    print(f"stateless: {sum(calls.values())} calls over {len(calls)} operations; statuses {dict(statuses)}")


def test_inferred_links_chain_every_create_to_its_reads_updates_and_deletes(
    fuzz: tuple[FastAPI, dict[str, str]],
) -> None:
    app, _ = fuzz
    machine = schemathesis.openapi.from_asgi("/openapi.json", app).as_state_machine()
    transitions = machine._transitions.operations  # type: ignore[attr-defined]
    for source, targets in REQUIRED_LINKS.items():
        linked = {link.target.label for link in transitions[source].outgoing if link.status_code == "201"}
        missing = [target for target in targets if target not in linked]
        assert not missing, f"{source} 201 does not link to {missing}"


def test_stateful_scenarios_create_read_update_delete(fuzz: tuple[FastAPI, dict[str, str]]) -> None:
    app, _ = fuzz
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # Valid data only: chains go deep when creates succeed (the stateless run covers invalid data).
    schema.config.generation.update(modes=[GenerationMode.POSITIVE])
    base = schema.as_state_machine()
    calls: Counter[str] = Counter()
    linked: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    runtime: Runtime = app.state.runtime

    class Workflow(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            # A fresh org per scenario: each one starts from nothing, as a replay of it would.
            self.headers = bearer(runtime, f"fuzz-{uuid.uuid4().hex[:12]}")

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {**(case.headers or {}), **self.headers}}

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                linked[input.case.operation.label] += 1
            return super().step(input)

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            calls[case.operation.label] += 1
            statuses[response.status_code] += 1
            case.validate_response(response, checks=STATEFUL_CHECKS, recorder=self.recorder)

    Workflow.run(settings=_hypothesis(SCENARIOS, stateful_step_count=STEPS))
    total = sum(calls.values())
    assert total >= MIN_STATEFUL_CALLS, total
    assert 500 not in statuses
    # The scenarios really chained: ids created by one call were used by reads, updates and deletes.
    for method in ("GET", "PUT", "DELETE"):
        assert any(label.startswith(method) and "{" in label for label in linked), (method, dict(linked))
    # Roots with random valid data often break a cross-field rule (400), so most steps are roots.
    assert sum(linked.values()) >= max(MIN_LINKED_CALLS, total // 20), (dict(linked), total)
    print(f"stateful: {total} calls, {sum(linked.values())} through links; statuses {dict(statuses)}")
