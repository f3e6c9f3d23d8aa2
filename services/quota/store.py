"""Storage of the quota service: one statement per table per batch, PostgreSQL or SQLite.

Every function takes the caller's connection, so a whole batch is one transaction.
On PostgreSQL sets of keys travel as arrays (``= ANY(...)``, ``unnest``): one
prepared statement whatever the batch size; on SQLite as ``IN`` lists and
executemany. Candidate rows are read ``FOR UPDATE`` (ordered, so no deadlock) so
the expiry task and a batch never both rewrite one candidate; tally rows are
incremented in the database (``value = value + delta``), in key order, so replicas
working on different partitions add up instead of overwriting each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.quota.tables import branches, candidates, processed, rejections, tallies, targets

KeyTuple = tuple[str, date, str, str]
"""(branch_id, local date, metric, category)"""

_SQLITE_CHUNK = 5000


def is_postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC (SQLite hands back naive UTC datetimes)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _chunks(items: Sequence[Any], size: int = _SQLITE_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def recordset(columns: Mapping[str, str]) -> str:
    """``json_to_recordset`` over the ``:rows`` parameter (a JSON array of objects).

    One text parameter per statement: asyncpg encodes a Python list element by element
    (an ``isinstance`` per element), which cost more than PostgreSQL parsing JSON.
    """
    typed = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    return f"json_to_recordset(CAST(:rows AS json)) AS x({typed})"


def _json(rows: Iterable[Mapping[str, Any]]) -> str:
    return orjson.dumps(list(rows)).decode()


async def _driver(connection: AsyncConnection) -> Any:
    """asyncpg's connection under ``connection``, in its transaction (SQLAlchemy begins lazily)."""
    driver = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():  # type: ignore[union-attr]
        await connection.execute(text("SELECT 1"))
    return driver


def _upsert(connection: AsyncConnection, table: Any) -> Any:
    return (postgresql.insert if is_postgres(connection) else sqlite.insert)(table)


# -- processed ids ---------------------------------------------------------------------


async def processed_digests(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, bytes]:
    """Digest of each id already taken in."""
    if not ids:
        return {}
    if is_postgres(connection):
        rows = await connection.execute(
            text("SELECT event_id, digest FROM quota_processed WHERE event_id = ANY(CAST(:ids AS text[]))"),
            {"ids": list(ids)},
        )
        return {r.event_id: bytes(r.digest) for r in rows}
    found: dict[str, bytes] = {}
    for chunk in _chunks(ids):
        query = select(processed.c.event_id, processed.c.digest).where(processed.c.event_id.in_(chunk))
        found |= {r.event_id: bytes(r.digest) for r in await connection.execute(query)}
    return found


async def insert_processed(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of ``event_id``, ``digest``, ``candidate_id``, ``event`` (JSON text)."""
    if not rows:
        return
    if is_postgres(connection):  # binary COPY: the event text goes as it is, not escaped into JSON
        driver = await _driver(connection)
        await driver.copy_records_to_table(
            "quota_processed",
            records=[(r["event_id"], r["digest"], r["candidate_id"], r["event"]) for r in rows],
            columns=("event_id", "digest", "candidate_id", "event"),
        )
        return
    await connection.execute(insert(processed), list(rows))


async def originals(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The original wire events of these ids (as taken in)."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        query = select(processed.c.event_id, processed.c.event).where(processed.c.event_id.in_(chunk))
        found |= {r.event_id: orjson.loads(r.event) for r in await connection.execute(query)}
    return found


async def forget_processed(connection: AsyncConnection, ids: Sequence[str]) -> None:
    """Expired events leave: a replay of them is a new arrival."""
    for chunk in _chunks(ids):
        await connection.execute(delete(processed).where(processed.c.event_id.in_(chunk)))


# -- candidates ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCandidate:
    version: int
    state: str


async def candidate_versions(
    connection: AsyncConnection, ids: Sequence[str], *, lock: bool = True
) -> dict[str, int]:
    """The candidates' versions; their rows locked (in id order) unless ``lock`` is false."""
    if not ids:
        return {}
    ordered = sorted(ids)
    if is_postgres(connection):
        rows = await connection.execute(
            text(
                "SELECT candidate_id, version FROM quota_candidates "
                "WHERE candidate_id = ANY(CAST(:ids AS text[])) ORDER BY candidate_id"
                + (" FOR UPDATE" if lock else "")
            ),
            {"ids": ordered},
        )
        return {r.candidate_id: r.version for r in rows}
    found: dict[str, int] = {}
    for chunk in _chunks(ordered):
        query = select(candidates.c.candidate_id, candidates.c.version).where(
            candidates.c.candidate_id.in_(chunk)
        )
        found |= {r.candidate_id: r.version for r in await connection.execute(query)}
    return found


async def candidate_states(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, StoredCandidate]:
    """Version and state JSON of these candidates."""
    if not ids:
        return {}
    if is_postgres(connection):
        rows = await connection.execute(
            text(
                "SELECT candidate_id, version, state FROM quota_candidates "
                "WHERE candidate_id = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": list(ids)},
        )
        return {r.candidate_id: StoredCandidate(r.version, r.state) for r in rows}
    found: dict[str, StoredCandidate] = {}
    for chunk in _chunks(ids):
        query = select(candidates.c.candidate_id, candidates.c.version, candidates.c.state).where(
            candidates.c.candidate_id.in_(chunk)
        )
        found |= {
            r.candidate_id: StoredCandidate(r.version, r.state) for r in await connection.execute(query)
        }
    return found


_CANDIDATE_COLUMNS = {
    "candidate_id": "text",
    "branch_id": "text",
    "stage": "text",
    "admitted_on": "date",
    "due_on": "date",
    "held_count": "int",
    "held_since": "timestamptz",
    "version": "bigint",
    "state": "text",
}


async def save_candidates(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or replace candidate rows (every column of ``quota_candidates``).

    On PostgreSQL a row at version 1 (a candidate that had no row when its batch locked
    the others) goes by binary COPY: the state text as it is, not parsed out of a JSON
    parameter (half of the statement's server CPU). If another writer created it
    meanwhile, the primary key fails the transaction instead of overwriting that row.
    """
    if not rows:
        return
    if is_postgres(connection):
        await _copy_candidates(connection, [r for r in rows if r["version"] == 1])
        rows = [r for r in rows if r["version"] != 1]
        if not rows:
            return
        columns = tuple(_CANDIDATE_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        await connection.execute(
            text(
                f"INSERT INTO quota_candidates ({', '.join(columns)}) "
                f"SELECT {', '.join(columns)} FROM {recordset(_CANDIDATE_COLUMNS)} "
                f"ON CONFLICT (candidate_id) DO UPDATE SET {updates}"
            ),
            {"rows": _json(rows)},
        )
        return
    statement = sqlite.insert(candidates)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["candidate_id"],
            set_={c.name: statement.excluded[c.name] for c in candidates.c if c.name != "candidate_id"},
        ),
        list(rows),
    )


async def _copy_candidates(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        columns = tuple(_CANDIDATE_COLUMNS)
        await (await _driver(connection)).copy_records_to_table(
            "quota_candidates", records=[tuple(r[c] for c in columns) for r in rows], columns=columns
        )


async def expiring_candidates(
    connection: AsyncConnection, held_before: datetime, limit: int
) -> dict[str, StoredCandidate]:
    """Candidates holding an event since before ``held_before``; locked, skipping rows in use."""
    query = (
        select(candidates.c.candidate_id, candidates.c.version, candidates.c.state)
        .where(candidates.c.held_since <= held_before)
        .order_by(candidates.c.held_since)
        .limit(limit)
    )
    if is_postgres(connection):
        query = query.with_for_update(skip_locked=True)
    rows = await connection.execute(query)
    return {r.candidate_id: StoredCandidate(r.version, r.state) for r in rows}


# -- tallies ---------------------------------------------------------------------------

_PG_TALLY_SQL = (
    "INSERT INTO quota_tallies AS t (branch_id, day, metric, category, value, version) "
    "SELECT b, d, m, c, v, 1 FROM "
    + recordset({"b": "text", "d": "date", "m": "text", "c": "text", "v": "bigint"}).replace(":rows", "$1")
    + " ORDER BY b, d, m, c "
    "ON CONFLICT (branch_id, day, metric, category) "
    "DO UPDATE SET value = t.value + excluded.value, version = t.version + 1 "
    "RETURNING branch_id, day, metric, category, value, version"
)


async def add_to_tallies(
    connection: AsyncConnection, sums: Mapping[KeyTuple, int]
) -> dict[KeyTuple, tuple[int, int]]:
    """Add each (non-zero) delta to its tally; the new (value, version) per key."""
    keys = sorted(k for k, n in sums.items() if n)
    if not keys:
        return {}
    if is_postgres(connection):
        rows = _json({"b": b, "d": d, "m": m, "c": c, "v": sums[(b, d, m, c)]} for b, d, m, c in keys)
        # the driver directly, same transaction: SQLAlchemy rows cost ~10 us each here
        found = await (await _driver(connection)).fetch(_PG_TALLY_SQL, rows)
        return {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in found}
    result: dict[KeyTuple, tuple[int, int]] = {}
    for chunk in _chunks(keys, 1000):
        rows_in = sqlite.insert(tallies).values(
            [
                {
                    "branch_id": k[0],
                    "day": k[1],
                    "metric": k[2],
                    "category": k[3],
                    "value": sums[k],
                    "version": 1,
                }
                for k in chunk
            ]
        )
        statement = rows_in.on_conflict_do_update(
            index_elements=["branch_id", "day", "metric", "category"],
            set_={"value": tallies.c.value + rows_in.excluded.value, "version": tallies.c.version + 1},
        ).returning(
            tallies.c.branch_id,
            tallies.c.day,
            tallies.c.metric,
            tallies.c.category,
            tallies.c.value,
            tallies.c.version,
        )
        for r in await connection.execute(statement):
            result[(r.branch_id, r.day, r.metric, r.category)] = (r.value, r.version)
    return result


# -- rejections ------------------------------------------------------------------------


async def insert_rejections(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of ``event_id``, ``code``, ``detail``, ``service``, ``rejected_at``, ``event`` (JSON text)."""
    if rows:
        await connection.execute(insert(rejections), list(rows))


# -- reference data --------------------------------------------------------------------


async def stored_branches(connection: AsyncConnection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        rows = await connection.execute(select(branches).where(branches.c.branch_id.in_(chunk)))
        found |= {r.branch_id: dict(r._mapping) for r in rows}
    return found


async def save_branches(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    statement = _upsert(connection, branches)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["branch_id"],
            set_={c.name: statement.excluded[c.name] for c in branches.c if c.name != "branch_id"},
        ),
        list(rows),
    )


_TARGET_KEY = ("unit_id", "tree", "year", "metric", "category", "kind")


async def stored_targets(
    connection: AsyncConnection, keys: Sequence[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    c = targets.c
    for key in keys:
        query = select(targets).where(
            *(c[name] == value for name, value in zip(_TARGET_KEY, key, strict=True))
        )
        found.extend(dict(r._mapping) for r in await connection.execute(query))
    return found


async def save_targets(connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    statement = _upsert(connection, targets)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=list(_TARGET_KEY),
            set_={name: statement.excluded[name] for name in ("value", "time", "event_id", "source_doc")},
        ),
        list(rows),
    )
