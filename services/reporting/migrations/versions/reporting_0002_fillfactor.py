"""Cheaper row writes for the fold (PostgreSQL only): room on each page, byte-order keys.

The fold rewrites counters and day bitmasks in place: tallies' ``value``/``version``,
aggregates' ``value``, activity rows' ``mNN`` bits. None of those columns is indexed,
so PostgreSQL can make each update a heap-only tuple (no index entry) when the new
version fits on the same page; at the default fill factor (100) it rarely does, and
an activity update then writes all six of that table's indexes. Existing pages keep
their layout until rewritten; new ones are filled to the given percentage.

Ids (``tree``, unit ids, branch ids) are ASCII codes. Under the database's default
collation (``C.UTF-8`` here, ``en_US.UTF-8`` elsewhere) every B-tree comparison of
them goes through ``strcoll``; ``COLLATE "C"`` compares bytes, which is what SQLite
and Python's ``sorted`` (the fold's lock order) do anyway.

Revision ID: reporting_0002
Revises: reporting_0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "reporting_0002"
down_revision: str | None = "reporting_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILL: dict[str, int] = {
    "reporting_activity": 50,
    "reporting_unit_months": 70,
    "reporting_unit_days": 70,
    "reporting_tallies": 80,
}


BYTE_ORDER: dict[str, dict[str, int]] = {
    "reporting_tallies": {"branch_id": 128},
    "reporting_unit_months": {"tree": 8, "unit_id": 16},
    "reporting_unit_days": {"tree": 8, "unit_id": 16},
    "reporting_dirty": {"tree": 8, "unit_id": 16},
    "reporting_unit_branches": {"tree": 8, "unit_id": 16},
    "reporting_activity": {
        "branch_id": 128,
        **dict.fromkeys(
            ("anchor_legacy", "district_legacy", "province_legacy", "anchor_2025", "province_2025"), 16
        ),
    },
    "reporting_branches": {
        "branch_id": 128,
        **dict.fromkeys(
            ("anchor_legacy", "district_legacy", "province_legacy", "anchor_2025", "province_2025"), 16
        ),
    },
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, percent in FILL.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {percent})")
    for table, widths in BYTE_ORDER.items():
        altered = ", ".join(
            f'ALTER COLUMN {column} TYPE varchar({width}) COLLATE "C"' for column, width in widths.items()
        )
        op.execute(f"ALTER TABLE {table} {altered}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in FILL:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    for table, widths in BYTE_ORDER.items():
        altered = ", ".join(
            f'ALTER COLUMN {column} TYPE varchar({width}) COLLATE "default"'
            for column, width in widths.items()
        )
        op.execute(f"ALTER TABLE {table} {altered}")
