"""Composition root of the reporting service: settings, database, broker, consumer, feed and routes.

One consumer group, ``ketnap-reporting``, reads ``ketnap.tally-changes`` and
``ketnap.reference-events`` with the shared batch plumbing (effect and position in
one transaction, offset after). A publisher turns dirty months into
``ketnap.rollups`` documents through the outbox; the relay publishes them. A
self-check samples the sum invariant and refreshes the attainment gauges. Nothing
connects at import time; shutdown drains the batch in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from services.reporting.api import router
from services.reporting.feed import RollupPublisher
from services.reporting.fold import Folder
from services.reporting.handlers import ReportingHandler
from services.reporting.placing import Placer
from services.reporting.queries import RollupReader
from services.reporting.reads import ReportingReads, utc_now
from services.reporting.selfcheck import SelfCheck
from services.reporting.tables import outbox
from shared.collector import PeriodicCollector
from shared.consumer import BatchConsumer, ConsumerSpec, make_broker
from shared.http import Readiness, create_service_app
from shared.orgtree import OrgTrees, load_org_trees
from shared.outbox import OutboxRelay
from shared.scope import TokenScope, unknown_entries
from shared.service import ServiceResources
from shared.settings import Settings
from shared.topics import REFERENCE_EVENTS, TALLY_CHANGES

SERVICE = "reporting"
GROUP = "ketnap-reporting"


def token_scopes(settings: Settings, trees: OrgTrees) -> dict[str, TokenScope]:
    """Each configured token's scope; ValueError for an entry naming no province (never the token)."""
    scopes: dict[str, TokenScope] = {}
    for token, entries in settings.token_scopes().items():
        if unknown := unknown_entries(entries, trees):
            raise ValueError(f"KETNAP_TOKENS: no such province: {', '.join(unknown)}")
        scopes[token] = TokenScope.parse(entries)
    return scopes


def create_app(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now, selfcheck_interval_s: float = 30.0
) -> FastAPI:
    readiness = Readiness()
    trees = load_org_trees()
    placer = Placer(trees)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceResources(settings, SERVICE, readiness) as resources:
            assert resources.engine is not None
            assert resources.producer is not None
            engine = resources.engine
            reader = RollupReader(placer)
            app.state.reporting = ReportingReads(engine, reader, clock)
            relay = OutboxRelay(engine, resources.producer, outbox, SERVICE)
            consumer = BatchConsumer(
                ConsumerSpec(SERVICE, GROUP, (TALLY_CHANGES, REFERENCE_EVENTS)),
                ReportingHandler(Folder(placer), outbox),
                engine,
                settings.model_copy(update={"consumer_batch": settings.reporting_batch}),
                after_commit=(relay.wake,),
            )
            publisher = RollupPublisher(
                engine,
                placer,
                outbox,
                coalesce_s=settings.rollup_coalesce_s,
                wake=relay.wake,
                clock=clock,
                progress=lambda: (consumer.begun, consumer.ended),
            )
            app.state.reporting_consumers = (consumer,)  # as the quota's: the benchmarks read their counters
            checks = SelfCheck(engine, reader, interval_s=selfcheck_interval_s, clock=clock)
            app.state.selfcheck = checks
            broker = make_broker(settings)
            consumer.subscribe(broker)
            readiness.add(f"consumer:{GROUP}", consumer.check)
            collector = PeriodicCollector()
            collector.start()
            relay.start()
            publisher.start()
            checks.start()
            await broker.start()
            try:
                yield
            finally:
                await consumer.drain()
                await broker.stop()
                await asyncio.gather(publisher.stop(), checks.stop())
                await relay.stop(settings.shutdown_grace_s / 2)
                await collector.stop()

    app = create_service_app(
        title="ketnap reporting",
        description=(
            "Rollups commune -> district -> province -> national for any period and either org tree, "
            "lagging branches, exports, and the ketnap.rollups feed."
        ),
        lifespan=lifespan,
        readiness=readiness,
    )
    app.state.settings = settings
    app.state.scopes = token_scopes(settings, trees)
    app.include_router(router)
    return app
