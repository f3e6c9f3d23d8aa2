"""reporting_outbox ids never reused on SQLite (AUTOINCREMENT)

SQLite gives a new row the largest id in the table plus one, so once the relay has
deleted the newest rows their ids come back. Two replicas' relays may read the same
rows (SQLite has no leader lock): when one deleted them and new rows took their
ids, the other's delete by id removed the new rows unpublished (rollup documents lost).
With ``AUTOINCREMENT`` an id is never given twice. The table is rebuilt with its
rows. PostgreSQL (a sequence): nothing to do.

Revision ID: reporting_0003
Revises: reporting_0002
"""

from collections.abc import Sequence

from shared.outbox import rebuild_outbox_ids_on_sqlite

revision: str = "reporting_0003"
down_revision: str | None = "reporting_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rebuild_outbox_ids_on_sqlite("reporting", autoincrement=True)


def downgrade() -> None:
    rebuild_outbox_ids_on_sqlite("reporting", autoincrement=False)
