"""Bulk writes and keyed reads on the driver connection: the fold's hot path.

One statement per table per batch: PostgreSQL gets column arrays through
one JSON parameter unpacked by the server (``jsonb_array_elements``: asyncpg
would check every element of column arrays in Python, the slowest part of a
batch; ``jsonb``, not ``json``, because ``json ->> i`` scans the element's text
again for every column: the activity rows' 19 columns cost twice as much), SQLite
an ``executemany`` (aiosqlite). Both run on the connection of the caller's
SQLAlchemy transaction, so they commit or roll back with it. Rows are written in
the order of their conflict key (sorted by PostgreSQL, a sixth of the fold's Python
time when Python sorted them): concurrent replicas then take row locks in one
global order and cannot deadlock on hot aggregate rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

Row = tuple[Any, ...]
_SQLITE_CHUNK = 8000  # keys per statement; 3 parameters each stays under SQLite's 32,766


@dataclass(frozen=True, slots=True)
class Upsert:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE SET <update>`` (or ``DO NOTHING``).

    ``update`` is a SET clause where ``t`` is the table and ``excluded`` the new row.
    ``types`` are the PostgreSQL array element types of ``columns``.
    """

    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    conflict: tuple[str, ...]
    update: str | None

    def _tail(self) -> str:
        target = f"ON CONFLICT ({', '.join(self.conflict)})"
        return f"{target} DO UPDATE SET {self.update}" if self.update else f"{target} DO NOTHING"

    def sqlite_sql(self) -> str:
        marks = ", ".join("?" for _ in self.columns)
        return f"INSERT INTO {self.table} AS t ({', '.join(self.columns)}) VALUES ({marks}) {self._tail()}"

    def rows_sql(self) -> str:
        """The rows of the one JSON parameter ``$1`` (an array of arrays) as typed columns."""
        typed = ", ".join(
            f"(x->>{i})::{kind} AS {name}"
            for i, (name, kind) in enumerate(zip(self.columns, self.types, strict=True))
        )
        return f"SELECT {typed} FROM jsonb_array_elements($1::jsonb) AS e(x)"

    def key_order(self) -> str:
        """``ORDER BY`` the conflict key, text in byte order (the order Python sorts str in)."""
        kinds = dict(zip(self.columns, self.types, strict=True))
        return "ORDER BY " + ", ".join(
            f'{name} COLLATE "C"' if kinds[name] == "text" else name for name in self.conflict
        )

    def postgres_sql(self) -> str:
        """The upsert of the rows of ``$1``, written in key order (the server sorts them)."""
        rows = f"SELECT * FROM ({self.rows_sql()}) AS r {self.key_order()}"
        return f"INSERT INTO {self.table} AS t ({', '.join(self.columns)}) {rows} {self._tail()}"

    def key_positions(self) -> tuple[int, ...]:
        return tuple(self.columns.index(name) for name in self.conflict)


def is_postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


async def driver(connection: AsyncConnection) -> Any:
    """The asyncpg / aiosqlite connection under the caller's transaction."""
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def upsert(connection: AsyncConnection, statement: Upsert, rows: Sequence[Row]) -> None:
    """Write all rows with one statement (PostgreSQL) or one executemany (SQLite)."""
    if not rows:
        return
    native = await driver(connection)
    if is_postgres(connection):
        await native.execute(statement.postgres_sql(), as_json(rows))
        return
    ordered = _in_key_order(statement, rows)
    if "timestamptz" in statement.types:
        ordered = [tuple(_sqlite_value(v) for v in row) for row in ordered]
    await native.executemany(statement.sqlite_sql(), ordered)


def _sqlite_value(value: Any) -> Any:
    """Times as ISO 8601 text in UTC: sortable, and read back with ``datetime.fromisoformat``."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _in_key_order(statement: Upsert, rows: Sequence[Row]) -> list[Row]:
    """Rows sorted by conflict key; plain tuple order when the key leads the row (keys are unique)."""
    positions = statement.key_positions()
    if positions == tuple(range(len(positions))):
        return sorted(rows)
    return sorted(rows, key=lambda row: tuple(row[i] for i in positions))


async def fetch_keyed(
    connection: AsyncConnection,
    table: str,
    key: tuple[str, ...],
    types: tuple[str, ...],
    wanted: tuple[str, ...],
    keys: Sequence[Row],
    *,
    lock: str = "",
) -> list[Row]:
    """Rows of ``table`` whose ``key`` columns equal one of ``keys``: (key..., wanted...).

    ``lock`` (``FOR SHARE`` / ``FOR UPDATE``) applies on PostgreSQL only, to the table's
    rows, taken in key order; SQLite has a single writer and needs none.
    """
    if not keys:
        return []
    selected = ", ".join(f"t.{name}" for name in (*key, *wanted))
    native = await driver(connection)
    if is_postgres(connection) and len(key) == 1:
        sql = f"SELECT {selected} FROM {table} t WHERE t.{key[0]} = ANY($1::{types[0]}[]) ORDER BY t.{key[0]}"
        rows = await native.fetch(sql + (f" {lock} OF t" if lock else ""), sorted({k[0] for k in keys}))
        return [tuple(r) for r in rows]
    if is_postgres(connection):
        arrays = ", ".join(f"${i + 1}::{kind}[]" for i, kind in enumerate(types))
        aliases = ", ".join(f"k{i}" for i in range(len(key)))
        joined = " AND ".join(f"t.{name} = k.k{i}" for i, name in enumerate(key))
        sql = f"SELECT {selected} FROM {table} t JOIN unnest({arrays}) AS k({aliases}) ON {joined} "
        ordered = sorted(set(keys))
        rows = await native.fetch(
            sql + f"ORDER BY {', '.join(f't.{n}' for n in key)}" + (f" {lock} OF t" if lock else ""),
            *[list(c) for c in zip(*ordered, strict=True)],
        )
        return [tuple(r) for r in rows]
    found: list[Row] = []
    unique = list(dict.fromkeys(keys))
    width = len(key)
    for start in range(0, len(unique), _SQLITE_CHUNK):
        chunk = unique[start : start + _SQLITE_CHUNK]
        if width == 1:
            sql = f"SELECT {selected} FROM {table} t WHERE {key[0]} IN ({', '.join('?' for _ in chunk)})"
        else:  # a CROSS JOIN makes SQLite loop over the keys and probe the primary key
            marks = ", ".join(f"({', '.join('?' for _ in range(width))})" for _ in chunk)
            joined = " AND ".join(f"t.{name} = k.k{i}" for i, name in enumerate(key))
            aliases = ", ".join(f"k{i}" for i in range(width))
            sql = (
                f"WITH k({aliases}) AS (VALUES {marks}) "
                f"SELECT {selected} FROM k CROSS JOIN {table} t ON {joined}"
            )
        cursor = await native.execute(sql, [value for row in chunk for value in row])
        found.extend(tuple(r) for r in await cursor.fetchall())
    return found


async def upsert_versioned(
    connection: AsyncConnection, statement: Upsert, rows: Sequence[Row], key_width: int
) -> list[Row]:
    """Upsert ``rows`` (key..., value, version) where the version rises.

    Returns, per row, (key..., old value, old version, applied).

    ``statement``'s update applies only ``WHERE t.version < excluded.version`` and keeps
    what it replaces in ``prev_value`` / ``prev_version``, so on PostgreSQL one plain
    upsert returns what each applied row replaced; the stored version of a row that did
    not apply (a repeat, rare but a whole batch after a redelivery) is read afterwards.
    A statement that first read the old rows in a CTE cost half as much again
    (2026-12-07), and inlined it had been a nested loop: a redelivered batch of 5,000
    stored keys took ~3 s. SQLite reads the old rows, then writes the applied ones.
    Keys must be unique.
    """
    if not rows:
        return []
    keys = [row[:key_width] for row in rows]
    if not is_postgres(connection):
        stored = await _stored(connection, statement, keys, key_width)
        result = []
        for key, row in zip(keys, rows, strict=True):
            old_value, old_version = stored.get(key, (0, 0))
            result.append((*key, old_value, old_version, row[-1] > old_version))
        await upsert(connection, statement, [row for row, r in zip(rows, result, strict=True) if r[-1]])
        return result
    returning = ", ".join(f"t.{c}" for c in (*statement.conflict, "prev_value", "prev_version"))
    native = await driver(connection)
    fetched = await native.fetch(f"{statement.postgres_sql()} RETURNING {returning}", as_json(rows))
    applied = {(r := tuple(record))[:key_width]: r[key_width:] for record in fetched}
    stored = {}
    if len(applied) < len(rows):
        stored = await _stored(connection, statement, [k for k in keys if k not in applied], key_width)
    return [(*k, *applied[k], True) if k in applied else (*k, *stored[k], False) for k in keys]


async def _stored(
    connection: AsyncConnection, statement: Upsert, keys: Sequence[Row], key_width: int
) -> dict[Row, Row]:
    """(value, version) of the stored rows of these keys."""
    found = await fetch_keyed(
        connection,
        statement.table,
        statement.conflict,
        statement.types[:key_width],
        ("value", "version"),
        keys,
    )
    return {r[:key_width]: r[key_width:] for r in found}


def as_json(rows: Sequence[Row]) -> str:
    """Rows as one JSON array of arrays (times in RFC 3339)."""
    return orjson.dumps(rows).decode()
