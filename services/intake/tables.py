"""The intake's tables (``intake_`` prefix); the migration in ``migrations/versions`` creates them.

- ``intake_events``: one row per event id ever claimed, with the hash of its content
  and the claim (request) that last set out to publish it;
- ``intake_claims``: one row per claim whose events the broker acknowledged: an event
  is *published* iff its claim is here, *pending* otherwise;
- ``intake_branches``: each branch's latest registration; ``intake_branch_history``:
  every accepted registration, valid from its event time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table, TypeDecorator
from sqlalchemy.engine import Dialect


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
    Column("claim_id", String(32), nullable=False),
    Column("type", String(128), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("branch_id", String(128)),
    Column("unit_id", String(16)),
    Column("unit_tree", String(8)),
    Column("claimed_at", UtcDateTime, nullable=False),
)
claims = Table(
    "intake_claims",
    metadata,
    Column("claim_id", String(32), primary_key=True),
    Column("events", Integer, nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
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
