"""The mess real provinces send, in measured doses.

- late batches: a commune's events of a whole quarter sent 2-7 months late;
- out of order: a few events sent up to 45 days early or late;
- resubmissions: 1% of events sent again, same id and same content (``duplicate``);
- corrections: an admission entered with the wrong date or branch, voided
  [hủy do nhập sai], then entered right;
- invalid events, one of each kind the intake rejects at the door: bad schema
  (a personal name, a time with no offset, an unknown category), unknown type,
  unknown branch, another province's branch (``out_of_scope``), a year typed
  ten years ahead (``future_time``: the one exception to "never after now") and
  an id reused for other content (``id_conflict``).
Every builder here is pure: it takes the rng and returns new event dicts.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, Final

from ketnap.generate import clock
from ketnap.generate.wire import envelope

DAY: Final = clock.MINUTES_PER_DAY


@dataclass(frozen=True, slots=True)
class MessRates:
    """Probabilities per event (``late_quarter``: per commune and quarter)."""

    late_quarter: float = 0.04
    out_of_order: float = 0.03
    resubmission: float = 0.01
    correction: float = 0.005  # of admissions
    invalid: float = 0.002


CLEAN: Final = MessRates(0.0, 0.0, 0.0, 0.0, 0.0)
CANDIDATE_ERRORS: Final = (
    "invalid_schema",
    "unknown_type",
    "unknown_branch",
    "out_of_scope",
    "future_time",
    "id_conflict",
)
REFERENCE_ERRORS: Final = ("invalid_schema", "unknown_type", "unknown_unit")
VOID_REASONS: Final = {
    "date": "Nhập sai ngày quyết định kết nạp",
    "branch": "Nhập nhầm chi bộ",
}


def late_shift(rng: random.Random, rates: MessRates) -> int:
    """Minutes a quarter's batch is held back (0 for most quarters)."""
    return rng.randint(60, 200) * DAY if rng.random() < rates.late_quarter else 0


def displacement(rng: random.Random, rates: MessRates) -> int:
    """Minutes an event is sent early (negative) or late, usually 0."""
    if rng.random() >= rates.out_of_order:
        return 0
    return rng.choice((-1, 1)) * rng.randint(1, 45) * DAY


def resubmission_delay(rng: random.Random, rates: MessRates) -> int | None:
    """Minutes after which the same event is sent again, or None."""
    return rng.randint(1, 30) * DAY if rng.random() < rates.resubmission else None


def correction(
    rng: random.Random, original: dict[str, Any], moment: int, ids: tuple[str, str], other_branch: str
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The erroneous admission, its void and the void's moment (the original is re-sent after them)."""
    wrong = copy.deepcopy(original)
    wrong["id"] = ids[0]
    if rng.random() < 0.5:
        what, err_moment = "date", clock.off_sunday(moment + rng.randint(1, 40) * DAY)
        wrong["time"] = clock.iso(err_moment)
    else:
        what, err_moment = "branch", moment
        wrong["data"]["branch_id"] = other_branch
    void_moment = clock.off_sunday(err_moment + rng.randint(2, 20) * DAY)
    data = {"voids": ids[0], "reason": VOID_REASONS[what]}
    void = envelope(ids[1], original["source"], "candidate.voided", void_moment, data, original["subject"])
    return wrong, void, void_moment


def invalid_schema(rng: random.Random, template: dict[str, Any], event_id: str) -> dict[str, Any]:
    """A copy that breaks the schema in one of three ways provinces do."""
    bad = copy.deepcopy(template)
    bad["id"] = event_id
    flavour = rng.randrange(3)
    if flavour == 0:
        bad["time"] = bad["time"].removesuffix("+07:00")  # local time with no offset
    elif flavour == 1 or "profile" not in bad["data"]:
        bad["data"]["full_name"] = "Nguyễn Thị Minh"  # personal data never belongs in an event
    else:
        bad["data"]["profile"]["categories"] = ["farmer"]
    return bad


def unknown_type(template: dict[str, Any], event_id: str) -> dict[str, Any]:
    bad = copy.deepcopy(template)
    bad["id"] = event_id
    bad["type"] = "vn.ketnap.candidate.interviewed"
    return bad


def sourced_at(source: str, moment: int, event_id: str, subject: str, branch_id: str) -> dict[str, Any]:
    """A fresh candidate sourced at ``branch_id`` (unregistered, or another province's)."""
    data = {"branch_id": branch_id, "profile": {"birth_year": 1999, "sex": "male", "categories": []}}
    return envelope(event_id, source, "candidate.sourced", moment, data, subject)


def future_time(template: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The year typed ten years ahead (2024 -> 2034)."""
    bad = copy.deepcopy(template)
    bad["id"] = event_id
    bad["time"] = f"{int(bad['time'][:4]) + 10}{bad['time'][4:]}"
    return bad


def id_conflict(rng: random.Random, admitted: dict[str, Any]) -> dict[str, Any]:
    """The same admission id sent again with another decision number."""
    bad = copy.deepcopy(admitted)
    issuer = str(bad["data"].get("decision_no", "QĐ/HU")).rsplit("/", 1)[-1]
    bad["data"]["decision_no"] = f"{rng.randint(2000, 2999)}-QĐ/{issuer}"
    return bad


def bad_target(template: dict[str, Any], event_id: str, district_id: str) -> dict[str, Any]:
    """A target for a former district in the 2025 tree (which has no districts): ``unknown_unit``."""
    bad = copy.deepcopy(template)
    bad["id"] = event_id
    bad["data"].update({"unit_id": district_id, "tree": "2025", "kind": "assigned"})
    bad["data"]["year"] = max(bad["data"]["year"], 2025)
    return bad


def bad_reference(template: dict[str, Any], event_id: str, code: str) -> dict[str, Any]:
    """A branch registration or target with a schema error, or an unknown type."""
    bad = copy.deepcopy(template)
    bad["id"] = event_id
    if code == "unknown_type":
        bad["type"] = "vn.ketnap.org.branch_renamed"
    elif "parents" in bad["data"]:
        bad["data"]["parents"] = {}
    else:
        bad["data"]["value"] = str(bad["data"]["value"])  # a number typed as text in a spreadsheet
    return bad
