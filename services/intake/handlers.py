"""The intake's one command: take a request's events, decide, publish, record.

Invariants: an event is reported ``accepted`` only after the broker acknowledged
it and the store marked it published; if the broker does not acknowledge the
whole request in time, :class:`~services.intake.publisher.BrokerUnavailable`
propagates, nothing is marked published, and the claimed ids stay ``pending``
so that a retry of the same events publishes them again (consumers dedupe by id).
A dry run looks things up and decides, and stops there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from aiokafka import AIOKafkaProducer

from services.intake.domain.decide import Inspected, Known, Plan, inspect, judging, lookups
from services.intake.metrics import PUBLISH_SECONDS
from services.intake.publisher import publish
from services.intake.store import Claim, IntakeStore, StoreConnection
from shared.orgtree import OrgTrees
from shared.scope import TokenScope

MAX_CLAIM_ATTEMPTS: Final = 3
SLICE: Final = 500
"""Events validated or judged between two returns to the event loop (~3 ms of CPU): a
10,000-event request must not keep single-event requests waiting for its whole judgement."""
PUBLISH_TIMEOUT_S: Final = 5.0


class ConcurrentWriters(Exception):
    """Other replicas kept claiming this request's ids first; the client should retry."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Intake:
    """What the intake needs to answer a request: store, producer, trees, clock, publish timeout."""

    store: IntakeStore
    producer: AIOKafkaProducer
    trees: OrgTrees
    publish_timeout_s: float = PUBLISH_TIMEOUT_S
    clock: Callable[[], datetime] = utc_now

    async def ingest(
        self, items: Sequence[object], scope: TokenScope, *, dry_run: bool, correlation_id: str
    ) -> Plan:
        """Judge, then (unless a dry run) claim, publish and record the accepted events."""
        inspected = await _inspect(items)
        async with self.store.connection() as db:
            plan, now, claim = await self._judge_and_claim(db, inspected, scope, dry_run=dry_run)
            if claim is None:
                return plan
            started = time.perf_counter()
            await publish(
                self.producer,
                plan.accepted,
                recorded=now,
                correlation_id=correlation_id,
                within_s=self.publish_timeout_s,
            )
            PUBLISH_SECONDS.observe(time.perf_counter() - started)
            await db.commit(claim, plan.accepted, now)
        return plan

    async def _judge_and_claim(
        self, db: StoreConnection, inspected: list[Inspected], scope: TokenScope, *, dry_run: bool
    ) -> tuple[Plan, datetime, Claim | None]:
        """The plan and, if anything is to be published, this request's claim on its ids."""
        wanted = lookups(inspected)
        for _attempt in range(MAX_CLAIM_ATTEMPTS):
            now = self.clock()
            plan = await _decide(inspected, await db.load(wanted), scope, self.trees, now)
            if dry_run or not plan.accepted:
                return plan, now, None
            claim = await db.claim(plan.accepted, now)
            if not claim.lost:
                return plan, now, claim
            # Ids another replica claimed since the lookup: judge again with what it wrote.
        raise ConcurrentWriters("ids were claimed concurrently by another writer")


async def _inspect(items: Sequence[object]) -> list[Inspected]:
    inspected: list[Inspected] = []
    for start in range(0, len(items), SLICE):
        if start:
            await asyncio.sleep(0)  # let other requests run
        inspected += inspect(items[start : start + SLICE])
    return inspected


async def _decide(
    inspected: list[Inspected], known: Known, scope: TokenScope, trees: OrgTrees, now: datetime
) -> Plan:
    steps = judging(inspected, known, scope, trees, now, step=SLICE)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            plan: Plan = done.value
            return plan
        await asyncio.sleep(0)  # let other requests run
