"""What every service process holds: settings, database engine, a durable producer, readiness.

``ServiceResources`` is opened in a service's lifespan (never at import time) and
closed on shutdown; the composition root of each service builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from shared.db import make_engine, migrate, ping, session_factory
from shared.http import Readiness
from shared.kafka import broker_ping, make_producer
from shared.logging import configure_logging
from shared.settings import Settings


@dataclass
class ServiceResources:
    settings: Settings
    name: str
    readiness: Readiness = field(default_factory=Readiness)
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[Any] | None = None
    producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> ServiceResources:
        configure_logging(self.name, self.settings.log_level)
        self.engine = make_engine(self.settings.resolved_database_url())
        if self.settings.migrate_on_start:
            await migrate(self.engine, self.name)
        self.sessions = session_factory(self.engine)
        self.producer = make_producer(self.settings)
        await self.producer.start()
        engine, producer = self.engine, self.producer
        self.readiness.add("database", lambda: ping(engine))
        self.readiness.add("broker", lambda: broker_ping(producer))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.producer is not None:
            await self.producer.stop()
        if self.engine is not None:
            await self.engine.dispose()
