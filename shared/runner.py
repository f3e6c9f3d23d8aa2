"""Run one service's FastAPI app under uvicorn with a graceful, bounded shutdown."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared.settings import Settings


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; the app's lifespan drains consumers within ``shutdown_grace_s``."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        loop="auto",
    )
    uvicorn.Server(config).run()
