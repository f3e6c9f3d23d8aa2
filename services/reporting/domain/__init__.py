"""The reporting service's pure core: periods, placement of branches, rollups, targets.

No I/O, no clock, no logging. Modules:
- `periods`: `parse_period(text) -> Period` (`PeriodError`, code `invalid_period`),
  `Period.years()/months()/is_whole_years()/default_tree()/spans()`.
- `attribution`: `attributed_tree(day)`, `report_tree(period, asked)`,
  `target_tree(year, tree)`, `BranchRegistration`, `place_branch(...) -> Placement`
  (the unmapped rule), `lagging_years(today, n)`, `lagging(...)`.
- `rollup`: `rollup(tree, placements, counts, active) -> RollupTable` (the reference
  arithmetic), `UnitRollup`, `Child`, `Reporting`, `UnknownUnitError`.
- `index`: `RollupIndex` (incremental, both trees, idempotent by version),
  `TallyChange`, `MonthTotals`; its docstring gives the recommended storage shape.
- `targets`: `Target`, `TargetBook` (latest time wins, sums over years),
  `attainment_pct(value, target)`, `Attainment`.
- `orgview`: the Protocols an org tree must meet (`TreeView`, `TreesView`, `CrossWalk`).
- `crosswalk`: `OrgTreesCrossWalk`, the `CrossWalk` of the official trees.

Invariant everywhere: for any unit, period, metric and category,
`value == Σ children values + unmapped`, and `VN` holds every count.
"""

from services.reporting.domain.attribution import (
    BranchRegistration,
    LaggingBranch,
    Placement,
    attributed_tree,
    lagging,
    lagging_years,
    place_branch,
    report_tree,
    target_tree,
)
from services.reporting.domain.crosswalk import OrgTreesCrossWalk
from services.reporting.domain.index import MonthTotals, RollupIndex, TallyChange
from services.reporting.domain.periods import Period, PeriodError, parse_period
from services.reporting.domain.rollup import (
    Child,
    Reporting,
    RollupTable,
    UnitRollup,
    UnknownUnitError,
    rollup,
)
from services.reporting.domain.targets import Attainment, Target, TargetBook, attainment_pct

__all__ = [
    "Attainment",
    "BranchRegistration",
    "Child",
    "LaggingBranch",
    "MonthTotals",
    "OrgTreesCrossWalk",
    "Period",
    "PeriodError",
    "Placement",
    "Reporting",
    "RollupIndex",
    "RollupTable",
    "TallyChange",
    "Target",
    "TargetBook",
    "UnitRollup",
    "UnknownUnitError",
    "attainment_pct",
    "attributed_tree",
    "lagging",
    "lagging_years",
    "parse_period",
    "place_branch",
    "report_tree",
    "rollup",
    "target_tree",
]
