"""quota_outbox rows may hold several messages (``messages``); ``value`` is now ``payload``

A batch's tally changes (~2.5 per event) go into one row per topic instead of one row
each: a replay spent ~14 us of PostgreSQL per event inserting, claiming and deleting
outbox rows. Existing rows are single messages (``messages`` 1). ``value`` is renamed
so that a replica of an older release fails on the table (its batches and relay passes
retried until it stops) instead of publishing a packed row as one message
(docs/deploy.md).

Revision ID: 0004_quota_outbox_packed
Revises: 0003_quota_outbox_ids
"""

from collections.abc import Sequence

from shared.outbox import add_packed_outbox_rows, drop_packed_outbox_rows

revision: str = "0004_quota_outbox_packed"
down_revision: str | None = "0003_quota_outbox_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_packed_outbox_rows("quota")


def downgrade() -> None:
    drop_packed_outbox_rows("quota")
