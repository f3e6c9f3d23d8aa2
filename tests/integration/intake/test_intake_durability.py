"""Idempotency and the branch registry survive restarts and hold across replicas on one database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.intake.tables import branches, history
from shared.db import make_engine
from shared.embedded_broker import EmbeddedBroker
from shared.topics import CANDIDATE_EVENTS
from tests.integration.intake.conftest import (
    LAO_CAI_LEGACY,
    QUANG_NINH,
    StartIntake,
    branch,
    candidate,
    post,
    read_topic,
)

pytestmark = pytest.mark.integration


def statuses(response: httpx.Response) -> list[str]:
    return [
        r["error"]["code"] if r["status"] == "rejected" else r["status"] for r in response.json()["results"]
    ]


async def test_duplicates_and_conflicts_across_a_restart(start_intake: StartIntake) -> None:
    first = await start_intake()
    reg = branch()
    bid = reg["data"]["branch_id"]
    events = [candidate("sourced", bid), candidate("admitted", bid)]
    async with first.client(QUANG_NINH) as client:
        assert statuses(await post(client, [reg, *events])) == ["accepted"] * 3
    await first.stop()

    second = await start_intake()
    changed = {**events[1], "time": "2024-06-01T09:00:00+07:00"}
    async with second.client(QUANG_NINH) as client:
        again = await post(client, [reg, *events])
        conflict = await post(client, changed)
        known = await post(client, candidate("confirmed", bid))
    assert (again.status_code, statuses(again)) == (200, ["duplicate"] * 3)
    assert statuses(conflict) == ["id_conflict"]
    assert statuses(known) == ["accepted"]  # the branch registry survived the restart


async def test_two_replicas_share_ids_and_branches(start_intake: StartIntake) -> None:
    a, b = await start_intake(), await start_intake()
    reg = branch()
    bid = reg["data"]["branch_id"]
    sourced = candidate("sourced", bid)
    async with a.client(QUANG_NINH) as on_a, b.client(QUANG_NINH) as on_b:
        assert statuses(await post(on_a, reg)) == ["accepted"]
        assert statuses(await post(on_b, sourced)) == ["accepted"]  # b knows a's branch
        assert statuses(await post(on_a, [reg, sourced])) == ["duplicate", "duplicate"]
        conflict = await post(on_b, {**sourced, "subject": "cand-other"})
    assert statuses(conflict) == ["id_conflict"]


async def test_the_same_batch_raced_to_two_replicas_is_never_lost_nor_rejected(
    start_intake: StartIntake, kafka: EmbeddedBroker
) -> None:
    a, b = await start_intake(), await start_intake()
    reg = branch()
    batch = [reg, *[candidate("sourced", reg["data"]["branch_id"]) for _ in range(300)]]
    async with a.client() as on_a, b.client() as on_b:
        answers = await asyncio.gather(post(on_a, batch), post(on_b, batch))
        after = await post(on_a, batch)
    for pair in zip(*(statuses(r) for r in answers), strict=True):
        assert "accepted" in pair
        assert set(pair) <= {"accepted", "duplicate"}
    assert set(statuses(after)) == {"duplicate"}
    ids = {e["id"] for e in batch[1:]}
    on_topic = {r.value for r in await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, ids)}
    assert len(on_topic) >= 1
    assert {__import__("orjson").loads(v)["id"] for v in on_topic} == ids


async def test_a_branch_that_moves_keeps_its_history(start_intake: StartIntake, database_url: str) -> None:
    """B moves from Xã Quảng An (Quảng Ninh) to Xã Hợp Thành (Lào Cai) on 2024-09-01."""
    served = await start_intake()
    reg = branch(legacy="C06901", v2025=None)
    bid = reg["data"]["branch_id"]
    move = branch(bid, legacy="C02680", v2025=None, time="2024-09-01T00:00:00+07:00")
    async with served.client() as national:
        assert statuses(await post(national, [reg, move])) == ["accepted", "accepted"]
    may, october = "2024-05-01T09:00:00+07:00", "2024-10-01T09:00:00+07:00"
    async with served.client(QUANG_NINH) as qn, served.client(LAO_CAI_LEGACY) as lc:
        by_qn = await post(
            qn, [candidate("sourced", bid, time=may), candidate("admitted", bid, time=october)]
        )
        by_lc = await post(
            lc, [candidate("sourced", bid, time=may), candidate("admitted", bid, time=october)]
        )
    assert statuses(by_qn) == ["accepted", "out_of_scope"]
    assert statuses(by_lc) == ["out_of_scope", "accepted"]

    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            current = (await connection.execute(select(branches).where(branches.c.branch_id == bid))).one()
            rows = (
                await connection.execute(
                    select(history.c.legacy_parent)
                    .where(history.c.branch_id == bid)
                    .order_by(history.c.valid_from)
                )
            ).all()
    finally:
        await engine.dispose()
    assert current.legacy_parent == "C02680"
    assert [r.legacy_parent for r in rows] == ["C06901", "C02680"]


@contextlib.asynccontextmanager
async def database_down(database_url: str) -> AsyncIterator[None]:
    """PostgreSQL: refuse new connections and cut the open ones. SQLite: move the file away."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        _set_aside(path)
        try:
            yield
        finally:
            _restore(path)
        return
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false'))
            await connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                {"db": url.database},
            )
        yield
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true'))
    finally:
        await admin.dispose()


def _set_aside(path: Path) -> None:
    """The database file and its -wal/-shm companions, moved to a sibling directory."""
    aside = path.parent / "aside"
    aside.mkdir()
    for part in path.parent.glob(path.name + "*"):
        part.rename(aside / part.name)


def _restore(path: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()  # the empty database a connection attempt created meanwhile
    for part in (path.parent / "aside").iterdir():
        part.rename(path.parent / part.name)


async def test_database_down_is_503_then_the_retry_is_accepted(
    start_intake: StartIntake, database_url: str
) -> None:
    served = await start_intake()
    reg = branch()
    events = [reg, candidate("sourced", reg["data"]["branch_id"])]
    async with served.client() as client:
        async with database_down(database_url):
            down = await post(client, events)
        assert down.status_code == 503
        assert down.json()["code"] == "database_unavailable"
        assert int(down.headers["retry-after"]) > 0
        again = await post(client, events)
    assert statuses(again) == ["accepted", "accepted"]
