"""What the intake's decision works on and produces: items, stored knowledge, results, plans.

Plain dataclasses, no behaviour beyond counting; see :mod:`decide` for the rules. The
per-event ones (``Inspected``, ``Result``, ``Accepted``) are not frozen, only because a frozen
dataclass's ``__init__`` costs about a microsecond per instance; nothing mutates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from services.intake.domain.registry import Attribution, BranchHistory, Placement
from services.intake.domain.validation import Refusal
from shared.events import Envelope

FUTURE_TOLERANCE: Final = timedelta(minutes=5)
REGISTERED: Final = "vn.ketnap.org.branch_registered"
TARGET_SET: Final = "vn.ketnap.target.set"
VOIDED: Final = "vn.ketnap.candidate.voided"
TRANSFERRED: Final = "vn.ketnap.candidate.transferred"
ACCEPTED: Final = "accepted"
DUPLICATE: Final = "duplicate"
REJECTED: Final = "rejected"


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs per event
class Inspected:
    """One item after the structural check, before anything is looked up."""

    item: object
    id: str | None
    event: Envelope | None
    refusal: Refusal | None
    hash: bytes


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """What the intake recorded about an event id it has seen before."""

    hash: bytes
    published: bool
    branch_id: str | None
    attribution: Attribution | None


@dataclass(frozen=True, slots=True)
class Known:
    """The intake's memory for this request: stored events and branch histories, by id."""

    events: Mapping[str, StoredEvent] = field(default_factory=dict)
    branches: Mapping[str, BranchHistory] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Lookups:
    """The ids a request needs from the store."""

    event_ids: frozenset[str]
    branch_ids: frozenset[str]


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs per event
class Result:
    """The answer for one item, plus what metrics need (short type, province)."""

    id: str | None
    status: str
    code: str | None = None
    detail: str | None = None
    type: str = "unknown"
    province: str = "unknown"


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 µs per event
class Accepted:
    """An event to publish, with what the store records for it.

    ``void_scope``: the ``voidscope`` extension to publish it with (a province's void of an
    event the intake has not seen), else None."""

    index: int
    item: dict[str, object]
    event: Envelope
    hash: bytes
    topic: str
    key: str
    branch_id: str | None
    attribution: Attribution
    placement: Placement | None
    was_pending: bool
    void_scope: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    results: list[Result]
    accepted: list[Accepted]

    def counts(self) -> dict[str, int]:
        counts = {ACCEPTED: 0, DUPLICATE: 0, REJECTED: 0}
        for result in self.results:
            counts[result.status] += 1
        return counts
