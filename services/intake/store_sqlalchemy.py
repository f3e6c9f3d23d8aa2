"""The intake's SQL through SQLAlchemy Core: SQLite (development, tests, ``ketnap up``).

Lists of ids are bound in chunks (SQLite limits the number of bind parameters);
statements are built once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.domain.decide import Accepted
from services.intake.domain.registry import Placement
from services.intake.store import EventRow, event_columns
from services.intake.tables import branches, claims, events, history

CHUNK: Final = 5000

_E, _H = events.c, history.c
_EVENTS: Final = (
    select(
        _E.id,
        _E.content_hash,
        claims.c.claim_id.is_not(None).label("published"),
        _E.branch_id,
        _E.unit_id,
        _E.unit_tree,
    )
    .select_from(events.outerjoin(claims, claims.c.claim_id == _E.claim_id))
    .where(_E.id.in_(bindparam("ids", expanding=True)))
)
_PLACEMENTS: Final = select(_H.event_id, _H.branch_id, _H.valid_from, _H.legacy_parent, _H.parent_2025).where(
    _H.branch_id.in_(bindparam("ids", expanding=True))
)
_RECLAIM: Final = (
    update(events).where(_E.id.in_(bindparam("ids", expanding=True))).values(claim_id=bindparam("claim_id"))
)
_CLAIM: Final = sqlite.insert(events).on_conflict_do_nothing(index_elements=["id"]).returning(_E.id)
_HISTORY: Final = sqlite.insert(history).on_conflict_do_nothing(index_elements=["event_id"])
_upsert = sqlite.insert(branches)
_BRANCHES: Final = _upsert.on_conflict_do_update(
    index_elements=["branch_id"],
    set_={
        name: _upsert.excluded[name]
        for name in ("name", "kind", "legacy_parent", "parent_2025", "valid_from", "event_id", "updated_at")
    },
    where=_upsert.excluded.valid_from >= branches.c.valid_from,
)
_CLAIMED: Final = insert(claims)


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


class SqlAlchemyBackend:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def lookup(
        self, event_ids: list[str], branch_ids: list[str]
    ) -> tuple[list[EventRow], list[Placement]]:
        found: list[EventRow] = []
        for chunk in _chunks(event_ids):
            rows = await self.connection.execute(_EVENTS, {"ids": chunk})
            found += [EventRow(r.id, bytes(r.content_hash), bool(r.published), *r[3:]) for r in rows]
        placements: list[Placement] = []
        for chunk in _chunks(branch_ids):
            rows = await self.connection.execute(_PLACEMENTS, {"ids": chunk})
            placements += [
                Placement(r.branch_id, r.valid_from, r.event_id, r.legacy_parent, r.parent_2025) for r in rows
            ]
        return found, placements

    async def insert_events(self, new: Sequence[Accepted], claim_id: str, now: datetime) -> set[str]:
        result = await self.connection.execute(_CLAIM, [event_columns(a, claim_id, now) for a in new])
        return set(result.scalars().all())

    async def reclaim(self, ids: list[str], claim_id: str) -> None:
        for chunk in _chunks(ids):
            await self.connection.execute(_RECLAIM, {"ids": chunk, "claim_id": claim_id})

    async def register(self, history: list[dict[str, Any]], branches: list[dict[str, Any]]) -> None:
        await self.connection.execute(_HISTORY, history)
        await self.connection.execute(_BRANCHES, branches)

    async def insert_claim(self, claim_id: str, events: int, now: datetime) -> None:
        await self.connection.execute(_CLAIMED, {"claim_id": claim_id, "events": events, "published_at": now})
