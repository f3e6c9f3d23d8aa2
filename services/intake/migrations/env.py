"""Alembic environment of the intake service (its own history, table `alembic_version_intake`)."""

from shared.migrations_env import run

run()
