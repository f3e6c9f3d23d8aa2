"""Every service serves the topics' AsyncAPI document and JSON Schemas (CONTRACT.md section 4),
the same ones the repository keeps, and every payload reference resolves over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import yaml

from tests.e2e.conftest import SERVICES, RunningSystem

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref" and isinstance(v, str)] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_serves_the_repositorys_asyncapi_and_schemas(system: RunningSystem, service: str) -> None:
    base = system.urls[service]
    with httpx.Client(timeout=10) as http:
        answer = http.get(f"{base}/v1/asyncapi.yaml")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/yaml")
        assert answer.content == (DOCS / "asyncapi.yaml").read_bytes()

        files = [r for r in _refs(yaml.safe_load(answer.text)) if not r.startswith("#")]
        assert files, "the AsyncAPI document names its payload schemas"
        for ref in files:
            resolved = http.get(urljoin(f"{base}/v1/asyncapi.yaml", ref.split("#")[0]))
            assert resolved.status_code == 200, ref
            assert resolved.content == (DOCS / ref.split("#")[0]).read_bytes(), ref

        index = http.get(f"{base}/v1/schemas").json()["schemas"]
        assert {s["name"] for s in index} == {p.name for p in (DOCS / "schemas").glob("*.json")}

        unknown = http.get(f"{base}/v1/schemas/event.candidate.elected.json")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/problem+json")
        assert unknown.json()["code"] == "unknown_schema"
