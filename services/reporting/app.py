"""Composition root of the reporting service: settings, database, broker and routes wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.http import Readiness, create_service_app
from shared.service import ServiceResources
from shared.settings import Settings

SERVICE = "reporting"


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceResources(settings, SERVICE, readiness):
            yield

    return create_service_app(
        title="ketnap reporting",
        description="Rollups commune -> district -> province -> national for any period and either org tree.",
        lifespan=lifespan,
        readiness=readiness,
    )
