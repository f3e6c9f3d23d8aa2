"""The intake's database work: idempotency by event id, claims, and the branch registry.

Invariants:
- an event id is claimed once (insert-on-conflict-do-nothing: concurrent replicas race
  safely, exactly one inserts it); its ``content_hash`` never changes afterwards;
- an event is *published* iff its row's claim is in ``intake_claims``, which is written
  only after the broker acknowledged every event of that claim; a retry of a pending
  event moves it to the retry's claim, so one claim row marks a whole request published;
- a request uses one connection and, whatever its size, one statement per lookup
  (events, branches), one for the claim and one small one for the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import String, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake.domain.decide import Accepted, Known, Lookups, StoredEvent
from services.intake.domain.registry import Attribution, BranchHistory, Placement
from services.intake.tables import branches, claims, events, history
from shared.events import BranchRegistered

_CHUNK: Final = 5000  # ids per IN (...) list: well under SQLite's bind limit


@dataclass(frozen=True, slots=True)
class Claim:
    """This request's claim, and the ids another writer claimed between lookup and claim."""

    id: str
    lost: frozenset[str]


class IntakeStore:
    """The intake tables; :meth:`connection` gives one autocommit connection for a request."""

    def __init__(self, engine: AsyncEngine) -> None:
        # Autocommit: every statement below is atomic on its own and the order of the writes
        # is what keeps the invariants, so no BEGIN/COMMIT round trips are needed.
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.postgresql = engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[StoreConnection]:
        async with self.engine.connect() as connection:
            yield StoreConnection(connection, self.postgresql)


class StoreConnection:
    """One request's database work, on one connection: lookups, claim, commit."""

    def __init__(self, connection: AsyncConnection, postgresql: bool) -> None:
        self.connection, self.postgresql = connection, postgresql

    async def load(self, wanted: Lookups) -> Known:
        """Stored events and branch histories for the ids a request names."""
        stored = await self._events(self.connection, wanted.event_ids)
        found = await self._histories(self.connection, wanted.branch_ids)
        return Known(stored, found)

    async def claim(self, accepted: Sequence[Accepted], now: datetime) -> Claim:
        """Insert rows for new ids (one statement) and move pending ones to a new claim."""
        claim_id = uuid.uuid4().hex
        new = [a for a in accepted if not a.was_pending]
        again = [a.event.id for a in accepted if a.was_pending]
        inserted = await self._insert_events(self.connection, new, claim_id, now) if new else set()
        for chunk in self._chunks(again):
            await self.connection.execute(
                _STATEMENTS[self.postgresql].reclaim, {**chunk, "claim_id": claim_id}
            )
        return Claim(claim_id, frozenset({a.event.id for a in new} - inserted))

    async def commit(self, claim: Claim, accepted: Sequence[Accepted], now: datetime) -> None:
        """After the broker's ack: the registrations, then (last) the claim row that marks the
        request's events published. Each write is idempotent, so a crash in between is
        repaired by the client's retry."""
        placements = [a for a in accepted if a.placement is not None]
        if placements:
            await self._register(self.connection, placements, now)
        await self.connection.execute(
            _INSERT_CLAIM, {"claim_id": claim.id, "events": len(accepted), "published_at": now}
        )

    # -- lookups ----------------------------------------------------------------------------

    def _chunks(self, ids: Iterable[str]) -> Iterator[dict[str, list[str]]]:
        """Bind values for ``:ids``: one array on PostgreSQL, lists of at most ``_CHUNK`` elsewhere."""
        listed = sorted(set(ids))
        step = len(listed) if self.postgresql else _CHUNK
        for start in range(0, len(listed), max(step, 1)):
            yield {"ids": listed[start : start + step]}

    async def _events(self, connection: AsyncConnection, ids: Iterable[str]) -> dict[str, StoredEvent]:
        query = _STATEMENTS[self.postgresql].events
        found: dict[str, StoredEvent] = {}
        for chunk in self._chunks(ids):
            for row in await connection.execute(query, chunk):
                attribution = Attribution(row.unit_id, row.unit_tree) if row.unit_id else None
                found[row.id] = StoredEvent(
                    bytes(row.content_hash), bool(row.published), row.branch_id, attribution
                )
        return found

    async def _histories(self, connection: AsyncConnection, ids: Iterable[str]) -> dict[str, BranchHistory]:
        placements: dict[str, list[Placement]] = {}
        for chunk in self._chunks(ids):
            for row in await connection.execute(_STATEMENTS[self.postgresql].histories, chunk):
                placements.setdefault(row.branch_id, []).append(
                    Placement(row.branch_id, row.valid_from, row.event_id, row.legacy_parent, row.parent_2025)
                )
        return {branch_id: BranchHistory.of(found) for branch_id, found in placements.items()}

    # -- writes -----------------------------------------------------------------------------

    async def _insert_events(
        self, connection: AsyncConnection, new: Sequence[Accepted], claim_id: str, now: datetime
    ) -> set[str]:
        if self.postgresql:
            result = await connection.execute(_CLAIM_POSTGRESQL, _claim_arrays(new, claim_id, now))
        else:
            statement = sqlite.insert(events).on_conflict_do_nothing(index_elements=["id"])
            rows = [_event_row(a, claim_id, now) for a in new]
            result = await connection.execute(statement.returning(events.c.id), rows)
        return set(result.scalars().all())

    async def _register(self, connection: AsyncConnection, placed: Sequence[Accepted], now: datetime) -> None:
        dialect = postgresql if self.postgresql else sqlite
        await connection.execute(
            dialect.insert(history).on_conflict_do_nothing(index_elements=["event_id"]),
            [_history_row(a, now) for a in placed],
        )
        latest: dict[str, Accepted] = {}  # one row per branch: a multi-row upsert may not touch a row twice
        for each in sorted(placed, key=_placement_order):
            latest[each.event.data.branch_id] = each  # type: ignore[attr-defined]  # registrations only
        upsert = dialect.insert(branches)
        upsert = upsert.on_conflict_do_update(
            index_elements=["branch_id"],
            set_={name: upsert.excluded[name] for name in _BRANCH_UPDATED},
            where=upsert.excluded.valid_from >= branches.c.valid_from,
        )
        await connection.execute(upsert, [_branch_row(a, now) for a in latest.values()])


@dataclass(frozen=True, slots=True)
class _Statements:
    """Statements built once per dialect (building a select costs more than running a small one)."""

    events: Any
    histories: Any
    reclaim: Any

    @classmethod
    def build(cls, postgresql: bool) -> _Statements:
        def by_ids(column: Any) -> Any:
            if postgresql:
                return column == any_(bindparam("ids", type_=ARRAY(String)))
            return column.in_(bindparam("ids", expanding=True))

        e, h = events.c, history.c
        published = claims.c.claim_id.is_not(None).label("published")
        joined = events.outerjoin(claims, claims.c.claim_id == e.claim_id)
        return cls(
            events=select(e.id, e.content_hash, e.branch_id, e.unit_id, e.unit_tree, published)
            .select_from(joined)
            .where(by_ids(e.id)),
            histories=select(h.event_id, h.branch_id, h.valid_from, h.legacy_parent, h.parent_2025).where(
                by_ids(h.branch_id)
            ),
            reclaim=update(events).where(by_ids(e.id)).values(claim_id=bindparam("claim_id")),
        )


_STATEMENTS: Final = {flag: _Statements.build(flag) for flag in (False, True)}
_INSERT_CLAIM: Final = insert(claims)

_CLAIM_POSTGRESQL: Final = text(
    """
    INSERT INTO intake_events (id, content_hash, claim_id, type, event_time, branch_id, unit_id, unit_tree,
                               claimed_at)
    SELECT u.id, u.content_hash, :claim_id, u.type, u.event_time, u.branch_id, u.unit_id, u.unit_tree, :now
    FROM unnest(CAST(:ids AS text[]), CAST(:hashes AS bytea[]), CAST(:types AS text[]),
                CAST(:times AS timestamptz[]), CAST(:branches AS text[]), CAST(:units AS text[]),
                CAST(:trees AS text[]))
         AS u(id, content_hash, type, event_time, branch_id, unit_id, unit_tree)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)
"""One statement with one array per column: far cheaper than a multi-row VALUES list."""

_BRANCH_UPDATED: Final = (
    "name",
    "kind",
    "legacy_parent",
    "parent_2025",
    "valid_from",
    "event_id",
    "updated_at",
)


def _claim_arrays(new: Sequence[Accepted], claim_id: str, now: datetime) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "now": now,
        "ids": [a.event.id for a in new],
        "hashes": [a.hash for a in new],
        "types": [a.event.type for a in new],
        "times": [a.event.time for a in new],
        "branches": [a.branch_id for a in new],
        "units": [a.attribution.unit_id for a in new],
        "trees": [a.attribution.tree for a in new],
    }


def _event_row(accepted: Accepted, claim_id: str, now: datetime) -> dict[str, Any]:
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


def _placement_order(accepted: Accepted) -> tuple[datetime, str]:
    assert accepted.placement is not None
    return accepted.placement.valid_from, accepted.placement.event_id


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
