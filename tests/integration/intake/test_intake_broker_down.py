"""A frozen broker: 503 with Retry-After, nothing reported accepted that is not on the topic, and the
retry after the thaw accepted exactly once. Uses its own broker so the session broker is not disturbed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from sqlalchemy import select

from services.intake.tables import claims
from services.intake.tables import events as events_table
from shared.db import make_engine
from shared.embedded_broker import EmbeddedBroker
from shared.topics import CANDIDATE_EVENTS
from tests.integration.intake.conftest import StartIntake, branch, candidate, post, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker()
    broker.start()
    yield broker
    broker.stop()


class FreezingClock:
    """The intake's clock; armed, it freezes the broker when a request asks the time (mid-request:
    after the body is read and validated, before anything is published)."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker, self.armed = broker, False

    def __call__(self) -> datetime:
        if self.armed:
            self.armed = False
            self.broker.freeze()
        return datetime.now(UTC)


async def retry_until_answered(client: httpx.AsyncClient, batch: list[dict[str, object]]) -> httpx.Response:
    """What a client does with 503: wait Retry-After (shortened here) and send the same events again."""
    for _ in range(30):
        response = await post(client, batch)
        if response.status_code != 503:
            return response
        assert int(response.headers["retry-after"]) > 0
    raise AssertionError("still 503 after 30 retries")


async def test_frozen_broker_mid_request(
    start_intake: StartIntake, own_broker: EmbeddedBroker, database_url: str
) -> None:
    clock = FreezingClock(own_broker)
    served = await start_intake(bootstrap=own_broker.bootstrap, publish_timeout_s=2.0, clock=clock)
    reg = branch()
    batch = [candidate("sourced", reg["data"]["branch_id"]) for _ in range(500)]
    ids = {e["id"] for e in batch}
    async with served.client() as client:
        assert (await post(client, reg)).status_code == 202
        clock.armed = True
        try:
            frozen = await post(client, batch)
            not_ready = await client.get("/readyz")
        finally:
            own_broker.thaw()
        assert frozen.status_code == 503
        assert frozen.headers["content-type"] == "application/problem+json"
        assert frozen.json()["code"] == "broker_unavailable"
        assert int(frozen.headers["retry-after"]) > 0
        assert not_ready.status_code == 503
        assert await pending_ids(database_url, ids) == ids  # claimed, never marked published

        retried = await retry_until_answered(client, batch)
        again = await post(client, batch)

    assert retried.status_code == 202
    assert retried.json()["accepted"] == len(batch)  # accepted exactly once, never "duplicate" unpublished
    assert again.status_code == 200
    assert again.json()["duplicates"] == len(batch)
    on_topic = await read_topic(own_broker.bootstrap, CANDIDATE_EVENTS, ids)
    assert {orjson.loads(r.value)["id"] for r in on_topic} == ids  # every accepted event is on the topic
    assert await pending_ids(database_url, ids) == set()


async def pending_ids(database_url: str, ids: set[str]) -> set[str]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            unpublished = events_table.c.claim_id.not_in(select(claims.c.claim_id))
            rows = await connection.execute(
                select(events_table.c.id).where(events_table.c.id.in_(ids), unpublished)
            )
            return {row.id for row in rows}
    finally:
        await engine.dispose()
