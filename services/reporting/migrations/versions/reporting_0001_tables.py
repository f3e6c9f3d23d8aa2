"""Reporting tables: tallies (the truth), placements, unit aggregates, activity, targets, feed, plumbing.

Revision ID: reporting_0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reporting_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONTHS = [f"m{month:02d}" for month in range(1, 13)]
PLACES = ["anchor_legacy", "district_legacy", "province_legacy", "anchor_2025", "province_2025"]


def _tree() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("tree", sa.String(8), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "reporting_branches",
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
    )
    for column in ("anchor_legacy", "district_legacy", "province_legacy", "anchor_2025", "province_2025"):
        op.create_index(f"ix_reporting_branches_{column}", "reporting_branches", [column])
    op.create_table(
        "reporting_tallies",
        sa.Column("branch_id", sa.String(128), primary_key=True),
        sa.Column("series", sa.SmallInteger, primary_key=True),
        sa.Column("day", sa.Integer, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    for name, bucket in (("reporting_unit_months", "month"), ("reporting_unit_days", "day")):
        op.create_table(
            name,
            _tree(),
            sa.Column("unit_id", sa.String(16), primary_key=True),
            sa.Column("series", sa.SmallInteger, primary_key=True),
            sa.Column(bucket, sa.Integer, primary_key=True),
            sa.Column("part", sa.SmallInteger, primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
        )
    op.create_index("ix_reporting_unit_months_doc", "reporting_unit_months", ["tree", "unit_id", "month"])
    op.create_table(
        "reporting_activity",
        sa.Column("branch_id", sa.String(128), primary_key=True),
        sa.Column("year", sa.SmallInteger, primary_key=True),
        *(sa.Column(name, sa.Integer, nullable=False, server_default="0") for name in MONTHS),
        *(sa.Column(name, sa.String(16), nullable=True) for name in PLACES),
    )
    for name in PLACES:
        op.create_index(f"ix_reporting_activity_{name}", "reporting_activity", ["year", name])
    op.create_table(
        "reporting_activity_gen",
        sa.Column("year", sa.SmallInteger, primary_key=True),
        sa.Column("gen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reporting_unit_branches",
        _tree(),
        sa.Column("unit_id", sa.String(16), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "reporting_targets",
        _tree(),
        sa.Column("unit_id", sa.String(16), primary_key=True),
        sa.Column("year", sa.SmallInteger, primary_key=True),
        sa.Column("series", sa.SmallInteger, primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(256), nullable=False),
    )
    op.create_table(
        "reporting_dirty",
        _tree(),
        sa.Column("unit_id", sa.String(16), primary_key=True),
        sa.Column("month", sa.Integer, primary_key=True),
    )
    op.create_table(
        "reporting_feed_versions",
        _tree(),
        sa.Column("unit_id", sa.String(16), primary_key=True),
        sa.Column("month", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "reporting_consumer_offsets",
        sa.Column("group_id", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reporting_outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for name in (
        "reporting_outbox",
        "reporting_consumer_offsets",
        "reporting_feed_versions",
        "reporting_dirty",
        "reporting_targets",
        "reporting_unit_branches",
        "reporting_activity_gen",
        "reporting_activity",
        "reporting_unit_days",
        "reporting_unit_months",
        "reporting_tallies",
        "reporting_branches",
    ):
        op.drop_table(name)
