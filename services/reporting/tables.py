"""The reporting service's tables (SQLAlchemy Core); created by its Alembic migration.

Storage shape (docs/reporting.md explains why):
- ``reporting_tallies``: the truth, one row per (branch, local day, series) with the
  absolute ``value`` and the ``version`` that set it (value-based last-write-wins),
  and what its last update replaced (``prev_value``, ``prev_version``: the fold's
  upsert returns them).
- ``reporting_branches``: each branch's latest registration and, per tree, its
  placement: anchor unit, ``mapped`` or not, and the district and province on its
  chain, so "branches under a unit" is one indexed filter and the fold reads a
  branch's place in both trees with one row.
- ``reporting_unit_months``: per (unit, series, month, part) (``unit``: the tree and
  unit as one integer, :mod:`services.reporting.unitkeys`) the sum of the
  counts of the branches whose chain passes the unit (``part`` 0) and of those
  unmapped at the unit (``part`` 1), for every unit except the communes of a
  district (a district's ~15 communes are summed from their branches' tallies).
- ``reporting_unit_days``: the same per day, for the same units (a period's
  partial months at its edges).
- ``reporting_activity``: per (branch, year) which days had any positive count
  (``m01``..``m12`` day bitmasks) and a copy of the branch's placement, for
  ``reporting.branches_with_events``.
- ``reporting_activity_gen``: per year a generation raised whenever an activity row
  of that year changes, so a cached count of active branches is known to be fresh.
- ``reporting_placement_gen``: one generation, raised by a trigger on every update of
  ``reporting_branches`` (a registration): while it holds, a fold may reuse the branch
  rows it read before.
- ``reporting_unit_branches``: per (tree, unit) how many branches pass it.
- ``reporting_targets``: the winning target per key ((time, event id) latest wins).
- ``reporting_dirty`` / ``reporting_feed_versions``: the rollups feed's dirty
  (tree, region, month) marks, and per document key the last version, a digest of
  its content (unchanged documents are not sent again) and when it was sent.
- ``reporting_outbox`` and ``reporting_consumer_offsets``: the shared plumbing's.

Days are ``date.toordinal()``, months ``year * 12 + month - 1`` (the domain's
``month_key``), a (metric, category) pair is one small ``series`` number.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from shared.outbox import outbox_table

metadata: Final = sa.MetaData()

TOTAL: Final = 0
UNMAPPED: Final = 1
MONTH_COLUMNS: Final[tuple[str, ...]] = tuple(f"m{month:02d}" for month in range(1, 13))
ACTIVITY_PLACES: Final = (
    "anchor_legacy",
    "district_legacy",
    "province_legacy",
    "anchor_2025",
    "province_2025",
)
"""The branch's placement, copied on its activity rows: "active branches under a unit" is one index."""


def _tree() -> sa.Column[str]:
    return sa.Column("tree", sa.String(8), primary_key=True)


branches: Final = sa.Table(
    "reporting_branches",
    metadata,
    sa.Column("branch_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("kind", sa.String(16), nullable=True),
    sa.Column("legacy_parent", sa.String(16), nullable=True),
    sa.Column("parent_2025", sa.String(16), nullable=True),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("event_id", sa.String(256), nullable=True),
    sa.Column("anchor_legacy", sa.String(16), nullable=False),
    sa.Column("mapped_legacy", sa.Boolean, nullable=False),
    sa.Column("district_legacy", sa.String(16), nullable=True),
    sa.Column("province_legacy", sa.String(16), nullable=True),
    sa.Column("anchor_2025", sa.String(16), nullable=False),
    sa.Column("mapped_2025", sa.Boolean, nullable=False),
    sa.Column("province_2025", sa.String(16), nullable=True),
    *(
        sa.Index(f"ix_reporting_branches_{column}", column)
        for column in ("anchor_legacy", "district_legacy", "province_legacy", "anchor_2025", "province_2025")
    ),
)

tallies: Final = sa.Table(
    "reporting_tallies",
    metadata,
    sa.Column("branch_id", sa.String(128), primary_key=True),
    sa.Column("series", sa.SmallInteger, primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("prev_value", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("prev_version", sa.BigInteger, nullable=False, server_default="0"),
)

unit_months: Final = sa.Table(
    "reporting_unit_months",
    metadata,
    sa.Column("unit", sa.Integer, primary_key=True),
    sa.Column("series", sa.SmallInteger, primary_key=True),
    sa.Column("month", sa.Integer, primary_key=True),
    sa.Column("part", sa.SmallInteger, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Index("ix_reporting_unit_months_doc", "unit", "month"),
)

unit_days: Final = sa.Table(
    "reporting_unit_days",
    metadata,
    sa.Column("unit", sa.Integer, primary_key=True),
    sa.Column("series", sa.SmallInteger, primary_key=True),
    sa.Column("day", sa.Integer, primary_key=True),
    sa.Column("part", sa.SmallInteger, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

activity: Final = sa.Table(
    "reporting_activity",
    metadata,
    sa.Column("branch_id", sa.String(128), primary_key=True),
    sa.Column("year", sa.SmallInteger, primary_key=True),
    *(sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in MONTH_COLUMNS),
    *(sa.Column(name, sa.String(16), nullable=True) for name in ACTIVITY_PLACES),
    *(sa.Index(f"ix_reporting_activity_{name}", "year", name) for name in ACTIVITY_PLACES),
)

activity_gen: Final = sa.Table(
    "reporting_activity_gen",
    metadata,
    sa.Column("year", sa.SmallInteger, primary_key=True),
    sa.Column("gen", sa.BigInteger, nullable=False),
)

placement_gen: Final = sa.Table(
    "reporting_placement_gen",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True),
    sa.Column("gen", sa.BigInteger, nullable=False),
)

unit_branches: Final = sa.Table(
    "reporting_unit_branches",
    metadata,
    _tree(),
    sa.Column("unit_id", sa.String(16), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

targets: Final = sa.Table(
    "reporting_targets",
    metadata,
    _tree(),
    sa.Column("unit_id", sa.String(16), primary_key=True),
    sa.Column("year", sa.SmallInteger, primary_key=True),
    sa.Column("series", sa.SmallInteger, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_id", sa.String(256), nullable=False),
)

dirty: Final = sa.Table(
    "reporting_dirty",
    metadata,
    _tree(),
    sa.Column("unit_id", sa.String(16), primary_key=True),
    sa.Column("month", sa.Integer, primary_key=True),
)

feed_versions: Final = sa.Table(
    "reporting_feed_versions",
    metadata,
    sa.Column("tree", sa.String(8)),
    sa.Column("unit_id", sa.String(16)),
    sa.Column("month", sa.Integer),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(32), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    # a month's units together: the feed reads the versions of a (tree, month) (reporting_0008)
    sa.PrimaryKeyConstraint("tree", "month", "unit_id", name="reporting_feed_versions_pkey"),
)

outbox: Final = outbox_table(metadata, "reporting")
