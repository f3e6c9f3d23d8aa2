"""quota_candidates.state compressed with lz4 on PostgreSQL (where the server has it)

A candidate's state JSON (~3 KB) is over the TOAST threshold, so every write of a
candidate row compresses it; pglz took a fifth of the batch's candidate upsert, lz4
(PostgreSQL 14+) about a third of that work. Existing rows keep their compression
until rewritten. SQLite: nothing to do.

Revision ID: 0002_quota_state_lz4
Revises: 0001_quota_tables
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_quota_state_lz4"
down_revision: str | None = "0001_quota_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HAS_LZ4 = "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"


def _lz4_available() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == "postgresql" and bind.execute(sa.text(_HAS_LZ4)).first() is not None


def upgrade() -> None:
    if _lz4_available():
        op.execute("ALTER TABLE quota_candidates ALTER COLUMN state SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE quota_candidates ALTER COLUMN state SET COMPRESSION default")
