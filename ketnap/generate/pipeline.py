"""Candidates [quần chúng ưu tú] moving through the pipeline of one commune.

Sourcing is a Poisson process per commune (thinned by year and season), each
candidate joining one branch in proportion to its rate. A candidate then goes
sourced -> awareness class -> background verification -> admission [kết nạp]
-> 12 months of probation -> recognition [công nhận đảng viên chính thức], or
drops out on the way with a reason, or stays in the pool with no further event.
Invariants: a candidate's steps are in time order, decisions fall on a working
day between 07:30 and 17:00, nothing is dated after ``cutoff``, and nothing follows
a ``dropped``.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ketnap.generate import clock, params
from ketnap.generate.branches import Branch
from ketnap.generate.commune import Commune
from shared.events import BranchKind, DropReason, ProfileCategory

C = ProfileCategory
_OFFICE_MINUTES = (7 * 60 + 30, 17 * 60)
_OFFICE_SLOTS = (_OFFICE_MINUTES[1] - _OFFICE_MINUTES[0]) // 5
_YEAR_DAYS = 365.25
_PAUSE_FROM = clock.day_index(date(*params.REFORM_PAUSE[0]))
_PAUSE_TO = clock.day_index(date(*params.REFORM_PAUSE[1]))
_REFORM_DAY = clock.day_index(date(2025, 7, 1))


@dataclass(slots=True)
class Step:
    """One candidate event before it gets an id and an envelope (``type`` without ``vn.ketnap.``)."""

    moment: int
    type: str
    data: dict[str, Any]


@dataclass(slots=True)
class Candidate:
    subject: str
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Window:
    """Sourcing runs from ``start``; the feed keeps what matters from ``begin``; nothing after ``cutoff``."""

    start: int
    begin: int
    cutoff: int


def simulate(
    rng: random.Random, commune: Commune, window: Window, subjects: Callable[[], str]
) -> Iterator[Candidate]:
    """The commune's candidates still in play on ``window.begin`` or sourced later, in sourcing order.

    Sourcing starts a year early so that the first year runs at full pace; the
    candidates of that warm-up year who were admitted, or whose story ended,
    before ``begin`` are left out, the others keep their earlier milestones.
    """
    weights = list(itertools.accumulate(b.rate for b in commune.branches))
    first, last = window.start // clock.MINUTES_PER_DAY, window.cutoff // clock.MINUTES_PER_DAY
    for day in _arrivals(rng, commune, first, last):
        branch = commune.branches[bisect.bisect(weights, rng.random() * weights[-1])]
        candidate = _Life(rng, commune, branch, window.cutoff).run("", day)
        if _in_play(candidate, window.begin):
            candidate.subject = subjects()
            yield candidate


def _in_play(candidate: Candidate, begin: int) -> bool:
    if not candidate.steps or candidate.steps[-1].moment < begin:
        return False
    return not any(s.type == "candidate.admitted" and s.moment < begin for s in candidate.steps)


def _arrivals(rng: random.Random, commune: Commune, first: int, last: int) -> Iterator[int]:
    """Days on which a candidate is sourced: exponential gaps, thinned by year and month."""
    peak = max(params.YEAR_FACTOR.values()) * max(params.SOURCING_SEASON)
    per_day = commune.base_rate * commune.performance * peak / params.ADMIT_PROBABILITY / _YEAR_DAYS
    day = float(first)
    while True:
        day += rng.expovariate(per_day)
        if day > last:
            return
        when = clock.day_of(int(day))
        keep = params.YEAR_FACTOR.get(when.year, 1.0) * params.SOURCING_SEASON[when.month - 1] / peak
        if rng.random() < keep:
            yield int(day)


class _Life:
    """One candidate's path; steps past the cutoff are never written."""

    def __init__(self, rng: random.Random, commune: Commune, branch: Branch, cutoff: int) -> None:
        self.rng, self.commune, self.branch, self.cutoff = rng, commune, branch, cutoff

    def run(self, subject: str, day: int) -> Candidate:
        milestones = self._milestones(day)
        moves = self._transfer(milestones)
        candidate = Candidate(subject)
        branch = self.branch.id
        for index, (when, kind, extra) in enumerate(milestones):
            if moves is not None and index == moves[0]:
                if not self._add(candidate, moves[1], "transferred", {"from_branch_id": branch, **moves[2]}):
                    break
                branch = moves[2]["to_branch_id"]
            if not self._add(candidate, when, kind, {"branch_id": branch, **extra}):
                break
        return candidate

    def _add(self, candidate: Candidate, day: int, kind: str, data: dict[str, Any]) -> bool:
        moment = _office_time(self.rng, day)
        if moment > self.cutoff:
            return False
        candidate.steps.append(Step(moment, f"candidate.{kind}", data))
        return True

    def _milestones(self, day: int) -> list[tuple[int, str, dict[str, Any]]]:
        rng, steps = self.rng, [(day, "sourced", {"profile": self._profile(day)})]
        if rng.random() < params.P_DROP_BEFORE_CLASS:
            return [*steps, self._drop(day, "before_class")]
        day += _days(rng, params.DAYS_TO_CLASS)
        steps.append((day, "class_completed", {}))
        if rng.random() < params.P_DROP_AFTER_CLASS:
            return [*steps, self._drop(day, "after_class")]
        if rng.random() < params.P_STALL:
            return steps
        day += _days(rng, params.DAYS_TO_VERIFIED)
        steps.append((day, "dossier_verified", {}))
        if rng.random() < params.P_DROP_AFTER_VERIFIED:
            return [*steps, self._drop(day, "after_verified")]
        day = _after_pause(rng, day + _days(rng, params.DAYS_TO_ADMITTED))
        steps.append((day, "admitted", self._decision(day)))
        return [*steps, self._probation(day)]

    def _drop(self, day: int, stage: str) -> tuple[int, str, dict[str, Any]]:
        reasons, weights = zip(*params.DROP_REASONS[stage], strict=True)
        reason: DropReason = self.rng.choices(reasons, weights)[0]
        return day + _days(self.rng, params.DROP_DAYS[stage]), "dropped", {"reason": reason.value}

    def _probation(self, admitted: int) -> tuple[int, str, dict[str, Any]]:
        rng, roll = self.rng, self.rng.random()
        if roll < params.P_NOT_RECOGNISED:
            return admitted + _days(rng, (365, 400)), "dropped", {"reason": DropReason.NOT_RECOGNISED.value}
        if roll < params.P_NOT_RECOGNISED + params.P_DECEASED_ON_PROBATION:
            return admitted + _days(rng, (90, 360)), "dropped", {"reason": DropReason.DECEASED.value}
        early = rng.random() < params.P_EARLY_CONFIRMATION
        span = params.EARLY_CONFIRMATION_DAYS if early else params.PROBATION_DAYS
        return admitted + _days(rng, span), "confirmed", {}

    def _decision(self, day: int) -> dict[str, Any]:
        """70% of admissions quote the decision [quyết định kết nạp] number."""
        if self.rng.random() >= 0.7:
            return {}
        issuer = "ĐU" if day >= _REFORM_DAY else _district_issuer(self.commune.site.district_name)
        return {"decision_no": f"{self.rng.randint(1, 1999)}-QĐ/{issuer}"}

    def _transfer(
        self, milestones: list[tuple[int, str, dict[str, Any]]]
    ) -> tuple[int, int, dict[str, str]] | None:
        """(index of the first step at the new branch, day of the move, data) or None."""
        before_admission = [i for i, m in enumerate(milestones) if i > 0 and m[1] != "confirmed"]
        if not before_admission or self.rng.random() >= params.P_TRANSFER:
            return None
        index = self.rng.choice(before_admission)
        low, high = milestones[index - 1][0], milestones[index][0]
        if high - low < 4:  # keep two days clear on each side: a Sunday moves back a day
            return None
        target = self.rng.choice([b for b in self.commune.branches if b.id != self.branch.id])
        return index, self.rng.randint(low + 2, high - 2), {"to_branch_id": target.id}

    def _profile(self, day: int) -> dict[str, Any]:
        return profile(self.rng, self.commune, self.branch, clock.day_of(day).year)


def profile(rng: random.Random, commune: Commune, branch: Branch, year: int) -> dict[str, Any]:
    """Birth year, sex and categories; never a name or an ID number."""
    kind = branch.kind
    student = branch.is_high_school and rng.random() < params.P_STUDENT_AT_HIGH_SCHOOL
    age = rng.choice((17, 18)) if student else round(_triangular(rng, params.AGE_AT_SOURCING[kind]))
    female = rng.random() < params.P_FEMALE[kind]
    if kind == BranchKind.RESIDENTIAL and age <= 22 and rng.random() < params.P_UNIVERSITY_STUDENT:
        student = True
    categories = [C.STUDENT.value] if student else []
    categories += _work_categories(rng, kind, age, student)
    categories += _community_categories(rng, commune, kind)
    if not female and 21 <= age <= 30 and rng.random() < params.P_DEMOBILIZED.get(kind, 0.0):
        categories.append(C.DEMOBILIZED_SOLDIER.value)
    if age <= 30 and rng.random() < params.P_YOUTH_UNION_UP_TO_30:
        categories.append(C.YOUTH_UNION.value)
    return {"birth_year": year - age, "sex": "female" if female else "male", "categories": categories}


def _work_categories(rng: random.Random, kind: BranchKind, age: int, student: bool) -> list[str]:
    out = []
    if not student and rng.random() < params.P_PRIVATE_SECTOR.get(kind, 0.0):
        out.append(C.PRIVATE_SECTOR.value)
    if age >= 25 and rng.random() < params.P_BUSINESS_OWNER.get(kind, 0.0):
        out.append(C.BUSINESS_OWNER.value)
    return out


def _community_categories(rng: random.Random, commune: Commune, kind: BranchKind) -> list[str]:
    out = []
    uniformed = kind in (BranchKind.POLICE, BranchKind.MILITARY, BranchKind.AGENCY)
    if rng.random() < commune.ethnic_share * (0.8 if uniformed else 1.0):
        out.append(C.ETHNIC_MINORITY.value)
    if rng.random() < commune.religious_share:
        out.append(C.RELIGIOUS.value)
    return out


def _triangular(rng: random.Random, low_high_mode: tuple[int, int, int]) -> float:
    low, high, mode = low_high_mode
    return rng.triangular(low, high, mode)


def _days(rng: random.Random, low_high: tuple[int, int]) -> int:
    """Uniform in [low, high]; ``random()`` is several times cheaper than ``randint``."""
    low, high = low_high
    return low + int(rng.random() * (high - low + 1))


def _after_pause(rng: random.Random, day: int) -> int:
    """Admissions due while the new communes' committees were being formed wait a few weeks."""
    if _PAUSE_FROM <= day <= _PAUSE_TO:
        return day + _days(rng, params.REFORM_PAUSE[2])
    return day


def _office_time(rng: random.Random, day: int) -> int:
    """A working moment on ``day`` (a Sunday moves to the Saturday before; steps are >= 4 days apart)."""
    if clock.weekday(day) == 6:
        day -= 1
    minute = _OFFICE_MINUTES[0] + 5 * int(rng.random() * _OFFICE_SLOTS)
    return day * clock.MINUTES_PER_DAY + minute


def _district_issuer(district_name: str) -> str:
    """Who signed a pre-2025 admission: Huyện ủy (HU), Quận ủy (QU), Thị ủy or Thành ủy (TU)."""
    if district_name.startswith("Quận"):
        return "QU"
    if district_name.startswith(("Thị xã", "Thành phố")):
        return "TU"
    return "HU"
