"""quota_candidates.state compressed with lz4 on PostgreSQL (where the server has it)

A candidate's state JSON (~3 KB) is over the TOAST threshold, so every write of a
candidate row compresses it; pglz took a fifth of the batch's candidate upsert, lz4
(PostgreSQL 14+) about a third of that work. Existing rows keep their compression
until rewritten. SQLite: nothing to do.

Revision ID: 0002_quota_state_lz4
Revises: 0001_quota_tables
"""

from collections.abc import Sequence

from alembic import op

from shared.db import lz4_available

revision: str = "0002_quota_state_lz4"
down_revision: str | None = "0001_quota_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if lz4_available(op.get_bind()):
        op.execute("ALTER TABLE quota_candidates ALTER COLUMN state SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE quota_candidates ALTER COLUMN state SET COMPRESSION default")
