"""What every benchmark module shares: the embedded broker, a fresh database, timing helpers."""

from __future__ import annotations

import asyncio
import socket
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.embedded_broker import EmbeddedBroker

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


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)
