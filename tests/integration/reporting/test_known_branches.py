"""A fold keeps the branch rows it read, and forgets them when any replica registers a branch.

Two folders on one database stand for two replicas: one folds a branch's counts (and
keeps its unmapped placement), the other registers the branch. The first one's next
fold must put its counts on the new chain, which only the placement generation (a
trigger on ``reporting_branches``) tells it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.domain import BranchRegistration
from services.reporting.fold import Change, Folder, Registration
from services.reporting.placing import Placer
from services.reporting.series import ADMITTED_ALL
from services.reporting.tables import TOTAL, UNMAPPED
from services.reporting.unitkeys import unit_key
from shared.db import make_engine, migrate
from shared.orgtree import load_org_trees

pytestmark = pytest.mark.integration

BRANCH = "B-C06901-42"
DAY = date(2024, 5, 15).toordinal()
MONTH = 2024 * 12 + 5 - 1


async def _fold(engine: AsyncEngine, folder: Folder, value: int) -> None:
    async with engine.begin() as connection:
        await folder.fold(connection, [Change(BRANCH, DAY, ADMITTED_ALL, value, value)])


async def _month(engine: AsyncEngine, unit_id: str, part: int) -> int:
    async with engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT value FROM reporting_unit_months WHERE unit = :u "
                "AND series = :s AND month = :m AND part = :p"
            ),
            {"u": unit_key("legacy", unit_id), "s": ADMITTED_ALL, "m": MONTH, "p": part},
        )
        return int(found.scalar_one_or_none() or 0)


async def _generation(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT gen FROM reporting_placement_gen"))).scalar_one())


async def test_a_registration_by_another_replica_moves_what_a_fold_keeps(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        await migrate(engine, "reporting")
        trees = load_org_trees()
        folding, registering = Folder(Placer(trees)), Folder(Placer(trees))
        await _fold(engine, folding, 1)  # the branch's row is created unmapped: not kept yet
        assert BRANCH not in folding.known.states
        await _fold(engine, folding, 2)  # read as committed: kept
        assert folding.known.states[BRANCH].legacy.mapped is False
        assert await _generation(engine) == 0  # inserting unseen branches moves nothing

        registration = BranchRegistration(BRANCH, "C06901", trees.to_2025("C06901"), "Chi bộ 42")
        async with engine.begin() as connection:
            await registering.register(connection, [Registration(registration, datetime.now(UTC), "reg-42")])
        assert await _generation(engine) == 1
        assert (await _month(engine, "D200", TOTAL), await _month(engine, "VN", UNMAPPED)) == (2, 0)

        await _fold(engine, folding, 3)
        assert (await _month(engine, "D200", TOTAL), await _month(engine, "VN", UNMAPPED)) == (3, 0)
        assert await _month(engine, "VN", TOTAL) == 3
        assert folding.known.generation == 1
    finally:
        await engine.dispose()


async def test_branches_inserted_by_a_fold_that_rolled_back_are_not_kept(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        await migrate(engine, "reporting")
        folder = Folder(Placer(load_org_trees()))
        async with engine.connect() as connection:
            transaction = await connection.begin()
            await folder.fold(connection, [Change(BRANCH, DAY, ADMITTED_ALL, 1, 1)])
            await transaction.rollback()
        assert BRANCH not in folder.known.states
        await _fold(engine, folder, 1)
        async with engine.connect() as connection:
            counted = await connection.execute(
                text("SELECT n FROM reporting_unit_branches WHERE tree = 'legacy' AND unit_id = 'VN'")
            )
            assert counted.scalar_one() == 1  # the branch row was written again, and counted once
        assert await _month(engine, "VN", UNMAPPED) == 1
    finally:
        await engine.dispose()
