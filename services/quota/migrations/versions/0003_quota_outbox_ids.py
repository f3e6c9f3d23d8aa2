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

from alembic import op

revision: str = "0003_quota_outbox_ids"
down_revision: str | None = "0002_quota_state_lz4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    kwargs = {"sqlite_autoincrement": True} if autoincrement else {}
    with op.batch_alter_table("quota_outbox", recreate="always", table_kwargs=kwargs):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
