"""reporting_placement_gen: a generation raised by every update of ``reporting_branches``

A fold keeps the branch rows it has read (their placements) while this generation
holds, instead of reading ~3,000 of them again in every batch. Registrations are the
only updates of ``reporting_branches``; the database raises the generation itself
(a trigger), so a replica of any release that moves a branch invalidates what the
others keep, in the same transaction as the move. Inserts of branches first seen in a
tally (``ON CONFLICT DO NOTHING``) move nothing and leave it alone.

Revision ID: reporting_0005
Revises: reporting_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reporting_0005"
down_revision: str | None = "reporting_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RAISE = "UPDATE reporting_placement_gen SET gen = gen + 1"


def upgrade() -> None:
    op.create_table(
        "reporting_placement_gen",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("gen", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO reporting_placement_gen (id, gen) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION reporting_raise_placement_gen() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {_RAISE}; RETURN NULL; END $$"
        )
        # once per statement: a registration batch raises it once, whatever its size
        op.execute(
            "CREATE TRIGGER reporting_branches_moved AFTER UPDATE ON reporting_branches "
            "FOR EACH STATEMENT EXECUTE FUNCTION reporting_raise_placement_gen()"
        )
    else:  # SQLite has row triggers only
        op.execute(
            f"CREATE TRIGGER reporting_branches_moved AFTER UPDATE ON reporting_branches BEGIN {_RAISE}; END"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TRIGGER reporting_branches_moved" + (" ON reporting_branches" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION reporting_raise_placement_gen()")
    op.execute("DROP TABLE reporting_placement_gen")
