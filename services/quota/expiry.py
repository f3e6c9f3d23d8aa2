"""Held events past ``KETNAP_PARK_TTL``: rejected ``unknown_candidate`` and forgotten.

Runs as a periodic task; candidates are claimed ``FOR UPDATE SKIP LOCKED`` (PostgreSQL)
so a batch holding one is never overwritten; a forgotten event leaves
``quota_processed`` too, so a replay of it is a new arrival. Also refreshes the
``ketnap_held_events`` gauge.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.quota import store, wire
from services.quota.domain import CandidateState, Rejection, expire_held
from services.quota.effects import Effects
from services.quota.handlers import candidate_row
from services.quota.tables import candidates
from shared.metrics import gauge

SERVICE = wire.SERVICE
HELD_EVENTS = gauge(
    "ketnap_held_events", "Candidate events held, waiting for their sourced or voided event.", ("service",)
)


async def expire_held_candidates(
    engine: AsyncEngine, now: datetime, ttl: timedelta, *, limit: int = 500
) -> int:
    """Reject ``unknown_candidate`` what has been held ``ttl`` or longer; the number rejected."""
    effects = Effects(now)
    cutoff = now.astimezone(UTC) - ttl
    async with engine.begin() as connection:
        stored = await store.expiring_candidates(connection, cutoff, limit)
        if not stored:
            return 0
        rows: list[dict[str, Any]] = []
        expired: list[Rejection] = []
        for found in stored.values():
            state, rejections = expire_held(CandidateState.from_dict(orjson.loads(found.state)), now, ttl)
            rows.append(candidate_row(state, found.version + 1))
            expired.extend(rejections)
        ids = [r.event_id for r in expired]
        originals = await store.originals(connection, ids)
        for r in expired:
            original = originals.get(r.event_id) or wire.wire_event(r.event)
            effects.reject(r.event_id, str(r.code), r.detail, original, None)
        await store.save_candidates(connection, rows)
        await store.forget_processed(connection, ids)
        await effects.write(connection, {})
    effects.report()
    return len(expired)


async def held_events(engine: AsyncEngine) -> int:
    """How many events are held now (for the ``ketnap_held_events`` gauge)."""
    async with engine.connect() as connection:
        total = await connection.scalar(
            select(func.coalesce(func.sum(candidates.c.held_count), 0)).where(
                candidates.c.held_since.is_not(None)
            )
        )
    count = int(total or 0)
    HELD_EVENTS.labels(SERVICE).set(count)
    return count
