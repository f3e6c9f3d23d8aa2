"""The intake's cyclic garbage collection runs between requests, never inside one."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from services.intake.collector import IDLE_MIN_YOUNG, IdleCollector

pytestmark = pytest.mark.unit


@pytest.fixture
def collector() -> Iterator[IdleCollector]:
    started = IdleCollector()
    started.start()
    try:
        yield started
    finally:
        started.stop()
        gc.unfreeze()


def young_cycles(count: int) -> list[list[object]]:
    """``count`` tracked objects, each in a reference cycle with itself."""
    cycles: list[list[object]] = []
    for _ in range(count):
        cycle: list[object] = []
        cycle.append(cycle)
        cycles.append(cycle)
    return cycles


async def test_automatic_collection_is_off_while_serving_and_back_on_after(collector: IdleCollector) -> None:
    assert not gc.isenabled()
    collector.stop()
    assert gc.isenabled()


async def test_a_due_collection_waits_until_no_request_is_in_flight(collector: IdleCollector) -> None:
    with collector.request():  # a long request
        with collector.request():
            garbage = young_cycles(IDLE_MIN_YOUNG + 1000)
            del garbage  # cycles: only the collector can free them
        await asyncio.sleep(0)
        assert collector.collections == 0  # one request still in flight
    await asyncio.sleep(0)  # the collection runs just after the last request
    assert collector.collections == 1
    assert gc.get_count()[0] < IDLE_MIN_YOUNG


async def test_no_collection_while_few_objects_are_young(collector: IdleCollector) -> None:
    with collector.request():
        pass
    await asyncio.sleep(0)
    assert collector.collections == 0
