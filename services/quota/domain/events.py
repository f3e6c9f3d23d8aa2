"""Domain inputs: candidate events [sự kiện của quần chúng ưu tú] and their profile.

The edge turns each wire event of `ketnap.candidate-events` into one `CandidateEvent`
(`from_cloudevent` does that translation) and hands it to `lifecycle.apply`.

Invariants checked on construction (a `ValueError` otherwise):
- `time` and `arrived_at` are timezone-aware;
- every field the event type needs is present (`branch_id` for milestones and drops,
  `profile` for `sourced`, `reason` in `DROP_REASONS` for `dropped`, both branches for
  `transferred`, `voids` for `voided`);
- a profile's `sex` is `female`/`male` and its categories come from `PROFILE_CATEGORIES`
  (kept sorted and unique, so equal profiles compare equal);
- only a `voided` event has a `scope`.

The province check of a void is data, not a lookup: a void the intake could not
authorise carries the voiding token's `scope` (its provinces per tree, from the
`voidscope` extension), and the event it names carries its `place` (the province it
lies in, `legacy:P10`), stamped by the edge from the branch registry before the void
is decided. `history` applies such a void only if the scope holds the place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from services.quota.domain.vocabulary import (
    DROP_REASONS,
    MILESTONES,
    PROFILE_CATEGORIES,
    SEXES,
    WIRE_PREFIX,
    EventType,
)
from shared.scope import VOID_SCOPE, parse_void_scope

# Same-instant events are replayed in lifecycle order, a drop last, so that a drop
# dated the same instant as a milestone never rejects it.
_RANK = {kind: rank for rank, kind in enumerate((*MILESTONES, EventType.TRANSFERRED, EventType.DROPPED))}
_NEEDS: dict[EventType, tuple[str, ...]] = {
    **dict.fromkeys(MILESTONES, ("branch_id",)),
    EventType.SOURCED: ("branch_id", "profile"),
    EventType.DROPPED: ("branch_id", "reason"),
    EventType.TRANSFERRED: ("from_branch_id", "to_branch_id"),
    EventType.VOIDED: ("voids",),
}


@dataclass(frozen=True, slots=True)
class Profile:
    """What the `sourced` event says about the candidate; it decides tally categories."""

    birth_year: int
    sex: str
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sex not in SEXES:
            raise ValueError(f"unknown sex {self.sex!r}")
        unknown = set(self.categories) - set(PROFILE_CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}")
        object.__setattr__(self, "categories", tuple(sorted(set(self.categories))))

    def to_dict(self) -> dict[str, Any]:
        return {"birth_year": self.birth_year, "sex": self.sex, "categories": list(self.categories)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Profile:
        return cls(int(raw["birth_year"]), str(raw["sex"]), tuple(raw.get("categories", ())))


@dataclass(frozen=True, slots=True)
class CandidateEvent:
    """One candidate event as the lifecycle sees it; `arrived_at` starts the park clock."""

    id: str
    candidate_id: str
    type: EventType
    time: datetime
    arrived_at: datetime
    branch_id: str | None = None
    profile: Profile | None = None
    reason: str | None = None
    from_branch_id: str | None = None
    to_branch_id: str | None = None
    voids: str | None = None
    scope: tuple[str, ...] | None = None  # a void's allowed provinces (`voidscope`); None: any
    place: str | None = None  # where a void with a scope finds this event; None: not looked up

    def __post_init__(self) -> None:
        if self.type.__class__ is not EventType:  # the Enum call costs ~1 us per event
            object.__setattr__(self, "type", EventType(self.type))
        if self.time.utcoffset() is None or self.arrived_at.utcoffset() is None:
            raise ValueError(f"event {self.id}: times must carry an offset")
        missing = [name for name in _NEEDS.get(self.type, ()) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"event {self.id} ({self.type}): missing {', '.join(missing)}")
        if self.type is EventType.DROPPED and self.reason not in DROP_REASONS:
            raise ValueError(f"event {self.id}: unknown drop reason {self.reason!r}")
        if self.scope is not None and self.type is not EventType.VOIDED:
            raise ValueError(f"event {self.id} ({self.type}): only a void carries a scope")

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        """Replay order: event time, then lifecycle rank, then id (total and deterministic)."""
        return (self.time, _RANK.get(self.type, len(_RANK)), self.id)

    def same_content(self, other: CandidateEvent) -> bool:
        """Equal apart from `arrived_at` and `place` (a redelivery is the same event; the place
        is stamped by the edge, not sent)."""
        return replace(other, arrived_at=self.arrived_at, place=self.place) == self

    def to_dict(self) -> dict[str, Any]:
        raw: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        raw["type"] = str(self.type)
        raw["time"] = self.time.isoformat()
        raw["arrived_at"] = self.arrived_at.isoformat()
        raw["profile"] = self.profile.to_dict() if self.profile else None
        return raw

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CandidateEvent:
        values: dict[str, Any] = {f.name: raw.get(f.name) for f in fields(cls)}
        values["type"] = EventType(raw["type"])
        values["time"] = datetime.fromisoformat(raw["time"])
        values["arrived_at"] = datetime.fromisoformat(raw["arrived_at"])
        values["profile"] = Profile.from_dict(raw["profile"]) if raw.get("profile") else None
        values["scope"] = tuple(raw["scope"]) if raw.get("scope") is not None else None
        return cls(**values)


def from_cloudevent(envelope: Mapping[str, Any], arrived_at: datetime) -> CandidateEvent:
    """Build the domain input from a validated `vn.ketnap.candidate.*` CloudEvent.

    Schema validation is the intake's job; this only maps fields (ValueError if unusable).
    """
    data: Mapping[str, Any] = envelope.get("data") or {}
    kind = str(envelope["type"])
    if not kind.startswith(WIRE_PREFIX):
        raise ValueError(f"not a candidate event: {kind}")
    profile = data.get("profile")
    return CandidateEvent(
        id=str(envelope["id"]),
        candidate_id=str(envelope["subject"]),
        type=EventType(kind.removeprefix(WIRE_PREFIX)),
        time=datetime.fromisoformat(str(envelope["time"])),
        arrived_at=arrived_at,
        branch_id=data.get("branch_id"),
        profile=Profile.from_dict(profile) if profile else None,
        reason=data.get("reason"),
        from_branch_id=data.get("from_branch_id"),
        to_branch_id=data.get("to_branch_id"),
        voids=data.get("voids"),
        scope=parse_void_scope(scope) if (scope := envelope.get(VOID_SCOPE)) is not None else None,
    )
