"""The quota domain stays pure: no I/O frameworks, clock or logging imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import services.quota.domain

pytestmark = pytest.mark.unit

DOMAIN = Path(services.quota.domain.__file__).parent
FORBIDDEN = {
    "faststream",
    "aiokafka",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "structlog",
    "prometheus_client",
    "httpx",
    "logging",
    "time",
    "asyncio",
    "os",
    "random",
    "uuid",
    "confluent_kafka",
    "quixstreams",
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", sorted(DOMAIN.glob("*.py")), ids=lambda p: p.name)
def test_domain_module_imports_nothing_impure(module):
    assert imported_roots(module) & FORBIDDEN == set()


def test_no_clock_is_read():
    for module in DOMAIN.glob("*.py"):
        source = module.read_text(encoding="utf-8")
        assert ".now(" not in source, module.name
        assert "today(" not in source, module.name


def test_the_guard_sees_imports():
    assert imported_roots(Path(__file__)) >= {"ast", "pytest", "services"}
