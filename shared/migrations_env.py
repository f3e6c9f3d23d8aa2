"""The body of every service's Alembic ``env.py``.

It runs on the connection handed in by :func:`shared.db.migrate`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection


def run(target_metadata: MetaData | None = None) -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `ketnap migrate <service>` (shared.db.migrate)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or "alembic_version",
        render_as_batch=connection.dialect.name == "sqlite",
    )
    _hold_ddl(connection)
    with context.begin_transaction():
        context.run_migrations()


def _hold_ddl(connection: Connection) -> None:
    """Make SQLite's DDL part of the caller's transaction, as it is on PostgreSQL.

    Python's sqlite3 opens a transaction only before DML, so until a migration's first
    INSERT or UPDATE each CREATE, ALTER or DROP took effect at once: a migration that
    failed or refused (``reporting_0004``'s downgrade while packed rows wait) left the
    steps before it done. An explicit ``BEGIN`` keeps all of it to the caller's commit.
    """
    driver = connection.connection.driver_connection
    if connection.dialect.name == "sqlite" and driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN")
