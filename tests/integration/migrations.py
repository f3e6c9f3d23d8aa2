"""Alembic run on a test's own connection, to a given revision of one service's history."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Connection

from shared.db import alembic_config


def to_revision(service: str, revision: str, *, down: bool = False) -> Callable[[Connection], None]:
    """For ``connection.run_sync``: upgrade (or downgrade) ``service`` to ``revision``."""
    from alembic import command  # ~1 s to import: only the tests that migrate pay it

    def run(connection: Connection) -> None:
        cfg = alembic_config(service)
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, revision)

    return run
