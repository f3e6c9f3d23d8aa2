"""Alembic environment of the reporting service (its own history, table `alembic_version_reporting`)."""

from shared.migrations_env import run

run()
