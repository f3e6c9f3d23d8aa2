"""``reporting_0008``: the feed's versions keyed (tree, month, unit_id), and back, rows kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_engine, run_migrations

pytestmark = pytest.mark.integration

SENT = datetime(2026, 1, 5, 8, tzinfo=UTC)
ROWS = [("legacy", "C06901", 24288, 3, "a" * 32), ("2025", "P22", 24289, 1, "b" * 32)]


async def _state(engine: AsyncEngine) -> tuple[list[str], list[tuple[object, ...]]]:
    """The primary key's columns in order, and the rows without their time."""
    async with engine.connect() as connection:
        key = await connection.run_sync(
            lambda sync: inspect(sync).get_pk_constraint("reporting_feed_versions")["constrained_columns"]
        )
        rows = await connection.execute(
            text("SELECT tree, unit_id, month, version, digest FROM reporting_feed_versions")
        )
        return list(key), sorted(tuple(r) for r in rows)


async def test_the_key_changes_order_and_the_rows_stay(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, "reporting", "reporting_0007")
            await connection.execute(
                text("INSERT INTO reporting_feed_versions VALUES (:t, :u, :m, :v, :d, :at)"),
                [dict(zip("tumvd", row, strict=True), at=SENT) for row in ROWS],
            )
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, "reporting", "reporting_0008")
        assert await _state(engine) == (["tree", "month", "unit_id"], sorted(ROWS))
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, "reporting", "reporting_0007", down=True)
        assert await _state(engine) == (["tree", "unit_id", "month"], sorted(ROWS))
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, "reporting", "head")
        assert (await _state(engine))[0] == ["tree", "month", "unit_id"]
    finally:
        await engine.dispose()
