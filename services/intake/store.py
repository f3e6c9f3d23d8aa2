"""The intake's database: event ids for idempotency and the branch registry with its history.

Invariants:
- ``intake_events`` has one row per event id ever claimed; ``content_hash`` never
  changes; ``status`` goes ``pending`` -> ``published`` (only after the broker's ack)
  and never back. Claims are insert-on-conflict-do-nothing, so concurrent replicas
  race safely: exactly one of them owns a new id.
- ``intake_branch_history`` keeps every accepted registration (valid from its
  event time); ``intake_branches`` holds each branch's latest one.
- A request costs one round trip for the lookups, one for the claim and one for
  the commit, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake.domain.decide import Accepted, Known, Lookups, StoredEvent
from services.intake.domain.registry import Attribution, BranchHistory, Placement
from shared.events import BranchRegistered

PENDING: Final = "pending"
PUBLISHED: Final = "published"
_CHUNK: Final = 5000  # ids per IN (...) list: well under SQLite's and asyncpg's bind limits


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC; SQLite returns them naive, so they are made aware again."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


metadata = MetaData()
events = Table(
    "intake_events",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("content_hash", LargeBinary(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("type", String(128), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("branch_id", String(128)),
    Column("unit_id", String(16)),
    Column("unit_tree", String(8)),
    Column("claimed_at", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime),
)
branches = Table(
    "intake_branches",
    metadata,
    Column("branch_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("legacy_parent", String(16)),
    Column("parent_2025", String(16)),
    Column("valid_from", UtcDateTime, nullable=False),
    Column("event_id", String(256), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
history = Table(
    "intake_branch_history",
    metadata,
    Column("event_id", String(256), primary_key=True),
    Column("branch_id", String(128), nullable=False),
    Column("valid_from", UtcDateTime, nullable=False),
    Column("legacy_parent", String(16)),
    Column("parent_2025", String(16)),
    Column("recorded_at", UtcDateTime, nullable=False),
    Index("ix_intake_branch_history_branch", "branch_id", "valid_from"),
)


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _insert(dialect: str, table: Table) -> Any:
    """INSERT with ON CONFLICT support for the engine's dialect (PostgreSQL or SQLite)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class IntakeStore:
    """Async access to the intake tables; every method is one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    async def load(self, wanted: Lookups) -> Known:
        """Stored events and branch histories for the ids a request names."""
        async with self.engine.connect() as connection:
            stored = await self._events(connection, wanted.event_ids)
            found = await self._histories(connection, wanted.branch_ids)
        return Known(stored, found)

    async def _events(self, connection: AsyncConnection, ids: Iterable[str]) -> dict[str, StoredEvent]:
        c = events.c
        query = select(c.id, c.content_hash, c.status, c.branch_id, c.unit_id, c.unit_tree)
        found: dict[str, StoredEvent] = {}
        for chunk in _chunks(ids):
            for row in await connection.execute(query.where(c.id.in_(chunk))):
                attribution = Attribution(row.unit_id, row.unit_tree) if row.unit_id else None
                found[row.id] = StoredEvent(
                    bytes(row.content_hash), row.status == PUBLISHED, row.branch_id, attribution
                )
        return found

    async def _histories(self, connection: AsyncConnection, ids: Iterable[str]) -> dict[str, BranchHistory]:
        c = history.c
        query = select(c.event_id, c.branch_id, c.valid_from, c.legacy_parent, c.parent_2025)
        placements: dict[str, list[Placement]] = {}
        for chunk in _chunks(ids):
            for row in await connection.execute(query.where(c.branch_id.in_(chunk))):
                placements.setdefault(row.branch_id, []).append(
                    Placement(row.branch_id, row.valid_from, row.event_id, row.legacy_parent, row.parent_2025)
                )
        return {branch_id: BranchHistory.of(found) for branch_id, found in placements.items()}

    async def claim(self, accepted: Sequence[Accepted], now: datetime) -> set[str]:
        """Insert ``pending`` rows for new ids; returns the ids another writer claimed first."""
        new = [a for a in accepted if not a.was_pending]
        if not new:
            return set()
        statement = _insert(self.dialect, events).on_conflict_do_nothing(index_elements=["id"])
        rows = [_event_row(a, now) for a in new]
        async with self.engine.begin() as connection:
            result = await connection.execute(statement.returning(events.c.id), rows)
            inserted = set(result.scalars().all())
        return {a.event.id for a in new} - inserted

    async def commit(self, accepted: Sequence[Accepted], now: datetime) -> None:
        """After the broker's ack: mark the events published and record the registrations."""
        if not accepted:
            return
        placements = [a for a in accepted if a.placement is not None]
        async with self.engine.begin() as connection:
            for chunk in _chunks(a.event.id for a in accepted):
                await connection.execute(
                    update(events).where(events.c.id.in_(chunk)).values(status=PUBLISHED, published_at=now)
                )
            if placements:
                await self._register(connection, placements, now)

    async def _register(self, connection: AsyncConnection, placed: Sequence[Accepted], now: datetime) -> None:
        rows = [_history_row(a, now) for a in placed]
        await connection.execute(
            _insert(self.dialect, history).on_conflict_do_nothing(index_elements=["event_id"]), rows
        )
        latest: dict[str, Accepted] = {}
        for each in sorted(placed, key=_placement_order):
            latest[each.placement.branch_id] = each  # type: ignore[union-attr]  # filtered above
        upsert = _insert(self.dialect, branches)
        upsert = upsert.on_conflict_do_update(
            index_elements=["branch_id"],
            set_={name: upsert.excluded[name] for name in _BRANCH_UPDATED},
            where=upsert.excluded.valid_from >= branches.c.valid_from,
        )
        await connection.execute(upsert, [_branch_row(a, now) for a in latest.values()])


_BRANCH_UPDATED: Final = (
    "name",
    "kind",
    "legacy_parent",
    "parent_2025",
    "valid_from",
    "event_id",
    "updated_at",
)


def _placement_order(accepted: Accepted) -> tuple[datetime, str]:
    assert accepted.placement is not None
    return accepted.placement.valid_from, accepted.placement.event_id


def _event_row(accepted: Accepted, now: datetime) -> dict[str, Any]:
    return {
        "id": accepted.event.id,
        "content_hash": accepted.hash,
        "status": PENDING,
        "type": accepted.event.type,
        "event_time": accepted.event.time,
        "branch_id": accepted.branch_id,
        "unit_id": accepted.attribution.unit_id,
        "unit_tree": accepted.attribution.tree,
        "claimed_at": now,
        "published_at": None,
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


def _branch_row(accepted: Accepted, now: datetime) -> dict[str, Any]:
    data = accepted.event.data
    assert isinstance(data, BranchRegistered)
    assert accepted.placement is not None
    return {
        "branch_id": data.branch_id,
        "name": data.name,
        "kind": data.kind.value,
        "legacy_parent": accepted.placement.legacy,
        "parent_2025": accepted.placement.v2025,
        "valid_from": accepted.placement.valid_from,
        "event_id": accepted.event.id,
        "updated_at": now,
    }
