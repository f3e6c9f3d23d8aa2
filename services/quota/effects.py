"""What one batch writes, gathered first so each table gets one statement per batch.

Tally deltas are summed per key (the source event and its recorded time kept for the
outgoing message); rejections keep their original event (or are looked up in
``quota_processed``); ``write`` adds to the tallies, then writes rejections and the
outbox (tally changes, then rejections) in the caller's transaction; ``report``
updates metrics and logs once the transaction committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.quota import store, wire
from services.quota.tables import outbox
from shared.logging import get_logger
from shared.metrics import EVENTS_PROCESSED, REJECTIONS
from shared.outbox import OutboxMessage, enqueue

log = get_logger(__name__)
SERVICE = wire.SERVICE


@dataclass
class Effects:
    """What one batch writes, gathered before the writes (one statement per table)."""

    now: datetime
    sums: Counter[store.KeyTuple] = field(default_factory=Counter)
    sources: dict[store.KeyTuple, tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=dict)
    rejected: list[tuple[str, str, str, dict[str, Any] | str | None, str | None]] = field(
        default_factory=list
    )
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    messages: list[OutboxMessage] = field(default_factory=list)

    def reject(
        self,
        event_id: str,
        code: str,
        detail: str,
        event: dict[str, Any] | str | None,
        correlation: str | None,
    ) -> None:
        """``event`` None: the original is looked up in ``quota_processed`` before writing.

        A poison's id or detail may carry NUL (from a record key or a refused id), which
        PostgreSQL text cannot hold: it becomes U+FFFD so the rejection is stored, not retried forever.
        """
        self.rejected.append((_storable(event_id), code, _storable(detail), event, correlation))

    def poison(self, poison: wire.Poison, event_type: str = "unknown") -> None:
        self.reject(poison.key, poison.code, poison.detail, poison.event, poison.correlation_id)
        self.outcomes[(event_type, "rejected")] += 1

    def count(self, decoded: wire.Decoded, sums: Counter[store.KeyTuple]) -> None:
        source = (decoded.id, wire.source_headers(decoded.recorded.isoformat(), decoded.correlation_id))
        for key, n in sums.items():
            if n:
                self.sums[key] += n
                self.sources[key] = source

    async def write(self, connection: AsyncConnection, originals: Mapping[str, dict[str, Any]]) -> None:
        changed = await store.add_to_tallies(connection, self.sums)
        for key, (value, version) in changed.items():
            source, headers = self.sources[key]
            self.messages.append(wire.tally_change_from(key, self.sums[key], value, version, source, headers))
        await self._write_rejections(connection, originals)
        await enqueue(connection, outbox, self.messages)

    async def _write_rejections(
        self, connection: AsyncConnection, originals: Mapping[str, dict[str, Any]]
    ) -> None:
        missing = [r[0] for r in self.rejected if r[3] is None and r[0] not in originals]
        found = {**originals, **(await store.originals(connection, missing) if missing else {})}
        rows = []
        for event_id, code, detail, event, correlation in self.rejected:
            original: dict[str, Any] | str = (
                event if event is not None else found.get(event_id, {"id": event_id})
            )
            self.messages.append(wire.rejection(event_id, code, detail, original, self.now, correlation))
            rows.append(
                {
                    "event_id": event_id,
                    "code": code,
                    "detail": detail,
                    "service": SERVICE,
                    "rejected_at": self.now,
                    "event": orjson.dumps(original).decode(),
                }
            )
        await store.insert_rejections(connection, rows)

    def report(self) -> None:
        """Metrics and one log line per rejection, once committed."""
        for (event_type, outcome), n in self.outcomes.items():
            EVENTS_PROCESSED.labels(SERVICE, event_type, outcome).inc(n)
        for code, n in Counter(r[1] for r in self.rejected).items():
            REJECTIONS.labels(SERVICE, code).inc(n)
        for event_id, code, detail, _, correlation in self.rejected:
            log.info(
                "event rejected", event_id=event_id, correlation_id=correlation, code=code, detail=detail
            )


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")
