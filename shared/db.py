"""SQLAlchemy 2 async plumbing: one engine per process, SQLite (aiosqlite, WAL) or PostgreSQL (asyncpg).

Each service owns its database and its own Alembic history (``services/<name>/migrations``,
version table ``alembic_version_<name>``); table names carry the service prefix so
that the test suite can also put all three in one database.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def lz4_available(connection: Connection) -> bool:
    """Whether the server can compress a column with lz4 (PostgreSQL 14+ built with it)."""
    probe = "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
    return connection.dialect.name == "postgresql" and connection.execute(text(probe)).first() is not None


def asyncpg_dsn(url: str | URL) -> str:
    """The plain ``postgresql://`` form of a SQLAlchemy URL, for asyncpg used directly."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    if is_sqlite(url):
        engine = create_async_engine(url, poolclass=NullPool if ":memory:" not in url else None)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(service: str) -> Config:
    from alembic.config import Config  # imported here: alembic costs ~1 s at every process start

    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.set_main_option("version_table", f"alembic_version_{service}")
    return cfg


def run_migrations(
    connection: Connection, service: str, revision: str = "head", *, down: bool = False
) -> None:
    """Alembic on ``connection``, in its transaction: ``service``'s tables up (or down) to
    ``revision``. For ``AsyncConnection.run_sync``; tests use it to stop at a revision."""
    from alembic import command  # imported here: alembic costs ~1 s at every process start

    cfg = alembic_config(service)
    cfg.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(cfg, revision)


async def migrate(engine: AsyncEngine, service: str) -> None:
    """Bring the service's tables to head; safe when replicas start together (advisory lock on PostgreSQL)."""

    def upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(service.encode())})
        run_migrations(connection, service)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
