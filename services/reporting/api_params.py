"""What the reporting API accepts, as OpenAPI parameter objects (CONTRACT §3 Reporting).

The routes read their query parameters as plain strings and refuse bad ones with the
contract's own codes (``invalid_period``, ``invalid_tree``, ...); these objects tell
clients and fuzzers exactly which values those checks let through, so a request the
document calls valid is never refused with 400.

A period is a ``pattern`` (every form the contract names, real calendar days, years
2000..2100, both ends of a range of the same form) plus ``format: ketnap-period``
for the one rule a regular expression cannot say: a range does not end before it
starts.
"""

from __future__ import annotations

from typing import Any, Final

from services.reporting.domain.orgview import TREE_VERSIONS
from services.reporting.domain.periods import MAX_YEAR, MIN_YEAR
from services.reporting.reads import MAX_LAGGING_YEARS
from shared.events import TALLY_CATEGORIES, TALLY_METRICS

PERIOD_FORMAT: Final = "ketnap-period"
UNIT_ID_PATTERN: Final = r"^(?:VN|P[0-9]{2}|D[0-9]{3}|C[0-9]{5})$"

_YEAR = "(?:20[0-9]{2}|2100)"
_LEAP_YEAR = "20(?:[02468][048]|[13579][26])"  # 2000..2096; 2100 is not a leap year
_DAY_OF_YEAR = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_FORMS = (
    _YEAR,
    f"{_YEAR}-[Hh][12]",
    f"{_YEAR}-[Qq][1-4]",
    f"{_YEAR}-(?:0[1-9]|1[0-2])",
    f"(?:{_YEAR}-{_DAY_OF_YEAR}|{_LEAP_YEAR}-02-29)",
)
PERIOD_PATTERN: Final = "^(?:" + "|".join(f"{form}(?:\\.\\.{form})?" for form in _FORMS) + ")$"
PERIOD_EXAMPLES: Final = {
    "year": "2024",
    "half": "2024-H1",
    "quarter": "2024-Q2",
    "month": "2024-05",
    "day": "2024-05-15",
    "day range": "2024-01-01..2024-05-15",
    "party term": "2020..2025",
}
assert (MIN_YEAR, MAX_YEAR) == (2000, 2100), "PERIOD_PATTERN spells these years out"


def _query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _examples(named: dict[str, str]) -> dict[str, dict[str, str]]:
    return {label: {"value": value} for label, value in named.items()}


PERIOD: Final = {
    **_query(
        "period",
        {"type": "string", "pattern": PERIOD_PATTERN, "format": PERIOD_FORMAT, "example": "2024"},
        f"2024, 2024-H1, 2024-Q2, 2024-05, 2024-05-15, or a range A..B of two of the same form "
        f"(2024-01-01..2024-05-15, a party term 2020..2025) that does not end before it starts; "
        f"years {MIN_YEAR}..{MAX_YEAR}. Otherwise 400 invalid_period.",
        required=True,
    ),
    "examples": _examples(PERIOD_EXAMPLES),
}
TREE: Final = _query(
    "tree",
    {"type": "string", "enum": list(TREE_VERSIONS)},
    "legacy or 2025; default: the tree in force on the period's last day. Otherwise 400 invalid_tree.",
)
METRIC: Final = _query(
    "metric",
    {"type": "string", "enum": list(TALLY_METRICS), "default": "admitted"},
    "The counted milestone or movement. Otherwise 400 invalid_metric.",
)
CATEGORY: Final = _query(
    "category",
    {"type": "string", "enum": list(TALLY_CATEGORIES), "default": "all"},
    "all, female or a profile category. Otherwise 400 invalid_category.",
)
UNIT_ID: Final = _query(
    "unit_id",
    {"type": "string", "pattern": UNIT_ID_PATTERN, "example": "P10"},
    "VN, a province (P10), district (D080) or commune (C02680) id. Unknown: 404 unknown_unit.",
    required=True,
)
YEARS: Final = _query(
    "years",
    {"type": "integer", "minimum": 1, "maximum": MAX_LAGGING_YEARS, "default": 3},
    f"How many full years back (1..{MAX_LAGGING_YEARS}). Otherwise 400 invalid_years.",
)
FORMAT: Final = _query(
    "format",
    {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"},
    "csv or xlsx. Otherwise 400 invalid_format.",
)
UNIT_PATH_SCHEMA: Final = {"pattern": UNIT_ID_PATTERN, "examples": ["C06901", "D200", "P22", "VN"]}

ROLLUP_PARAMETERS: Final = [PERIOD, TREE, METRIC, CATEGORY]
LAGGING_PARAMETERS: Final = [UNIT_ID, YEARS, TREE]
EXPORT_PARAMETERS: Final = [UNIT_ID, PERIOD, FORMAT, TREE, METRIC, CATEGORY]
