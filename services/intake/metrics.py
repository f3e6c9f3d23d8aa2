"""The intake's Prometheus metrics (all ``ketnap_intake_…``)."""

from __future__ import annotations

from collections import Counter
from typing import Final

from services.intake.domain.decide import REJECTED, Plan
from shared.metrics import SIZE_BUCKETS, counter, histogram

EVENTS: Final = counter(
    "ketnap_intake_events_total",
    "Events answered, by type, status and province.",
    ("type", "status", "province"),
)
REJECTIONS: Final = counter(
    "ketnap_intake_rejections_total", "Events rejected at intake, by code.", ("code",)
)
REQUEST_SECONDS: Final = histogram("ketnap_intake_request_seconds", "Time to answer POST /v1/events.")
PUBLISH_SECONDS: Final = histogram(
    "ketnap_intake_publish_seconds", "Time from handing a request's events to the broker to every ack."
)
BATCH_SIZE: Final = histogram(
    "ketnap_intake_batch_size", "Events per POST /v1/events request.", buckets=SIZE_BUCKETS
)


def observe_plan(plan: Plan) -> None:
    """Count a request's results; aggregated first so a 10,000-event batch costs a few increments."""
    by_labels = Counter((r.type, r.status, r.province) for r in plan.results)
    for (kind, status, province), n in by_labels.items():
        EVENTS.labels(kind, status, province).inc(n)
    codes = Counter(r.code for r in plan.results if r.status == REJECTED and r.code)
    for code, n in codes.items():
        REJECTIONS.labels(code).inc(n)
