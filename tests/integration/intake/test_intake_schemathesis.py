"""Schemathesis against the intake's own OpenAPI document, every check: no 5xx, answers conform.

Driven through Hypothesis directly (``as_strategy``): schemathesis' lazy pytest loader does
not run on this pytest version. Valid and invalid inputs are both generated.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from shared.embedded_broker import EmbeddedBroker
from tests.integration.intake.conftest import NATIONAL, ThreadedServer, intake_settings

pytestmark = pytest.mark.integration

checks.load_all_checks()
CHECKS = list(checks.CHECKS.get_all())  # no 5xx, conformance, and negative data rejected with 4xx
AUTH = {"Authorization": f"Bearer {NATIONAL}"}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """The document types NDJSON as a string; anything else generated is sent as one JSON line."""
    # json, not orjson: negative cases include integers beyond 64 bits.
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def run_cases(strategy: Any, examples: int) -> None:
    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def call(case: Any) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    call()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_intake_conforms_to_its_openapi(
    kafka: EmbeddedBroker, database_url: str, mode: GenerationMode
) -> None:
    with ThreadedServer(intake_settings(kafka.bootstrap, database_url)) as server:
        schema: Any = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {(op.method.upper(), op.path) for op in operations} >= {
            ("POST", "/v1/events"),
            ("GET", "/readyz"),
        }
        for operation in operations:
            if mode is GenerationMode.NEGATIVE and operation.path != "/v1/events":
                continue  # operations without inputs have no invalid inputs to generate
            examples = 150 if operation.path == "/v1/events" else 10
            run_cases(operation.as_strategy(generation_mode=mode), examples)
