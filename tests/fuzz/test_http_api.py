"""Schemathesis against the runtime's own OpenAPI document (/openapi.json), over real HTTP on loopback: every
generated request to every route gets an answer that is not a server error, and every error answer is the contract's
JSON `{"error": code, "message": sentence}` (DESIGN §3)."""

from __future__ import annotations

import pytest
import schemathesis
from avatar_runtime.config import load_config
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.support.runtime_server import RuntimeServer


@schemathesis.check
def errors_are_the_contracts_json(ctx, response, case) -> bool | None:
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str), (
        f"{case.method} {case.formatted_path}: error body {body!r} is not {{error, message}}"
    )
    return None


@pytest.fixture(scope="module")
def api_schema(shared_engines):
    config = load_config(env={})
    with RuntimeServer(config, shared_engines) as server:
        yield schemathesis.openapi.from_url(server.url + "/openapi.json")


def test_every_route_answers_without_a_server_error_and_errors_follow_the_contract(api_schema):
    # (schemathesis' pytest plugin does not load under pytest 9: the same cases, driven by Hypothesis directly)
    tried = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error, errors_are_the_contracts_json])
            tried[case.operation.label] = tried.get(case.operation.label, 0) + 1

        run()
    print(f"\nschemathesis: {sum(tried.values())} requests: {tried}")
    assert len(tried) >= 6 and all(count >= 1 for count in tried.values()), tried


def test_the_document_lists_the_contracts_routes(api_schema):
    operations = {(op.method.upper(), op.path) for op in (result.ok() for result in api_schema.get_all_operations())}
    assert {("GET", "/api/config"), ("POST", "/api/sessions"), ("DELETE", "/api/sessions/{session_id}"),
            ("GET", "/avatars/{name}.zip"), ("GET", "/healthz"), ("GET", "/readyz")} <= operations  # fmt: skip
