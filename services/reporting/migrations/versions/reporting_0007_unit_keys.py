"""The aggregate rows keyed by one integer per unit instead of (tree, unit id)

``reporting_unit_months`` and ``reporting_unit_days`` take ``unit`` (int4,
``services.reporting.unitkeys``) in place of ``tree`` and ``unit_id``: integer B-tree
comparisons and a sixth less to keep in memory cut the fold's month and day upserts from
~71 to ~51 µs of PostgreSQL's CPU per change (2026-12-07). The rows are copied, converted in
SQL (8.8 s for 1.4 M rows here, so ~40 s for a national year's ~6 M), so the tables are rewritten.

A replica of the release before cannot fold or answer against the new tables: its
transactions fail and roll back (nothing is lost, its consumer retries) until it is
replaced. Upgrade with the release before stopped, or accept its errors for the length
of the rollout (docs/deploy.md).

Revision ID: reporting_0007
Revises: reporting_0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.reporting.unitkeys import key_sql, tree_sql, unit_id_sql

revision: str = "reporting_0007"
down_revision: str | None = "reporting_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = {"reporting_unit_months": "month", "reporting_unit_days": "day"}
FILL = 70  # as reporting_0002 set it: room on each page for in-place updates
DOC_INDEX = "ix_reporting_unit_months_doc"


def _columns(bucket: str) -> list[sa.Column[object]]:
    return [
        sa.Column("series", sa.SmallInteger, primary_key=True),
        sa.Column(bucket, sa.Integer, primary_key=True),
        sa.Column("part", sa.SmallInteger, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    ]


def _replace(table: str, new: str, *, postgres: bool) -> None:
    """``new`` (filled already) becomes ``table``, with the primary key's usual name (the
    old table's indexes go with it, so the document index can be made again after)."""
    op.drop_table(table)
    op.rename_table(new, table)
    if postgres:
        op.execute(f"ALTER INDEX {new}_pkey RENAME TO {table}_pkey")
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILL})")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, bucket in TABLES.items():
        new = f"{table}_keyed"
        op.create_table(new, sa.Column("unit", sa.Integer, primary_key=True), *_columns(bucket))
        op.execute(
            f"INSERT INTO {new} (unit, series, {bucket}, part, value) "
            f"SELECT {key_sql('tree', 'unit_id')}, series, {bucket}, part, value FROM {table}"
        )
        _replace(table, new, postgres=postgres)
    op.create_index(DOC_INDEX, "reporting_unit_months", ["unit", "month"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    postgres = dialect == "postgresql"
    for table, bucket in TABLES.items():
        new = f"{table}_text"
        op.create_table(
            new,
            sa.Column("tree", sa.String(8), primary_key=True),
            sa.Column("unit_id", sa.String(16), primary_key=True),
            *_columns(bucket),
        )
        if postgres:  # byte order, as reporting_0002 left them
            op.execute(
                f'ALTER TABLE {new} ALTER COLUMN tree TYPE varchar(8) COLLATE "C", '
                f'ALTER COLUMN unit_id TYPE varchar(16) COLLATE "C"'
            )
        op.execute(
            f"INSERT INTO {new} (tree, unit_id, series, {bucket}, part, value) "
            f"SELECT {tree_sql('unit')}, {unit_id_sql('unit', dialect)}, series, {bucket}, part, value "
            f"FROM {table}"
        )
        _replace(table, new, postgres=postgres)
    op.create_index(DOC_INDEX, "reporting_unit_months", ["tree", "unit_id", "month"])
