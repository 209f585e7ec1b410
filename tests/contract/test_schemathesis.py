"""Property-based run of the operator API against its own OpenAPI document (schemathesis).

Every generated request must get an answer the document describes: no 500, a documented status
code, a body that matches the schema. Bounded examples keep it inside the suite's time budget;
the hardening issue adds a long stateful run.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from guestgate.app import create_app
from guestgate.runtime import Runtime

EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime=runtime)


def test_operator_api_conforms_to_its_openapi(app: FastAPI, headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    failures: list[str] = []
    calls: dict[str, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: Any) -> None:
            response = case.call(headers={**headers, **(case.headers or {})})
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert all(calls.get(op.label, 0) >= 1 for op in operations), "an operation was never exercised"
