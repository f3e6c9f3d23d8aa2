"""Operations: read auth by province, two replicas sharing the work through a rebalance, a database outage."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.quota.tables import outbox, tallies
from shared.db import make_engine
from shared.embedded_broker import EmbeddedBroker
from tests.conftest import TEST_DATABASE_URL, eventually, fresh_database_url
from tests.integration.quota.conftest import Quota, running_quota
from tests.integration.quota.feed import (
    VN,
    branch_registered,
    chunks,
    cloudevent,
    expected_tallies,
    make_feed,
)

pytestmark = pytest.mark.integration

T = datetime(2024, 6, 1, 9, tzinfo=VN)
NATIONAL, QUANG_NINH = "tok-national-0123456789abcdef", "tok-quang-ninh-0123456789ab"
TOKENS = orjson.dumps({NATIONAL: ["*"], QUANG_NINH: ["P22"]}).decode()


async def _status(quota: Quota, path: str, token: str | None, **params: object) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await quota.client.get(path, params=params, headers=headers)
    return response.status_code, response.json().get("code", "") if response.status_code >= 400 else ""


async def test_read_auth_limits_a_province_token_to_its_provinces(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    url = await fresh_database_url(tmp_path)
    async with running_quota(broker.bootstrap, url, read_auth=True, tokens=TOKENS) as quota:
        await quota.reference(
            [
                branch_registered("B-C06901-09", "C06901", None, T),
                branch_registered("B-C02680-09", "C02680", None, T),
            ]
        )
        profile = {"birth_year": 2000, "sex": "male", "categories": []}
        await quota.send(
            [
                cloudevent(
                    "candidate.sourced", {"branch_id": b, "profile": profile}, T, subject=f"cand-auth-{b}"
                )
                for b in ("B-C06901-09", "B-C02680-09")
            ]
        )

        async def registered() -> bool:
            status, _ = await _status(quota, "/v1/branches/B-C02680-09/tallies", NATIONAL, year=2024)
            found, _ = await _status(quota, "/v1/candidates/cand-auth-B-C02680-09", NATIONAL)
            return status == 200 and found == 200

        await eventually(registered)
        assert await _status(quota, "/v1/provinces/P22/tallies", None, year=2024) == (401, "unauthorized")
        assert await _status(quota, "/v1/provinces/P22/tallies", "nope", year=2024) == (401, "unauthorized")
        assert await _status(quota, "/v1/provinces/P22/tallies", QUANG_NINH, year=2024) == (200, "")
        assert await _status(quota, "/v1/provinces/P10/tallies", QUANG_NINH, year=2024) == (
            403,
            "out_of_scope",
        )
        assert await _status(quota, "/v1/provinces/P10/tallies", NATIONAL, year=2024) == (200, "")
        assert await _status(quota, "/v1/branches/B-C06901-09/tallies", QUANG_NINH, year=2024) == (200, "")
        assert await _status(quota, "/v1/branches/B-C02680-09/tallies", QUANG_NINH, year=2024) == (
            403,
            "out_of_scope",
        )
        assert await _status(quota, "/v1/candidates/cand-auth-B-C06901-09", QUANG_NINH) == (200, "")
        assert await _status(quota, "/v1/candidates/cand-auth-B-C02680-09", QUANG_NINH) == (
            403,
            "out_of_scope",
        )
        assert await _status(quota, "/v1/rejections", QUANG_NINH) == (403, "out_of_scope")
        assert await _status(quota, "/v1/due", QUANG_NINH) == (403, "out_of_scope")
        assert await _status(quota, "/v1/due", QUANG_NINH, unit_id="P22") == (200, "")
        assert await _status(quota, "/healthz", None) == (200, "")


async def _stored(url: str) -> dict:
    engine = make_engine(url)
    try:
        async with engine.connect() as c:
            rows = (await c.execute(select(tallies))).all()
            pending = await c.scalar(select(func.count()).select_from(outbox))
    finally:
        await engine.dispose()
    return {
        "tallies": {(r.branch_id, str(r.day), r.metric, r.category): r.value for r in rows if r.value},
        "outbox": pending,
    }


async def test_two_replicas_share_the_work_and_one_leaves(broker: EmbeddedBroker, tmp_path: Path) -> None:
    feed = make_feed(1500, branches=40, seed=21)
    model = {(b, d.isoformat(), m, c): n for (b, d, m, c), n in expected_tallies(feed.candidates).items()}
    url = await fresh_database_url(tmp_path)
    async with running_quota(broker.bootstrap, url, consumer_batch=300) as first:
        await first.reference(feed.reference)
        async with running_quota(broker.bootstrap, url, consumer_batch=300) as second:
            parts = list(chunks(feed.candidates, 400))
            for part in parts[: len(parts) // 2]:
                await second.send(part)
                await asyncio.sleep(0.2)
            first_consumer = first.app.state.quota_consumers[0]
            await eventually(lambda: asyncio.sleep(0, first_consumer.batches > 0))
        # the second replica left (drained, partitions revoked): the first takes everything over
        for part in parts[len(parts) // 2 :]:
            await first.send(part)

        async def settled() -> dict | None:
            stored = await _stored(url)
            return stored if stored["tallies"] == model and stored["outbox"] == 0 else None

        await eventually(settled, within=90)


@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="needs PostgreSQL (KETNAP_TEST_DATABASE_URL)")
async def test_a_database_outage_makes_it_unready_then_it_catches_up(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    url = await fresh_database_url(tmp_path)
    database = make_url(url).database
    admin = create_async_engine(str(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT")
    feed = make_feed(200, branches=10, seed=31)
    model = {(b, d.isoformat(), m, c): n for (b, d, m, c), n in expected_tallies(feed.candidates).items()}

    async def outage(on: bool) -> None:
        async with admin.connect() as c:
            await c.execute(
                text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"false" if on else "true"}')
            )
            if on:
                await c.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": database},
                )

    try:
        async with running_quota(broker.bootstrap, url) as quota:
            await quota.reference(feed.reference)
            await outage(True)
            await quota.send(feed.candidates)

            async def unready() -> bool:
                return (await quota.client.get("/readyz")).status_code == 503

            await eventually(unready)
            await asyncio.sleep(3)  # retries go on, at most one a second
            await outage(False)

            async def ready() -> bool:
                return (await quota.client.get("/readyz")).status_code == 200

            await eventually(ready)

            async def settled() -> dict | None:
                stored = await _stored(url)
                return stored if stored["tallies"] == model else None

            await eventually(settled)
    finally:
        await outage(False)
        await admin.dispose()
