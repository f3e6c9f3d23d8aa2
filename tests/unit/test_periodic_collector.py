"""The consumers' cyclic garbage collection: off between collections, run on a clock."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from shared.collector import PeriodicCollector

pytestmark = pytest.mark.unit


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


async def test_automatic_collection_is_off_while_started_and_back_on_after() -> None:
    try:
        async with PeriodicCollector():
            assert not gc.isenabled()
    finally:
        gc.unfreeze()
    assert gc.isenabled()


async def test_garbage_in_cycles_is_collected_on_the_clock() -> None:
    collector = PeriodicCollector(full_every_s=0.05, check_every_s=0.01)
    collector.start()
    try:
        node = Node()
        gone = weakref.ref(node)
        del node
        await asyncio.sleep(0.01)
        for _ in range(200):
            if gone() is None:
                break
            await asyncio.sleep(0.01)
        assert gone() is None
        assert collector.collections >= 1
    finally:
        await collector.stop()
        gc.unfreeze()


def test_a_collection_is_due_after_the_interval_or_past_the_young_objects_limit() -> None:
    gc.disable()  # as while started: nothing resets the young count meanwhile
    try:
        collector = PeriodicCollector(full_every_s=60, max_young=gc.get_count()[0] + 10_000)
        assert not collector.due(1.0)
        assert collector.due(60.0)
        kept: list[list[int]] = [[] for _ in range(20_000)]  # tracked containers, counted as young
        assert collector.due(1.0)
        del kept
    finally:
        gc.enable()
