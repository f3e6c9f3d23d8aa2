"""reporting_outbox rows may hold several messages (``messages``); ``value`` is now ``payload``

The rollups feed and the rejections of a batch go into one row per topic instead of one
row per message. Existing rows are single messages (``messages`` 1). ``value`` is
renamed so that a replica of an older release fails on the table (its batches and
relay passes retried until it stops) instead of publishing a packed row as one message
(docs/deploy.md).

Revision ID: reporting_0004
Revises: reporting_0003
"""

from collections.abc import Sequence

from shared.outbox import add_packed_outbox_rows, drop_packed_outbox_rows

revision: str = "reporting_0004"
down_revision: str | None = "reporting_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_packed_outbox_rows("reporting")


def downgrade() -> None:
    drop_packed_outbox_rows("reporting")
