"""Topic names and settings (CONTRACT.md section 4). One place, used by every service and by deploy/."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

CANDIDATE_EVENTS: Final = "ketnap.candidate-events"
REFERENCE_EVENTS: Final = "ketnap.reference-events"
TALLY_CHANGES: Final = "ketnap.tally-changes"
REJECTED: Final = "ketnap.rejected"
ROLLUPS: Final = "ketnap.rollups"

CLOUDEVENTS_CONTENT_TYPE: Final = "application/cloudevents+json"
CORRELATION_HEADER: Final = "correlation-id"

# Explicit retention: tools that assume broker defaults (and Tansu) need it spelled out.
_KEEP_FOREVER = {"retention.ms": "-1"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


TOPICS: Final[tuple[TopicSpec, ...]] = (
    TopicSpec(CANDIDATE_EVENTS, 12, dict(_KEEP_FOREVER)),
    TopicSpec(REFERENCE_EVENTS, 3, dict(_KEEP_FOREVER)),
    TopicSpec(TALLY_CHANGES, 12, dict(_KEEP_FOREVER)),
    TopicSpec(REJECTED, 3, dict(_KEEP_FOREVER)),
    TopicSpec(ROLLUPS, 6, {**_KEEP_FOREVER, "cleanup.policy": "compact"}),
)


def partitions_of(topic: str) -> int:
    """How many partitions ``topic`` is created with."""
    return next(t.partitions for t in TOPICS if t.name == topic)
