"""Intake tables: event ids and claims (idempotency), the branch registry and its history.

Revision ID: intake_0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intake_events",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("content_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("claim_id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("branch_id", sa.String(128), nullable=True),
        sa.Column("unit_id", sa.String(16), nullable=True),
        sa.Column("unit_tree", sa.String(8), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "intake_claims",
        sa.Column("claim_id", sa.String(32), primary_key=True),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "intake_branches",
        sa.Column("branch_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("legacy_parent", sa.String(16), nullable=True),
        sa.Column("parent_2025", sa.String(16), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "intake_branch_history",
        sa.Column("event_id", sa.String(256), primary_key=True),
        sa.Column("branch_id", sa.String(128), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("legacy_parent", sa.String(16), nullable=True),
        sa.Column("parent_2025", sa.String(16), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_intake_branch_history_branch", "intake_branch_history", ["branch_id", "valid_from"])


def downgrade() -> None:
    op.drop_index("ix_intake_branch_history_branch", table_name="intake_branch_history")
    op.drop_table("intake_branch_history")
    op.drop_table("intake_branches")
    op.drop_table("intake_claims")
    op.drop_table("intake_events")
