"""The pure core stays pure: no domain module imports an I/O framework."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "faststream",
    "aiokafka",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "structlog",
    "prometheus_client",
    "httpx",
    "uvicorn",
    "asyncpg",
    "aiosqlite",
}
PURE_MODULES = [
    *ROOT.glob("services/*/domain/**/*.py"),
    *ROOT.glob("shared/orgtree*.py"),
    *ROOT.glob("shared/orgtree/**/*.py"),
    ROOT / "shared/scope.py",
]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "path", [p for p in PURE_MODULES if p.exists()], ids=lambda p: str(p.relative_to(ROOT))
)
def test_domain_module_is_pure(path: Path) -> None:
    assert not imported_roots(path) & FORBIDDEN


def test_the_check_catches_an_impure_module(tmp_path: Path) -> None:
    impure = tmp_path / "m.py"
    impure.write_text("from sqlalchemy import text\nimport structlog\n")
    assert imported_roots(impure) & FORBIDDEN == {"sqlalchemy", "structlog"}


def test_there_are_domain_modules_to_check() -> None:
    assert any(p.exists() for p in PURE_MODULES)
