"""quota_outbox ids never reused on SQLite (AUTOINCREMENT)

SQLite gives a new row the largest id in the table plus one, so once the relay has
deleted the newest rows their ids come back. Two replicas' relays may read the same
rows (SQLite has no leader lock): when one deleted them and new rows took their
ids, the other's delete by id removed the new rows unpublished, tally changes lost.
With ``AUTOINCREMENT`` an id is never given twice. The table is rebuilt with its
rows. PostgreSQL (a sequence): nothing to do.

Revision ID: 0003_quota_outbox_ids
Revises: 0002_quota_state_lz4
"""

from collections.abc import Sequence

from shared.outbox import rebuild_outbox_ids_on_sqlite

revision: str = "0003_quota_outbox_ids"
down_revision: str | None = "0002_quota_state_lz4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rebuild_outbox_ids_on_sqlite("quota", autoincrement=True)


def downgrade() -> None:
    rebuild_outbox_ids_on_sqlite("quota", autoincrement=False)
