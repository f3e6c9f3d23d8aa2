"""Wire schemas of what the services publish for others (CONTRACT.md section 4)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events import Category, Identifier, Metric, TreeName


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TallyChange(_Out):
    """One change of a (branch, local date, metric, category) count, on ``ketnap.tally-changes``.

    ``value`` is the new absolute count and ``version`` rises by one per change of
    the key, so a consumer may apply ``delta`` or keep the latest ``value`` and drop
    stale or repeated versions. ``source_event_id`` names the event that caused it.
    """

    branch_id: Identifier
    date: date
    metric: Metric
    category: Category
    delta: int
    value: Annotated[int, Field(ge=0)]
    version: Annotated[int, Field(ge=1)]
    source_event_id: str


class Rejection(_Out):
    """An event a service refused, on ``ketnap.rejected`` (key: the event id)."""

    event: dict[str, Any] | str
    code: str = Field(
        description=(
            "Stable code. quota: invalid_schema, unknown_type, unknown_unit, id_conflict, "
            "duplicate_milestone, candidate_dropped, invalid_transition, unknown_candidate, "
            "out_of_scope (a candidate.voided carrying voidscope whose voided event lies outside "
            "those provinces: that event keeps counting), processing_error; reporting: "
            "invalid_schema, unknown_unit."
        )
    )
    detail: str
    service: str
    rejected_at: datetime


class RollupUnit(_Out):
    id: str
    name: str
    level: str


class RollupDocument(_Out):
    """One unit's month, every metric and category, on the compacted ``ketnap.rollups``.

    Key ``tree|unit_id|YYYY-MM``; ``version`` only rises for a key; any calendar
    period is a sum of months.
    """

    tree: TreeName
    unit: RollupUnit
    month: Annotated[str, Field(pattern=r"^\d{4}-\d{2}$")]
    metrics: dict[str, dict[str, int]]
    unmapped: dict[str, dict[str, int]]
    version: Annotated[int, Field(ge=1)]
    as_of: datetime


def rollup_key(tree: str, unit_id: str, month: str) -> str:
    return f"{tree}|{unit_id}|{month}"


__all__ = ["Category", "Metric", "Rejection", "RollupDocument", "RollupUnit", "TallyChange", "rollup_key"]
