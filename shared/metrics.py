"""Prometheus metrics shared by the services. Every project metric is named ``ketnap_…``.

Service-specific metrics are declared in the service that owns them, through
:func:`counter`, :func:`gauge` and :func:`histogram`, which refuse any other prefix.

A service run as several worker processes behind one port (the intake) sets
``PROMETHEUS_MULTIPROC_DIR`` before any of them starts: each process then writes
its values there and every ``/metrics`` answer is the sum over the processes,
whichever of them answers.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

PREFIX: Final = "ketnap_"
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SIZE_BUCKETS: Final = (1, 10, 100, 500, 1000, 2000, 5000, 10000)


def observe_all(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe(a)`` for every amount, each bucket incremented once.

    A consumer observes the freshness of every record it commits: one by one, a batch of
    5,000 took ~4 ms (the client increments a locked value per observation). This relies
    on the client's histogram layout (``_upper_bounds``, ``_buckets``, ``_sum``), which
    ``tests/unit/test_consumer_observing.py`` holds equal to ``observe``.
    """
    if not amounts:
        return
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    bounds = histogram._upper_bounds  # ascending, +Inf last: observe's first bound >= amount
    for index, count in Tally(bisect_left(bounds, amount) for amount in amounts).items():
        histogram._buckets[index].inc(count)
    histogram._sum.inc(sum(amounts))


def _checked(name: str) -> str:
    if not name.startswith(PREFIX):
        raise ValueError(f"metric {name!r} must start with {PREFIX!r}")
    return name


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(_checked(name), doc, labels)


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(_checked(name), doc, labels)


def histogram(
    name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = LATENCY_BUCKETS
) -> Histogram:
    return Histogram(_checked(name), doc, labels, buckets=buckets)


# Consumer-side metrics common to quota and reporting (label ``service``).
EVENTS_PROCESSED = counter(
    "ketnap_events_processed_total", "Events consumed, by type and outcome.", ("service", "type", "outcome")
)
REJECTIONS = counter(
    "ketnap_rejections_total", "Events rejected asynchronously, by code.", ("service", "code")
)
CONSUMER_LAG = gauge("ketnap_consumer_lag", "Messages behind the log end.", ("service", "topic", "partition"))
BATCH_SECONDS = histogram("ketnap_batch_seconds", "Time to process and commit one batch.", ("service",))
OUTBOX_BACKLOG = gauge("ketnap_outbox_backlog", "Outgoing messages not yet published.", ("service",))
FRESHNESS_SECONDS = histogram(
    "ketnap_freshness_seconds", "From the event recorded at intake to its effect committed.", ("service",)
)
REDELIVERIES = counter(
    "ketnap_redeliveries_total", "Messages seen again that were already processed.", ("service",)
)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process (or of all the service's workers) and its
    content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
