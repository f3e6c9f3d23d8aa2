"""``reporting_0007``: the aggregate rows re-keyed by unit key, and back, with their values."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.unitkeys import unit_key
from shared.db import make_engine, run_migrations

pytestmark = pytest.mark.integration

# (tree, unit_id, series, bucket, part, value): every level and both trees
TEXT_ROWS = [
    ("legacy", "VN", 301, 24292, 0, 9),
    ("legacy", "P22", 301, 24292, 0, 9),
    ("legacy", "D200", 301, 24292, 0, 9),
    ("legacy", "VN", 301, 24292, 1, 2),
    ("2025", "VN", 301, 24292, 0, 9),
    ("2025", "P01", 400, 24293, 0, 3),
    ("2025", "C06913", 301, 24292, 0, 9),
    ("2025", "C00004", 0, 24292, 1, -1),
]


async def _rows(engine: AsyncEngine, table: str, columns: str) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        found = await connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY {columns}"))
        return sorted(tuple(r) for r in found)


async def test_the_rows_keep_their_values_up_and_down(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, "reporting", "reporting_0006")
            for table, bucket in (("reporting_unit_months", "month"), ("reporting_unit_days", "day")):
                await connection.execute(
                    text(
                        f"INSERT INTO {table} (tree, unit_id, series, {bucket}, part, value) "
                        "VALUES (:t, :u, :s, :b, :p, :v)"
                    ),
                    [dict(zip("tusbpv", row, strict=True)) for row in TEXT_ROWS],
                )
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, "reporting", "reporting_0007")
        keyed = sorted((unit_key(t, u), s, b, p, v) for t, u, s, b, p, v in TEXT_ROWS)  # type: ignore[arg-type]
        assert await _rows(engine, "reporting_unit_months", "unit, series, month, part, value") == keyed
        assert await _rows(engine, "reporting_unit_days", "unit, series, day, part, value") == keyed

        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, "reporting", "reporting_0006", down=True)
        columns = "tree, unit_id, series, {}, part, value"
        assert await _rows(engine, "reporting_unit_months", columns.format("month")) == sorted(TEXT_ROWS)
        assert await _rows(engine, "reporting_unit_days", columns.format("day")) == sorted(TEXT_ROWS)
        async with engine.begin() as connection:  # and up again: the names the upgrade gives are free
            await connection.run_sync(run_migrations, "reporting", "head")
        assert await _rows(engine, "reporting_unit_days", "unit, series, day, part, value") == keyed
    finally:
        await engine.dispose()
