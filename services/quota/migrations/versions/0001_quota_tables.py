"""quota tables: processed ids, candidates, tallies, branches, targets, rejections, outbox, offsets

Revision ID: 0001_quota_tables
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_quota_tables"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quota_processed",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("digest", sa.LargeBinary, nullable=False),
        sa.Column("candidate_id", sa.Text, nullable=True),
        sa.Column("event", sa.Text, nullable=False),
    )
    op.create_table(
        "quota_candidates",
        sa.Column("candidate_id", sa.Text, primary_key=True),
        sa.Column("branch_id", sa.Text, nullable=True),
        sa.Column("stage", sa.Text, nullable=True),
        sa.Column("admitted_on", sa.Date, nullable=True),
        sa.Column("due_on", sa.Date, nullable=True),
        sa.Column("held_count", sa.Integer, nullable=False),
        sa.Column("held_since", _TS, nullable=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )
    op.create_index("quota_candidates_due_on", "quota_candidates", ["due_on"])
    op.create_index("quota_candidates_held_since", "quota_candidates", ["held_since"])
    op.create_table(
        "quota_tallies",
        sa.Column("branch_id", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        sa.Column("category", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "quota_branches",
        sa.Column("branch_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("parent_legacy", sa.Text, nullable=True),
        sa.Column("parent_2025", sa.Text, nullable=True),
        sa.Column("province_legacy", sa.Text, nullable=True),
        sa.Column("province_2025", sa.Text, nullable=True),
        sa.Column("district_legacy", sa.Text, nullable=True),
        sa.Column("registered", sa.Text, nullable=False),
    )
    op.create_index("quota_branches_province_legacy", "quota_branches", ["province_legacy"])
    op.create_index("quota_branches_province_2025", "quota_branches", ["province_2025"])
    op.create_table(
        "quota_targets",
        sa.Column("unit_id", sa.Text, primary_key=True),
        sa.Column("tree", sa.Text, primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("metric", sa.Text, primary_key=True),
        sa.Column("category", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("time", _TS, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("source_doc", sa.Text, nullable=True),
    )
    op.create_table(
        "quota_rejections",
        sa.Column("seq", _ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("rejected_at", _TS, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
    )
    op.create_index("quota_rejections_code_seq", "quota_rejections", ["code", "seq"])
    op.create_table(
        "quota_outbox",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "quota_consumer_offsets",
        sa.Column("group_id", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "quota_consumer_offsets",
        "quota_outbox",
        "quota_rejections",
        "quota_targets",
        "quota_branches",
        "quota_tallies",
        "quota_candidates",
        "quota_processed",
    ):
        op.drop_table(table)
