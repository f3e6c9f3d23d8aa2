"""Fixtures shared by every test: the real embedded broker and a real, fresh database.

``KETNAP_TEST_DATABASE_URL`` (PostgreSQL) makes every database test run on a
freshly created PostgreSQL database; without it they run on a SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import settings
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.embedded_broker import EmbeddedBroker

TEST_DATABASE_URL = os.environ.get("KETNAP_TEST_DATABASE_URL")
T = TypeVar("T")

# No per-example deadline: it is a timed assertion, and on a shared 2-core machine a
# pure example took 350 ms once (period spans). Speed lives in benchmarks/.
settings.register_profile("ketnap", deadline=None)
settings.load_profile("ketnap")


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedBroker]:
    """Tansu on a free port with every ketnap topic created; stopped at the end of the session."""
    broker = EmbeddedBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def kafka_bootstrap(kafka: EmbeddedBroker) -> str:
    return kafka.bootstrap


async def _admin(statement: str) -> None:
    assert TEST_DATABASE_URL is not None
    engine = create_async_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def fresh_database_url(tmp_path: Path, name: str = "db") -> str:
    """A new empty database: PostgreSQL when configured, else a SQLite file under tmp_path."""
    if TEST_DATABASE_URL is None:
        return f"sqlite+aiosqlite:///{tmp_path / name}.sqlite"
    db = f"ketnap_t_{uuid.uuid4().hex[:16]}"
    await _admin(f'CREATE DATABASE "{db}"')
    _created.append(db)
    return make_url(TEST_DATABASE_URL).set(database=db).render_as_string(hide_password=False)


_created: list[str] = []


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    return await fresh_database_url(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    if TEST_DATABASE_URL is None or not _created:
        return

    async def drop_all() -> None:
        for db in _created:
            await _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    asyncio.run(drop_all())


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 60.0) -> T:
    """Poll ``probe`` until it returns something truthy (the service works asynchronously)."""
    deadline = asyncio.get_running_loop().time() + within
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached within {within}s; last probe: {last!r}")
