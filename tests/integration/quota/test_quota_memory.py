"""What a consumed batch leaves behind: nothing that only the cyclic collector could free.

The services collect cycles once a minute (``shared.collector``), so a batch whose
records sat in a reference cycle stayed in memory for up to a minute: FastStream keeps
the decoded value in a cache on the message, and the decoder returned the message
itself (reporting's peak RSS over a national year 943 MB against 470, 2026-12-06).
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from shared.embedded_broker import EmbeddedBroker
from tests.conftest import fresh_database_url
from tests.integration.quota.conftest import running_quota
from tests.integration.quota.feed import make_feed

pytestmark = pytest.mark.integration


async def test_consumed_batches_leave_no_records_in_reference_cycles(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    feed = make_feed(6000, branches=200, seed=31)  # ~23,000 events: smaller feeds left no cycle
    async with running_quota(broker.bootstrap, await fresh_database_url(tmp_path)) as quota:
        assert not gc.isenabled()  # the service's collector runs once a minute
        gc.collect()
        await quota.reference(feed.reference)
        await quota.send(feed.candidates)
        consumer = quota.app.state.quota_consumers[0]
        for _ in range(600):
            if consumer.records >= len(feed.candidates):
                break
            await asyncio.sleep(0.05)
        assert consumer.records >= len(feed.candidates)
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            in_cycles = [o for o in gc.garbage if isinstance(o, ConsumerRecord)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert len(in_cycles) == 0, f"{len(in_cycles)} records freed only by the cyclic collector"
