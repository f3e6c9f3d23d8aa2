"""The parts of a candidate's state, each a frozen dataclass with `to_dict`/`from_dict`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.quota.domain.tally import TallyKey
from services.quota.domain.vocabulary import FlagCode, RejectionCode, Status


def _time(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one event; `code`/`detail` explain rejections, voids and holds."""

    event_id: str
    status: Status
    code: RejectionCode | None = None
    detail: str | None = None
    held_since: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        since = self.held_since.isoformat() if self.held_since else None
        return {
            "event_id": self.event_id,
            "status": str(self.status),
            "code": self.code and str(self.code),
            "detail": self.detail,
            "held_since": since,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Decision:
        code = RejectionCode(raw["code"]) if raw.get("code") else None
        return cls(
            raw["event_id"], Status(raw["status"]), code, raw.get("detail"), _time(raw.get("held_since"))
        )


@dataclass(frozen=True, slots=True)
class Milestone:
    """A milestone reached (or the drop: `name` is then `dropped.<reason>`), by which event."""

    name: str
    time: datetime
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "time": self.time.isoformat(), "event_id": self.event_id}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Milestone:
        return cls(raw["name"], datetime.fromisoformat(raw["time"]), raw["event_id"])


@dataclass(frozen=True, slots=True, order=True)
class Flag:
    """A data-quality remark on a counted event: it still counts."""

    code: FlagCode
    event_id: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "event_id": self.event_id, "detail": self.detail}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Flag:
        return cls(FlagCode(raw["code"]), raw["event_id"], raw["detail"])


@dataclass(frozen=True, slots=True)
class Contribution:
    """The tally keys one applied event counts +1 on (what a void of it takes back)."""

    event_id: str
    keys: tuple[TallyKey, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "keys": [key.to_dict() for key in self.keys]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Contribution:
        return cls(raw["event_id"], tuple(TallyKey.from_dict(key) for key in raw["keys"]))
