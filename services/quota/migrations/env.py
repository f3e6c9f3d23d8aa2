"""Alembic environment of the quota service (its own history, table `alembic_version_quota`)."""

from shared.migrations_env import run

run()
