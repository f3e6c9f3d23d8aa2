"""Run one service's FastAPI app under uvicorn with a graceful, bounded shutdown."""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI

from shared.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How every service is served, one process or several (``services.intake.workers``)."""
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": int(settings.shutdown_grace_s),
        "loop": "auto",
    }


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; the app's lifespan drains consumers within ``shutdown_grace_s``."""
    uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings))).run()
