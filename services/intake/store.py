"""The intake's database work: idempotency by event id, claims, and the branch registry.

Invariants:
- an event id is claimed once (insert-on-conflict-do-nothing: concurrent replicas race
  safely, exactly one inserts it); its ``content_hash`` never changes afterwards;
- an event is *published* iff its row's claim is in ``intake_claims``, which is written
  only after the broker acknowledged every event of that claim (and after the
  registrations it carries); a retry of a pending event moves it to the retry's claim,
  so one claim row marks a whole request published;
- every statement is atomic on its own and the order of the writes keeps the
  invariants, so the connection runs in autocommit: no BEGIN/COMMIT round trips;
- a request uses one connection and, whatever its size: one lookup, one claim and one
  small commit (PostgreSQL: one statement each; SQLite: a few).

Two back ends do the SQL: :mod:`store_postgresql` (asyncpg directly: a quarter of
SQLAlchemy's cost per statement, which matters for single-event requests) and
:mod:`store_sqlalchemy` (SQLAlchemy Core, for SQLite).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.domain.decide import Accepted, Known, Lookups, StoredEvent
from services.intake.domain.registry import Attribution, BranchHistory, Placement
from shared.events import BranchRegistered


class DatabaseUnavailable(Exception):
    """The database could not be reached or refused a statement; the request may be retried."""


@dataclass(frozen=True, slots=True)
class Claim:
    """This request's claim, and the ids another writer claimed between lookup and claim."""

    id: str
    lost: frozenset[str]


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    content_hash: bytes
    published: bool
    branch_id: str | None
    unit_id: str | None
    unit_tree: str | None


class Backend(Protocol):
    """The SQL of one database dialect; every method is one atomic statement (or a few)."""

    async def lookup(
        self, event_ids: list[str], branch_ids: list[str]
    ) -> tuple[list[EventRow], list[Placement]]: ...

    async def insert_events(self, new: Sequence[Accepted], claim_id: str, now: datetime) -> set[str]:
        """Rows for new ids (on conflict: nothing); the ids actually inserted."""
        ...

    async def reclaim(self, ids: list[str], claim_id: str) -> None:
        """Move pending rows (same content, earlier failed attempt) to this claim."""
        ...

    async def register(self, history: list[dict[str, Any]], branches: list[dict[str, Any]]) -> None: ...

    async def insert_claim(self, claim_id: str, events: int, now: datetime) -> None: ...


class IntakeStore:
    """The intake tables; :meth:`connection` gives one autocommit connection for a request.

    PostgreSQL statements run on the store's own small asyncpg pool rather than through
    SQLAlchemy's: its pre-ping (BEGIN, a query, ROLLBACK) tripled the round trips of a
    single-event request. A connection the server closed is noticed by asyncpg and
    replaced at the next checkout; one that fails mid-request makes it a ``503``.
    """

    def __init__(self, engine: AsyncEngine, *, pool_size: int = 10) -> None:
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.postgresql = engine.dialect.name == "postgresql"
        # Imported here: the back ends import this module's row types.
        from services.intake.store_postgresql import DRIVER_ERRORS, PostgresBackend, PostgresPool
        from services.intake.store_sqlalchemy import SqlAlchemyBackend

        self._postgres, self._generic = PostgresBackend, SqlAlchemyBackend
        self._pool = PostgresPool(engine.url, pool_size) if self.postgresql else None
        self._errors: tuple[type[BaseException], ...] = (DBAPIError, OSError, *DRIVER_ERRORS)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[StoreConnection]:
        """One connection for a request; any database failure becomes :class:`DatabaseUnavailable`."""
        try:
            if self._pool is not None:
                async with self._pool.acquire() as raw:
                    yield StoreConnection(self._postgres(raw))
            else:
                async with self.engine.connect() as connection:
                    yield StoreConnection(self._generic(connection))
        except self._errors as down:
            raise DatabaseUnavailable(type(down).__name__) from down

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class StoreConnection:
    """One request's database work: lookups, claim, commit."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def load(self, wanted: Lookups) -> Known:
        """Stored events and branch histories for the ids a request names."""
        rows, placements = await self.backend.lookup(sorted(wanted.event_ids), sorted(wanted.branch_ids))
        stored = {row.id: _stored(row) for row in rows}
        grouped: dict[str, list[Placement]] = {}
        for placement in placements:
            grouped.setdefault(placement.branch_id, []).append(placement)
        return Known(stored, {branch_id: BranchHistory.of(found) for branch_id, found in grouped.items()})

    async def claim(self, accepted: Sequence[Accepted], now: datetime) -> Claim:
        """Claim new ids (one statement) and move pending ones to the new claim, before publishing."""
        claim_id = uuid.uuid4().hex
        new = [a for a in accepted if not a.was_pending]
        again = sorted(a.event.id for a in accepted if a.was_pending)
        inserted = await self.backend.insert_events(new, claim_id, now) if new else set()
        if again:
            await self.backend.reclaim(again, claim_id)
        return Claim(claim_id, frozenset({a.event.id for a in new} - inserted))

    async def commit(self, claim: Claim, accepted: Sequence[Accepted], now: datetime) -> None:
        """After the broker's ack: the registrations, then (last) the claim row that marks the
        request's events published. Each write is idempotent, so a crash in between is
        repaired by the client's retry."""
        placed = [a for a in accepted if a.placement is not None]
        if placed:
            await self.backend.register([_history_row(a, now) for a in placed], _branch_rows(placed, now))
        await self.backend.insert_claim(claim.id, len(accepted), now)


def _stored(row: EventRow) -> StoredEvent:
    attribution = None
    if row.unit_id is not None and row.unit_tree in ("legacy", "2025"):
        attribution = Attribution(row.unit_id, "legacy" if row.unit_tree == "legacy" else "2025")
    return StoredEvent(bytes(row.content_hash), row.published, row.branch_id, attribution)


def event_columns(accepted: Accepted, claim_id: str, now: datetime) -> dict[str, Any]:
    """The ``intake_events`` row of an accepted event."""
    return {
        "id": accepted.event.id,
        "content_hash": accepted.hash,
        "claim_id": claim_id,
        "type": accepted.event.type,
        "event_time": accepted.event.time,
        "branch_id": accepted.branch_id,
        "unit_id": accepted.attribution.unit_id,
        "unit_tree": accepted.attribution.tree,
        "claimed_at": now,
    }


def _history_row(accepted: Accepted, now: datetime) -> dict[str, Any]:
    placement = accepted.placement
    assert placement is not None
    return {
        "event_id": placement.event_id,
        "branch_id": placement.branch_id,
        "valid_from": placement.valid_from,
        "legacy_parent": placement.legacy,
        "parent_2025": placement.v2025,
        "recorded_at": now,
    }


def _branch_rows(placed: Sequence[Accepted], now: datetime) -> list[dict[str, Any]]:
    """One row per branch, its latest placement: a multi-row upsert may not touch a row twice."""
    latest: dict[str, Accepted] = {}
    for each in sorted(placed, key=_placement_order):
        latest[_registration(each).branch_id] = each
    return [_branch_row(a, now) for a in latest.values()]


def _placement_order(accepted: Accepted) -> tuple[datetime, str]:
    assert accepted.placement is not None
    return accepted.placement.valid_from, accepted.placement.event_id


def _registration(accepted: Accepted) -> BranchRegistered:
    data = accepted.event.data
    assert isinstance(data, BranchRegistered)
    return data


def _branch_row(accepted: Accepted, now: datetime) -> dict[str, Any]:
    data, placement = _registration(accepted), accepted.placement
    assert placement is not None
    return {
        "branch_id": data.branch_id,
        "name": data.name,
        "kind": data.kind.value,
        "legacy_parent": placement.legacy,
        "parent_2025": placement.v2025,
        "valid_from": placement.valid_from,
        "event_id": accepted.event.id,
        "updated_at": now,
    }
