"""Composition root of the intake service: settings, database, broker and routes wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.http import Readiness, create_service_app
from shared.service import ServiceResources
from shared.settings import Settings

SERVICE = "intake"


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceResources(settings, SERVICE, readiness):
            yield

    return create_service_app(
        title="ketnap intake",
        description=(
            "HTTP ingress for provincial deployments: validates, authorises per province, "
            "publishes candidate events."
        ),
        lifespan=lifespan,
        readiness=readiness,
    )
