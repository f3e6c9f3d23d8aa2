"""Composition root of the intake service: settings, database, broker and routes wired together.

Tokens are parsed and checked against the org trees when the app is created, so a
bad ``KETNAP_TOKENS`` entry is a start-up error naming the entry (never the token).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI

from services.intake.api import router
from services.intake.collector import IdleCollector
from services.intake.handlers import PUBLISH_TIMEOUT_S, Intake, utc_now
from services.intake.openapi import with_event_schema
from services.intake.store import IntakeStore
from shared.http import Readiness, create_service_app
from shared.orgtree import OrgTrees, load_org_trees
from shared.scope import TokenScope, unknown_entries
from shared.service import ServiceResources
from shared.settings import Scope, Settings

SERVICE = "intake"


def token_scopes(settings: Settings, trees: OrgTrees) -> dict[Scope, TokenScope]:
    """Each distinct configured scope, parsed; ValueError for an entry naming no province."""
    parsed: dict[Scope, TokenScope] = {}
    for entries in settings.token_scopes().values():
        if unknown := unknown_entries(entries, trees):
            raise ValueError(f"KETNAP_TOKENS: no such province: {', '.join(unknown)}")
        parsed[entries] = TokenScope.parse(entries)
    return parsed


def create_app(
    settings: Settings,
    *,
    publish_timeout_s: float = PUBLISH_TIMEOUT_S,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    readiness = Readiness()
    trees = load_org_trees()
    scopes = token_scopes(settings, trees)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ServiceResources(settings, SERVICE, readiness) as resources:
            assert resources.engine is not None
            assert resources.producer is not None
            store = IntakeStore(resources.engine)
            app.state.intake = Intake(store, resources.producer, trees, publish_timeout_s, clock)
            app.state.collector.start()
            try:
                yield
            finally:
                app.state.collector.stop()
                await store.close()

    app = create_service_app(
        title="ketnap intake",
        description=(
            "HTTP ingress for provincial deployments: validates CloudEvents, authorises each "
            "event by the token's provinces, and publishes what is new to Kafka."
        ),
        lifespan=lifespan,
        readiness=readiness,
    )
    app.state.tokens = settings.token_scopes()
    app.state.scopes = scopes
    app.state.collector = IdleCollector()
    app.include_router(router)
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        return with_event_schema(generated())  # generated() caches the document: added once

    app.openapi = openapi  # type: ignore[method-assign]
    return app
