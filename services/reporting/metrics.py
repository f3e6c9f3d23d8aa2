"""The reporting service's own Prometheus metrics (the consumer's lag and batch metrics are shared)."""

from __future__ import annotations

from typing import Final

from shared.metrics import counter, gauge, histogram

CHANGES_APPLIED: Final = counter(
    "ketnap_reporting_changes_applied_total", "Tally changes that moved a stored count (new version)."
)
CHANGES_SKIPPED: Final = counter(
    "ketnap_reporting_changes_skipped_total",
    "Tally changes that changed nothing: repeated or stale version, or invalid.",
    ("reason",),
)
BRANCHES_MOVED: Final = counter(
    "ketnap_reporting_branches_moved_total", "Branches whose counts moved to a new place on registration."
)
QUERY_SECONDS: Final = histogram(
    "ketnap_rollup_query_seconds", "Time to answer one rollup, lagging or export query.", ("endpoint",)
)
ROLLUPS_PUBLISHED: Final = counter(
    "ketnap_rollups_published_total", "Rollup documents written to the ketnap.rollups outbox."
)
DIRTY_BACKLOG: Final = gauge(
    "ketnap_rollups_dirty", "Changed (tree, anchor, month) marks waiting for the rollups publisher."
)
FEED_LEADER: Final = gauge(
    "ketnap_rollups_feed_leader",
    "1 on the replica that builds the rollup documents (one per consumer group on PostgreSQL), else 0.",
)
INVARIANT_VIOLATIONS: Final = counter(
    "ketnap_invariant_violations_total",
    "Sampled (unit, period) where value != sum(children) + unmapped (should stay 0).",
)
INVARIANT_CHECKS: Final = counter(
    "ketnap_invariant_checks_total", "Sampled (unit, period) checks of the sum invariant."
)
ATTAINMENT: Final = gauge(
    "ketnap_attainment_ratio",
    "Admitted this year to date / the year's target (1.0 = 100%), national and provinces.",
    ("tree", "unit_id", "kind"),
)
