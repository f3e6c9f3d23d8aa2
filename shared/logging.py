"""structlog JSON logging: one line per record, with the service name and bound ids.

Handlers bind ``event_id`` and ``correlation_id`` with :func:`bind_ids`; they stay
on every line logged in that context (structlog contextvars), and are cleared
with :func:`clear_ids`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the standard library through one JSON renderer on stdout."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            _add_service(service),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _add_service(service),
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_service(service: str) -> Any:
    def add(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def bind_ids(*, event_id: str | None = None, correlation_id: str | None = None) -> None:
    ids = {k: v for k, v in (("event_id", event_id), ("correlation_id", correlation_id)) if v}
    structlog.contextvars.bind_contextvars(**ids)


def clear_ids() -> None:
    structlog.contextvars.clear_contextvars()
