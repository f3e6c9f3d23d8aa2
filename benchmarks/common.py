"""What every benchmark module shares: the embedded broker, a fresh database, timing helpers."""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.consumer import SESSION_TIMEOUT_ENV, offsets_table
from shared.db import make_engine
from shared.embedded_broker import EmbeddedBroker
from shared.settings import Settings

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def database_label() -> str:
    return "PostgreSQL 127.0.0.1:5432" if postgres_available() else "SQLite (no PostgreSQL at 127.0.0.1:5432)"


async def _admin(statement: str) -> None:
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def fresh_database(workdir: Path, name: str = "bench") -> Iterator[str]:
    """A new empty PostgreSQL database (dropped afterwards), or a SQLite file when there is none."""
    if not postgres_available():
        yield f"sqlite+aiosqlite:///{workdir / name}.sqlite"
        return
    db = f"ketnap_bench_{name}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{db}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=db).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


@contextmanager
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def service_settings(service: str, bootstrap: str, url: str) -> Settings:
    """A service's settings for a benchmark: quiet logs and a short group session."""
    return Settings(
        service=service,
        kafka_bootstrap=bootstrap,
        database_url=url,
        log_level="WARNING",
        # A group join on Tansu waits half the session: 3 s unless the environment sets one.
        kafka_session_timeout_ms=int(os.environ.get(SESSION_TIMEOUT_ENV) or 3000),
    )


async def committed(engine: AsyncEngine, service: str, topic: str) -> int:
    """Records of ``topic`` whose effect ``service`` has committed: the sum of its stored
    positions (partitions start at 0; a redelivery is not counted twice there)."""
    positions = offsets_table(MetaData(), service).c
    query = select(func.coalesce(func.sum(positions.next_offset), 0)).where(positions.topic == topic)
    async with engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


def serve_replica(service: str, bootstrap: str, url: str, index: int, held: Any, stop: Any) -> None:
    """One replica of ``service`` (the target of a child process): the service's own lifespan
    until ``stop`` is set, writing the partitions its consumer holds to ``held[index]``."""

    async def serve() -> None:
        app = importlib.import_module(f"services.{service}.app").create_app(
            service_settings(service, bootstrap, url)
        )
        async with app.router.lifespan_context(app):
            consumer = getattr(app.state, f"{service}_consumers")[0]
            while not stop.is_set():
                held[index] = consumer.partitions
                await asyncio.sleep(0.005)

    asyncio.run(serve())


class Replicas:
    """``count`` replicas of ``service``, each a process of its own in one consumer group,
    on one broker and database; stopped on leaving (killed if one is still busy 60 s on)."""

    def __init__(self, service: str, bootstrap: str, url: str, count: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.service, self.url = service, url
        self.held, self.stop = spawn.Array("q", count), spawn.Event()  # partitions each holds
        self.children = [
            spawn.Process(target=serve_replica, args=(service, bootstrap, url, i, self.held, self.stop))
            for i in range(count)
        ]

    async def __aenter__(self) -> Replicas:
        for child in self.children:
            child.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        for child in self.children:
            await asyncio.to_thread(child.join, 60)
            if child.is_alive():  # still publishing its last messages: the figure is taken
                child.terminate()
                await asyncio.to_thread(child.join, 10)

    def check(self) -> None:
        if not all(child.is_alive() for child in self.children):
            raise RuntimeError(f"a {self.service} replica died: {[c.exitcode for c in self.children]}")

    async def settled(self, partitions: int, within: float) -> None:
        """Until every replica holds partitions and together they hold ``partitions``."""
        deadline = time.monotonic() + within
        while not (all(self.held[:]) and sum(self.held[:]) == partitions):
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {self.service} replicas did not share the partitions")
            await asyncio.sleep(0.005)

    async def committing(self, topic: str, total: int) -> tuple[int, float]:
        """From now until ``total`` records of ``topic`` are committed: the records committed
        meanwhile and the seconds, the positions read every 0.1 s (±0.2% of a 45 s replay;
        read every 20 ms they took a tenth of a core from the replicas and the database)."""
        engine = make_engine(self.url)
        try:
            started, before = time.perf_counter(), await committed(engine, self.service, topic)
            while (done := await committed(engine, self.service, topic)) < total:
                self.check()
                await asyncio.sleep(0.1)
            return done - before, time.perf_counter() - started
        finally:
            await engine.dispose()


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
