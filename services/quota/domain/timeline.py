"""Timeline remarks [nhận xét về trình tự]: flags on counted milestones, probation dates.

- `inconsistent_timeline`: a milestone whose predecessor is not reached (skipped), or is
  dated after it (out of order). Both still count.
- `probation_too_short`: `confirmed` on a local date before `probation_due(admitted)`,
  the same calendar day 12 months later (29 February -> 28 February).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from itertools import pairwise

from services.quota.domain.records import Flag, Milestone
from services.quota.domain.vocabulary import MILESTONES, EventType, FlagCode
from shared.orgtree.dates import local_date


def probation_due(admitted: datetime) -> date:
    """The local date the 12-month probation [thời gian dự bị] ends (29 Feb -> 28 Feb)."""
    day = local_date(admitted)
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def timeline_flags(reached: Mapping[EventType, Milestone]) -> list[Flag]:
    """The flags a candidate's reached milestones deserve, by the rules above."""
    flags = []
    for before, after in pairwise(MILESTONES):
        later, earlier = reached.get(after), reached.get(before)
        if later and not earlier:
            flags.append(Flag(FlagCode.INCONSISTENT_TIMELINE, later.event_id, f"{after} without {before}"))
        elif later and earlier and later.time < earlier.time:
            flags.append(
                Flag(FlagCode.INCONSISTENT_TIMELINE, later.event_id, f"{after} dated before {before}")
            )
    admitted, confirmed = reached.get(EventType.ADMITTED), reached.get(EventType.CONFIRMED)
    if admitted and confirmed and local_date(confirmed.time) < probation_due(admitted.time):
        detail = f"confirmed before the probation ends on {probation_due(admitted.time).isoformat()}"
        flags.append(Flag(FlagCode.PROBATION_TOO_SHORT, confirmed.event_id, detail))
    return flags
