"""Wire schemas of the events that come in through the intake (CONTRACT.md section 2).

Every write is a CloudEvents 1.0 event in structured JSON mode. The envelope is
checked first (so an unknown ``type`` can be told apart from a bad ``data``),
then ``data`` against the model of its type. Models are strict: unknown fields
are rejected (no personal names, birth dates or ID-card numbers can slip in),
enums are closed, integers are integers and every time carries an offset.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from shared.scope import parse_void_scope

TYPE_PREFIX: Final = "vn.ketnap."
VOIDED: Final = "vn.ketnap.candidate.voided"
VOID_SCOPE_PATTERN: Final = r"^\s*(?:(?:\*|(?:(?:legacy|2025):)?P\d{2})(?:\s+|$))*$"
"""What a ``voidscope`` looks like, for the JSON Schema (the model reads it with ``shared.scope``)."""


def _iso_string_only(value: object) -> object:
    """Times must be RFC 3339 strings: numbers (epoch seconds) carry no offset."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset")
    return value


def _void_scope(value: str) -> str:
    """A ``voidscope`` must read as token scope entries (``legacy:P10 2025:P15``)."""
    parse_void_scope(value)
    return value


def _must_have_offset(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset, e.g. 2024-05-12T09:00:00+07:00")
    return value


EventTime = Annotated[datetime, BeforeValidator(_iso_string_only), AfterValidator(_must_have_offset)]
Identifier = Annotated[
    StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
UnitId = Annotated[StrictStr, Field(pattern=r"^(VN|P\d{2}|D\d{3}|C\d{5})$")]
NUL_FREE: Final = StringConstraints(pattern=r"^[^\x00]*$")
"""Free text may hold anything but NUL, which PostgreSQL text cannot store: refused per event."""
TreeName = Literal["legacy", "2025"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BranchKind(StrEnum):
    """Kinds of party branch [chi bộ]: residential (thôn/khu dân cư), school, police, ..."""

    RESIDENTIAL = "residential"
    SCHOOL = "school"
    POLICE = "police"
    MILITARY = "military"
    AGENCY = "agency"
    ENTERPRISE = "enterprise"
    OTHER = "other"


class ProfileCategory(StrEnum):
    """Candidate categories from the profile, the groups the seeds report on."""

    STUDENT = "student"
    PRIVATE_SECTOR = "private_sector"
    BUSINESS_OWNER = "business_owner"
    ETHNIC_MINORITY = "ethnic_minority"
    RELIGIOUS = "religious"
    DEMOBILIZED_SOLDIER = "demobilized_soldier"
    YOUTH_UNION = "youth_union"


class DropReason(StrEnum):
    MOVED_AWAY = "moved_away"
    INELIGIBLE = "ineligible"
    DECLINED = "declined"
    NOT_RECOGNISED = "not_recognised"
    DECEASED = "deceased"
    OTHER = "other"


class Milestone(StrEnum):
    """The five milestones of the pipeline, in order."""

    SOURCED = "sourced"
    CLASS_COMPLETED = "class_completed"
    DOSSIER_VERIFIED = "dossier_verified"
    ADMITTED = "admitted"
    CONFIRMED = "confirmed"


TALLY_METRICS: Final[tuple[str, ...]] = (
    *(m.value for m in Milestone),
    "dropped",
    *(f"dropped.{r.value}" for r in DropReason),
    "transferred_in",
    "transferred_out",
)
"""Every metric a tally (and a target) can be kept for."""

TALLY_CATEGORIES: Final[tuple[str, ...]] = ("all", "female", *(c.value for c in ProfileCategory))
"""``all``, ``female`` and each profile category."""

Metric = Annotated[StrictStr, AfterValidator(lambda v: _one_of(v, TALLY_METRICS, "metric"))]
Category = Annotated[StrictStr, AfterValidator(lambda v: _one_of(v, TALLY_CATEGORIES, "category"))]


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; one of: {', '.join(allowed)}")
    return value


class Parents(_Strict):
    """A branch's parent unit in each tree version it belongs to (at least one)."""

    legacy: UnitId | None = None
    v2025: UnitId | None = Field(default=None, alias="2025")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _at_least_one(self) -> Parents:
        if self.legacy is None and self.v2025 is None:
            raise ValueError("parents needs at least one of 'legacy', '2025'")
        return self

    def get(self, tree: TreeName) -> str | None:
        return self.legacy if tree == "legacy" else self.v2025


class BranchRegistered(_Strict):
    branch_id: Identifier
    name: Annotated[StrictStr, Field(min_length=1, max_length=200), NUL_FREE]
    kind: BranchKind
    parents: Parents


class Profile(_Strict):
    """Pseudonymous profile: birth year and sex only, never a name or ID number."""

    birth_year: Annotated[StrictInt, Field(ge=1900, le=2100)]
    sex: Literal["female", "male"]
    categories: Annotated[list[ProfileCategory], Field(max_length=len(ProfileCategory))] = []

    @model_validator(mode="after")
    def _unique_categories(self) -> Profile:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must not repeat")
        return self


class CandidateSourced(_Strict):
    branch_id: Identifier
    profile: Profile


class BranchOnly(_Strict):
    """Data of class_completed, dossier_verified and confirmed."""

    branch_id: Identifier


class CandidateAdmitted(_Strict):
    branch_id: Identifier
    decision_no: Annotated[StrictStr, Field(min_length=1, max_length=64), NUL_FREE] | None = None


class CandidateDropped(_Strict):
    branch_id: Identifier
    reason: DropReason


class CandidateTransferred(_Strict):
    from_branch_id: Identifier
    to_branch_id: Identifier


class CandidateVoided(_Strict):
    voids: Annotated[StrictStr, Field(min_length=1, max_length=256), NUL_FREE]
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500), NUL_FREE]


class TargetSet(_Strict):
    """A target [chỉ tiêu]: a resolution target (Nghị quyết) or a quota assigned from above."""

    unit_id: UnitId
    tree: TreeName | None = None
    year: Annotated[StrictInt, Field(ge=2000, le=2100)]
    kind: Literal["resolution", "assigned"]
    value: Annotated[StrictInt, Field(ge=0, le=10_000_000)]
    metric: Metric = "admitted"
    category: Category = "all"
    source_doc: Annotated[StrictStr, Field(max_length=500), NUL_FREE] | None = None


EVENT_DATA: Final[dict[str, type[_Strict]]] = {
    "vn.ketnap.org.branch_registered": BranchRegistered,
    "vn.ketnap.candidate.sourced": CandidateSourced,
    "vn.ketnap.candidate.class_completed": BranchOnly,
    "vn.ketnap.candidate.dossier_verified": BranchOnly,
    "vn.ketnap.candidate.admitted": CandidateAdmitted,
    "vn.ketnap.candidate.confirmed": BranchOnly,
    "vn.ketnap.candidate.dropped": CandidateDropped,
    "vn.ketnap.candidate.transferred": CandidateTransferred,
    "vn.ketnap.candidate.voided": CandidateVoided,
    "vn.ketnap.target.set": TargetSet,
}
"""The closed set of event types and the model of each one's ``data``."""

EventData = (
    BranchRegistered
    | CandidateSourced
    | BranchOnly
    | CandidateAdmitted
    | CandidateDropped
    | CandidateTransferred
    | CandidateVoided
    | TargetSet
)


def is_candidate_type(event_type: str) -> bool:
    return event_type.startswith("vn.ketnap.candidate.")


def short_type(event_type: str) -> str:
    """``vn.ketnap.candidate.admitted`` -> ``candidate.admitted``."""
    return event_type.removeprefix(TYPE_PREFIX)


class Envelope(_Strict):
    """The CloudEvents 1.0 envelope in structured mode, ``data`` not yet typed.

    ``recordedtime`` is the extension the intake adds when it accepts an event;
    ``voidscope`` the one it adds to a province's ``candidate.voided`` of an event it
    has not seen (the voiding token's provinces, ``shared.scope``). Providers may set
    neither (the intake rejects them on the way in); on the topics ``voidscope`` is
    only valid on a void and in the token grammar.
    """

    specversion: Literal["1.0"]
    id: Annotated[StrictStr, Field(min_length=1, max_length=256), NUL_FREE]
    source: Annotated[StrictStr, Field(min_length=1, max_length=512), NUL_FREE]
    type: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    time: EventTime
    subject: (
        Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]
        | None
    ) = None
    datacontenttype: Literal["application/json"] | None = None
    data: dict[str, Any]
    recordedtime: EventTime | None = None
    voidscope: (
        Annotated[
            StrictStr,
            Field(
                max_length=4096,
                description=(
                    "Set by the intake on a candidate.voided of an event it had not seen, sent with a "
                    "province token: that token's provinces, space separated (`legacy:P10 2025:P15`). "
                    "The quota applies the void only to an event lying in them, else rejects it "
                    "`out_of_scope`. Refused from clients."
                ),
                json_schema_extra={"pattern": VOID_SCOPE_PATTERN},
            ),
            AfterValidator(_void_scope),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _candidate_needs_subject(self) -> Envelope:
        if is_candidate_type(self.type) and self.subject is None:
            raise ValueError("candidate events need 'subject' (the pseudonymous candidate id)")
        if self.voidscope is not None and self.type != VOIDED:
            raise ValueError(f"voidscope: only a {VOIDED} carries it")
        return self


def data_model(event_type: str) -> type[_Strict] | None:
    return EVENT_DATA.get(event_type)


def parse_data(event_type: str, data: dict[str, Any]) -> EventData:
    """Validate ``data`` against its type's model; raises pydantic.ValidationError or KeyError."""
    model = EVENT_DATA[event_type]
    return model.model_validate(data)  # type: ignore[return-value]
