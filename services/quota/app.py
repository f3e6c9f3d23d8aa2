"""Composition root of the quota service: settings, database, broker, consumers, relay and routes.

Two consumer groups on the shared batch plumbing: ``ketnap-quota`` on
``ketnap.candidate-events`` (lifecycle and tallies) and ``ketnap-quota-ref`` on
``ketnap.reference-events`` (branches and targets); one outbox relay publishing
``ketnap.tally-changes`` and ``ketnap.rejected``; one maintenance task expiring held
events after ``KETNAP_PARK_TTL`` and refreshing ``ketnap_held_events``. Nothing
connects at import time; shutdown drains the batches in flight within
``KETNAP_SHUTDOWN_GRACE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

from fastapi import FastAPI

from services.quota.api import Reader, router
from services.quota.cache import StateCache
from services.quota.expiry import expire_held_candidates, held_events
from services.quota.handlers import CandidatePipeline
from services.quota.reference import handle_reference
from services.quota.tables import SERVICE, outbox
from shared.collector import PeriodicCollector
from shared.consumer import BatchConsumer, ConsumerSpec, make_broker
from shared.http import Readiness, create_service_app
from shared.logging import get_logger
from shared.orgtree import load_org_trees
from shared.outbox import OutboxRelay
from shared.service import ServiceResources
from shared.settings import Settings
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS

log = get_logger(__name__)

CANDIDATE_GROUP = "ketnap-quota"
REFERENCE_GROUP = "ketnap-quota-ref"


async def _maintain(resources: ServiceResources, ttl: timedelta) -> None:
    """Expire held events and refresh the held gauge, every ttl/4 (between 1 s and 60 s)."""
    assert resources.engine is not None
    interval = max(1.0, min(60.0, ttl.total_seconds() / 4))
    while True:
        try:
            while await expire_held_candidates(resources.engine, datetime.now(UTC), ttl):
                pass
            await held_events(resources.engine)
        except Exception as exc:  # database down: try again next round
            log.warning("held-event maintenance failed", error=repr(exc))
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceResources(settings, SERVICE, readiness) as resources:
            assert resources.engine is not None
            assert resources.producer is not None
            engine = resources.engine
            org = await asyncio.to_thread(load_org_trees)
            app.state.quota_reader = Reader(engine, org, settings)
            relay = OutboxRelay(engine, resources.producer, outbox, SERVICE)
            pipeline = CandidatePipeline(engine, StateCache(settings.quota_state_cache))
            consumers = (
                BatchConsumer(
                    ConsumerSpec(SERVICE, CANDIDATE_GROUP, (CANDIDATE_EVENTS,)),
                    pipeline.handle,
                    engine,
                    settings,
                    after_commit=(relay.wake,),
                    prepare=pipeline.prepare,
                ),
                BatchConsumer(
                    ConsumerSpec(SERVICE, REFERENCE_GROUP, (REFERENCE_EVENTS,)),
                    partial(handle_reference, org=org),
                    engine,
                    settings,
                    after_commit=(relay.wake,),
                ),
            )
            app.state.quota_consumers = consumers
            broker = make_broker(settings)
            for consumer in consumers:
                consumer.subscribe(broker)
                readiness.add(f"consumer:{consumer.spec.group_id}", consumer.check)
            collector = PeriodicCollector()
            collector.start()
            relay.start()
            await broker.start()
            maintenance = asyncio.create_task(_maintain(resources, timedelta(seconds=settings.park_ttl)))
            try:
                yield
            finally:
                await asyncio.gather(*(c.drain() for c in consumers))
                await broker.stop()
                maintenance.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await maintenance
                await relay.stop(settings.shutdown_grace_s / 2)
                await collector.stop()

    app = create_service_app(
        title="ketnap quota",
        description="Each candidate's lifecycle and the per-branch and per-province tallies against targets.",
        lifespan=lifespan,
        readiness=readiness,
    )
    app.include_router(router)
    return app
