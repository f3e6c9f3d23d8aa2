"""The metrics ketnap exposes, and a scan of PromQL expressions against them.

Dashboards and alert rules may name only metrics listed here, with only their own
labels plus the ones Prometheus adds per target (``job``, ``instance``, ``service``),
so a typo in a panel or a rule fails ``make lint-deploy`` instead of drawing nothing.
The list is the services' metric contract; ``tests/unit/test_deploy_static.py`` checks
it against what ``shared.metrics`` declares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Metric:
    kind: Kind
    labels: frozenset[str] = field(default_factory=frozenset)


def _m(kind: Kind, *labels: str) -> Metric:
    return Metric(kind, frozenset(labels))


METRICS: Final[dict[str, Metric]] = {
    "ketnap_intake_events_total": _m("counter", "type", "status", "province"),
    "ketnap_intake_rejections_total": _m("counter", "code"),
    "ketnap_intake_request_seconds": _m("histogram"),
    "ketnap_intake_publish_seconds": _m("histogram"),
    "ketnap_intake_batch_size": _m("histogram"),
    "ketnap_events_processed_total": _m("counter", "service", "type", "outcome"),
    "ketnap_rejections_total": _m("counter", "service", "code"),
    "ketnap_consumer_lag": _m("gauge", "service", "topic", "partition"),
    "ketnap_batch_seconds": _m("histogram", "service"),
    "ketnap_outbox_backlog": _m("gauge", "service"),
    "ketnap_held_events": _m("gauge"),
    "ketnap_quota_state_cache_lookups_total": _m("counter", "result"),
    "ketnap_freshness_seconds": _m("histogram", "service"),
    "ketnap_redeliveries_total": _m("counter", "service"),
    "ketnap_reporting_changes_applied_total": _m("counter"),
    "ketnap_reporting_changes_skipped_total": _m("counter", "reason"),
    "ketnap_rollup_query_seconds": _m("histogram"),
    "ketnap_rollups_published_total": _m("counter"),
    "ketnap_rollups_dirty": _m("gauge"),
    "ketnap_rollups_feed_leader": _m("gauge"),
    "ketnap_invariant_violations_total": _m("counter"),
    "ketnap_attainment_ratio": _m("gauge", "tree", "unit_id", "kind"),
    "up": _m("gauge"),
    "probe_success": _m("gauge"),  # blackbox exporter, job ketnap-readiness
}
TARGET_LABELS: Final = frozenset({"job", "instance", "service", "__name__"})
_HISTOGRAM_SERIES: Final = ("_bucket", "_sum", "_count")

_KEYWORDS: Final = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
    | {"offset", "inf", "nan"}
)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_NOISE = re.compile(r"\[[^\]]*\]|\$\{?\w+\}?|\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[smhdwy]?\b")
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")


@dataclass(frozen=True, slots=True)
class Usage:
    """What one expression uses: metric names, matcher labels per metric, grouping labels."""

    metrics: frozenset[str]
    matchers: tuple[tuple[str | None, str], ...]
    grouping: frozenset[str]


def scan(expr: str) -> Usage:
    """Names in a PromQL expression; a scan, not a parser (promtool parses rules)."""
    grouping = {lbl.strip() for g in _GROUPING.findall(expr) for lbl in g.split(",") if lbl.strip()}
    rest = _GROUPING.sub(" ", expr)
    matchers: list[tuple[str | None, str]] = []
    for metric, body in _SELECTOR.findall(rest):
        labels = _MATCHER_LABEL.findall(_STRING.sub('""', body))
        matchers.extend((metric or None, label) for label in labels)
    rest = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", rest)
    rest = _NOISE.sub(" ", _STRING.sub(" ", rest))
    metrics = {
        m.group(0)
        for m in _IDENT.finditer(rest)
        if m.group(0) not in _KEYWORDS and not rest[m.end() :].lstrip().startswith("(")
    }
    return Usage(frozenset(metrics), tuple(matchers), frozenset(grouping))


def allowed_labels(series: str) -> frozenset[str] | None:
    """Labels a series may carry, or None when the series is not a known metric."""
    if series in METRICS:
        return METRICS[series].labels | TARGET_LABELS
    for suffix in _HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and base in METRICS and METRICS[base].kind == "histogram":
            extra = {"le"} if suffix == "_bucket" else set()
            return METRICS[base].labels | TARGET_LABELS | extra
    return None


def expression_problems(expr: str) -> list[str]:
    """Unknown metrics and labels in ``expr``; empty when it only uses the catalogue."""
    usage = scan(expr)
    if not usage.metrics:
        return [f"names no metric: {expr!r}"]
    problems = [f"unknown metric {name!r}" for name in sorted(usage.metrics) if allowed_labels(name) is None]
    known = [allowed_labels(name) or frozenset() for name in usage.metrics]
    every_label = frozenset().union(*known)
    for metric, label in usage.matchers:
        labels = allowed_labels(metric) if metric else every_label
        if labels is not None and label not in labels:
            problems.append(f"label {label!r} is not a label of {metric or 'any metric used'}")
    problems += [f"groups by unknown label {lbl!r}" for lbl in sorted(usage.grouping - every_label)]
    return problems
