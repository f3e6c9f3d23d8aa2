"""A (metric, category) pair as one small integer, the ``series`` column of the reporting tables.

``series = 100 * metric index + category index`` over ``shared.events.TALLY_METRICS``
and ``TALLY_CATEGORIES``: stable as long as those tuples only grow at the end (they
are part of the wire contract), readable in SQL (``301`` = ``admitted``/``female``).
"""

from __future__ import annotations

from typing import Final

from shared.events import TALLY_CATEGORIES, TALLY_METRICS

_STRIDE: Final = 100
SERIES: Final[dict[tuple[str, str], int]] = {
    (metric, category): _STRIDE * m + c
    for m, metric in enumerate(TALLY_METRICS)
    for c, category in enumerate(TALLY_CATEGORIES)
}
NAMES: Final[dict[int, tuple[str, str]]] = {number: pair for pair, number in SERIES.items()}
ADMITTED_ALL: Final = SERIES[("admitted", "all")]


def series_of(metric: str, category: str) -> int | None:
    """The series number, None for a metric or category the contract does not know."""
    return SERIES.get((metric, category))
