"""reporting_tallies keeps what its last update replaced (``prev_value``, ``prev_version``)

The fold's versioned upsert sets them in the update itself and returns them, instead of
reading every key's old row first in the same statement (half as much again of that
statement's time, 2026-12-07). Rows written by an older release keep 0 until next
updated; nothing reads them but the statement that has just set them, so replicas of
both releases may fold side by side.

Revision ID: reporting_0006
Revises: reporting_0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reporting_0006"
down_revision: str | None = "reporting_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("prev_value", "prev_version")


def upgrade() -> None:
    # a constant default: PostgreSQL adds the columns without rewriting the table
    for name in COLUMNS:
        op.add_column("reporting_tallies", sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    for name in COLUMNS:
        op.drop_column("reporting_tallies", name)
