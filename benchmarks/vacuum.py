"""An autovacuum stand-in for a PostgreSQL that runs without autovacuum (this machine's does).

Production PostgreSQL vacuums and analyses tables by itself. The server of this machine
and of CI runs with ``autovacuum = off``: over a national year nothing is vacuumed or
analysed, so the outbox and dirty-mark tables keep every deleted row (the relay's claim
walks past hundreds of thousands of dead rows) and the planner never learns the size of
the tally tables (a commune's rollup took 1-2.5 s with a national year loaded, 2 ms once
analysed). Figures taken so would describe a database nobody runs.

:class:`AutovacuumStandIn` does what autovacuum does with its default settings, from a
thread beside the benchmark: every ``naptime_s`` it reads ``pg_stat_user_tables`` of each
database and vacuums a table whose dead rows exceed 50 + 20% of its rows, analyses one
whose changes since its last analysis exceed 50 + 10% (``autovacuum_vacuum_threshold``,
``_scale_factor``, ``autovacuum_analyze_threshold``, ``_scale_factor``), throttled like
autovacuum (``vacuum_cost_delay`` 2 ms, ``vacuum_cost_limit`` 200). It does nothing
when the server's autovacuum is on; the table says which it was (``autovacuum`` figures).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from shared.db import asyncpg_dsn

VACUUM_THRESHOLD, VACUUM_SCALE = 50, 0.2
ANALYZE_THRESHOLD, ANALYZE_SCALE = 50, 0.1


@dataclass(frozen=True, slots=True)
class TableStats:
    name: str
    live: int
    dead: int
    modified_since_analyze: int


def due(stats: TableStats) -> tuple[bool, bool]:
    """(vacuum, analyse) as autovacuum's default thresholds decide them for one table."""
    vacuum = stats.dead > VACUUM_THRESHOLD + VACUUM_SCALE * stats.live
    analyse = stats.modified_since_analyze > ANALYZE_THRESHOLD + ANALYZE_SCALE * stats.live
    return vacuum, analyse


def command(table: str, vacuum: bool, analyse: bool) -> str | None:
    """The statement doing what is due for ``table`` (quoted), or None."""
    name = '"' + table.replace('"', '""') + '"'
    if vacuum:
        return f"VACUUM (ANALYZE) {name}" if analyse else f"VACUUM {name}"
    return f"ANALYZE {name}" if analyse else None


class AutovacuumStandIn:
    """One worker per database (autovacuum has three for all of them), until the context ends."""

    def __init__(self, urls: Sequence[str], naptime_s: float = 60.0) -> None:
        self.urls = [asyncpg_dsn(url) for url in urls]
        self.naptime_s = naptime_s
        self.vacuums = self.analyses = 0
        self.active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="autovacuum-stand-in", daemon=True)

    def __enter__(self) -> AutovacuumStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        # A throttled VACUUM of a large table can take minutes: the database's drop ends it.
        self._stop.set()
        self._thread.join(5)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        await asyncio.gather(*(self._worker(url) for url in self.urls), return_exceptions=True)

    async def _worker(self, url: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            if await connection.fetchval("SHOW autovacuum") != "off":
                return
            self.active = True
            await connection.execute("SET vacuum_cost_delay = '2ms'; SET vacuum_cost_limit = 200")
            while not await asyncio.to_thread(self._stop.wait, self.naptime_s):
                await self._round(connection)
        finally:
            await connection.close(timeout=1)

    async def _round(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze FROM pg_stat_user_tables"
        )
        for row in rows:
            vacuum, analyse = due(TableStats(row[0], int(row[1]), int(row[2]), int(row[3])))
            statement = command(row[0], vacuum, analyse)
            if statement is None or self._stop.is_set():
                continue
            await connection.execute(statement)
            self.vacuums += vacuum
            self.analyses += analyse
