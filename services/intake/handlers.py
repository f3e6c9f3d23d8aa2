"""The intake's one command: take a request's events, decide, publish, record.

Invariants: an event is reported ``accepted`` only after the broker acknowledged
it and the store marked it published; if the broker does not acknowledge the
whole request in time, :class:`~services.intake.publisher.BrokerUnavailable`
propagates, nothing is marked published, and the claimed ids stay ``pending``
so that a retry of the same events publishes them again (consumers dedupe by id).
A dry run looks things up and decides, and stops there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from aiokafka import AIOKafkaProducer

from services.intake.domain.decide import Inspected, Plan, decide, inspect, lookups
from services.intake.metrics import PUBLISH_SECONDS
from services.intake.publisher import publish
from services.intake.store import Claim, IntakeStore, StoreConnection
from shared.orgtree import OrgTrees
from shared.scope import TokenScope

MAX_CLAIM_ATTEMPTS: Final = 3
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
        inspected = inspect(items)
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
            plan = decide(inspected, await db.load(wanted), scope, self.trees, now)
            if dry_run or not plan.accepted:
                return plan, now, None
            claim = await db.claim(plan.accepted, now)
            if not claim.lost:
                return plan, now, claim
            # Ids another replica claimed since the lookup: judge again with what it wrote.
        raise ConcurrentWriters("ids were claimed concurrently by another writer")
