"""The committed JSON Schemas in docs/schemas/ match the models (run `make schemas` to refresh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.schemas_export import all_schemas, render

pytestmark = pytest.mark.unit

FOLDER = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.mark.parametrize("name", sorted(all_schemas()))
def test_committed_schema_is_current(name: str) -> None:
    committed = FOLDER / name
    assert committed.exists(), f"{name} missing: run `make schemas`"
    assert committed.read_bytes() == render(all_schemas()[name]), f"{name} is stale: run `make schemas`"


def test_no_orphan_schema_files() -> None:
    assert {p.name for p in FOLDER.glob("*.json")} <= set(all_schemas())
