"""The closed vocabulary of the quota domain: event types, milestones, profile values, codes.

Values are the contract's wire strings (CONTRACT.md section 2); every enum is a `StrEnum`
so its members serialise as those strings.
"""

from __future__ import annotations

from enum import StrEnum

WIRE_PREFIX = "vn.ketnap.candidate."


class EventType(StrEnum):
    """What happened to the candidate; the wire type minus `WIRE_PREFIX`."""

    SOURCED = "sourced"
    CLASS_COMPLETED = "class_completed"
    DOSSIER_VERIFIED = "dossier_verified"
    ADMITTED = "admitted"
    CONFIRMED = "confirmed"
    TRANSFERRED = "transferred"
    DROPPED = "dropped"
    VOIDED = "voided"


MILESTONES: tuple[EventType, ...] = (
    EventType.SOURCED,  # giới thiệu quần chúng ưu tú
    EventType.CLASS_COMPLETED,  # học lớp bồi dưỡng nhận thức về Đảng
    EventType.DOSSIER_VERIFIED,  # thẩm tra lý lịch
    EventType.ADMITTED,  # kết nạp: đảng viên dự bị
    EventType.CONFIRMED,  # công nhận đảng viên chính thức
)
DROP_REASONS = frozenset({"moved_away", "ineligible", "declined", "not_recognised", "deceased", "other"})
PROFILE_CATEGORIES: tuple[str, ...] = (
    "student",
    "private_sector",
    "business_owner",
    "ethnic_minority",
    "religious",
    "demobilized_soldier",
    "youth_union",
)
SEXES = frozenset({"female", "male"})


class Status(StrEnum):
    """What became of an event in a candidate's state (see `records.Decision`)."""

    APPLIED = "applied"
    VOIDED = "voided"
    HELD = "held"
    REJECTED = "rejected"


class RejectionCode(StrEnum):
    """Why an event does not count; `ketnap.rejected` carries it as `code`."""

    DUPLICATE_MILESTONE = "duplicate_milestone"
    CANDIDATE_DROPPED = "candidate_dropped"
    UNKNOWN_CANDIDATE = "unknown_candidate"
    INVALID_TRANSITION = "invalid_transition"
    ID_CONFLICT = "id_conflict"
    OUT_OF_SCOPE = "out_of_scope"  # a void with a scope naming an event outside it


class FlagCode(StrEnum):
    """A data-quality remark on an event that still counts."""

    INCONSISTENT_TIMELINE = "inconsistent_timeline"
    PROBATION_TOO_SHORT = "probation_too_short"
