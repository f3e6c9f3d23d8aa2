"""The quota service's tables (created by ``migrations/versions/0001_quota_tables.py``).

- ``quota_processed``: every candidate event id taken in, with a digest of its content
  (the idempotency key: same id + same digest = duplicate, other digest = id_conflict)
  and the original wire event (what a rejection carries, what a replay resends);
- ``quota_candidates``: one row per candidate [quần chúng ưu tú]: the domain state as
  JSON plus the columns the API filters on; ``version`` rises on every write;
- ``quota_tallies``: one count per (branch, local date, metric, category) with the
  version of its last change; provinces are summed at query time through
  ``quota_branches`` (no national or provincial counter row: no hot row);
- ``quota_branches``: each branch's parent unit and province in both trees;
- ``quota_targets``: the target in force per (unit, tree, year, metric, category, kind);
- ``quota_rejections``: what was rejected, for ``GET /v1/rejections`` (``seq`` is the cursor);
- ``quota_outbox`` and ``quota_consumer_offsets``: the shared plumbing's tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

from shared.consumer import offsets_table
from shared.outbox import outbox_table

SERVICE = "quota"
metadata = MetaData()

processed = Table(
    "quota_processed",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("digest", LargeBinary, nullable=False),
    Column("candidate_id", Text, nullable=True),
    Column("event", Text, nullable=False),
)

candidates = Table(
    "quota_candidates",
    metadata,
    Column("candidate_id", Text, primary_key=True),
    Column("branch_id", Text, nullable=True),
    Column("stage", Text, nullable=True),
    Column("admitted_on", Date, nullable=True),
    Column("due_on", Date, nullable=True),
    Column("held_count", Integer, nullable=False),
    Column("held_since", DateTime(timezone=True), nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
)

tallies = Table(
    "quota_tallies",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("category", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
)

branches = Table(
    "quota_branches",
    metadata,
    Column("branch_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("parent_legacy", Text, nullable=True),
    Column("parent_2025", Text, nullable=True),
    Column("province_legacy", Text, nullable=True),
    Column("province_2025", Text, nullable=True),
    Column("district_legacy", Text, nullable=True),
    Column("registered", Text, nullable=False),
)

targets = Table(
    "quota_targets",
    metadata,
    Column("unit_id", Text, primary_key=True),
    Column("tree", Text, primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("metric", Text, primary_key=True),
    Column("category", Text, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("event_id", Text, nullable=False),
    Column("source_doc", Text, nullable=True),
)

rejections = Table(
    "quota_rejections",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("service", Text, nullable=False),
    Column("rejected_at", DateTime(timezone=True), nullable=False),
    Column("event", Text, nullable=False),
)

outbox = outbox_table(metadata, SERVICE)
consumer_offsets = offsets_table(metadata, SERVICE)
