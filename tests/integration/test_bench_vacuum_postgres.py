"""The benchmarks' autovacuum stand-in against a real PostgreSQL: it vacuums and analyses a
table with dead rows when the server's autovacuum is off, and does nothing when it is on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import pytest

from benchmarks.vacuum import AutovacuumStandIn
from shared.db import asyncpg_dsn
from tests.conftest import TEST_DATABASE_URL, eventually, fresh_database_url

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(TEST_DATABASE_URL is None, reason="PostgreSQL only (KETNAP_TEST_DATABASE_URL)"),
]


async def test_the_stand_in_vacuums_a_queue_table_only_when_autovacuum_is_off(tmp_path: Path) -> None:
    url = await fresh_database_url(tmp_path)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        autovacuum_off = await connection.fetchval("SHOW autovacuum") == "off"
        await connection.execute("CREATE TABLE queue (id bigint PRIMARY KEY)")
        await connection.execute("INSERT INTO queue SELECT generate_series(1, 500)")
        await connection.execute("DELETE FROM queue")  # 500 dead rows: over 50 + 20% of none
        with AutovacuumStandIn([url], naptime_s=0.2) as stand_in:
            if autovacuum_off:  # the statistics reach pg_stat_user_tables within a few seconds

                async def done() -> bool:
                    return stand_in.vacuums >= 1 and stand_in.analyses >= 1

                await eventually(done, within=30)
            else:
                await asyncio.sleep(1)  # rounds it would have run
        assert stand_in.active is autovacuum_off
        if autovacuum_off:
            dead = await connection.fetchval(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'queue'"
            )
            assert dead < 500
            assert await connection.fetchval(
                "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'queue'"
            )
        else:
            assert (stand_in.vacuums, stand_in.analyses) == (0, 0)
    finally:
        await connection.close()
