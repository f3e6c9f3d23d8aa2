"""The feed looks like the real one: shares, volumes, targets near achievement, and the mess in measure.

Tolerances are wide enough for a 1% sample (about 100 communes) and narrow
enough to catch a parameter off by a factor of two.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import pytest

from ketnap.generate import DUPLICATE, NATIONAL, Emitted, GeneratorConfig, make_plan
from ketnap.generate.commune import describe
from ketnap.generate.mess import CANDIDATE_ERRORS, REFERENCE_ERRORS
from ketnap.generate.pipeline import Window, simulate
from ketnap.generate.plan import candidate_units
from ketnap.generate.seeding import rng_for
from shared.orgtree import OrgTrees
from tests.unit.generate.conftest import NOW

pytestmark = pytest.mark.unit

FULL_YEARS = range(2021, 2026)


def short(item: Emitted) -> str:
    return item.type.removeprefix("vn.ketnap.")


def of_type(items: list[Emitted], kind: str) -> list[Emitted]:
    return [item for item in items if short(item) == kind]


def admitted_profiles(counted: list[Emitted]) -> list[dict[str, Any]]:
    profiles = {i.event["subject"]: i.event["data"]["profile"] for i in of_type(counted, "candidate.sourced")}
    return [profiles[i.event["subject"]] for i in of_type(counted, "candidate.admitted")]


def test_branch_kinds_come_in_realistic_shares(counted: list[Emitted]) -> None:
    kinds = Counter(str(i.event["data"]["kind"]) for i in of_type(counted, "org.branch_registered"))
    total = sum(kinds.values())
    share = {kind: n / total for kind, n in kinds.items()}
    bands = {
        "residential": (0.58, 0.74),
        "agency": (0.06, 0.14),
        "school": (0.05, 0.12),
        "enterprise": (0.03, 0.10),
        "police": (0.03, 0.08),
        "military": (0.01, 0.05),
        "other": (0.005, 0.04),
    }
    for kind, (low, high) in bands.items():
        assert low <= share[kind] <= high, (kind, share[kind])


def test_admitted_candidates_come_in_realistic_categories(counted: list[Emitted]) -> None:
    profiles = admitted_profiles(counted)
    n = len(profiles)
    assert n > 5000
    female = sum(p["sex"] == "female" for p in profiles) / n
    categories = Counter(c for p in profiles for c in p["categories"])
    share = {c: categories[c] / n for c in categories}
    assert 0.38 <= female <= 0.52
    bands = {
        "youth_union": (0.6, 0.85),
        "ethnic_minority": (0.05, 0.35),
        "student": (0.02, 0.12),
        "private_sector": (0.05, 0.18),
        "demobilized_soldier": (0.02, 0.10),
        "religious": (0.005, 0.06),
        "business_owner": (0.0005, 0.02),
    }
    for category, (low, high) in bands.items():
        assert low <= share.get(category, 0.0) <= high, (category, share.get(category))


def test_drop_outs_have_every_reason_mostly_moving_away_or_ineligible(counted: list[Emitted]) -> None:
    reasons = Counter(str(i.event["data"]["reason"]) for i in of_type(counted, "candidate.dropped"))
    assert set(reasons) == {"moved_away", "ineligible", "declined", "not_recognised", "deceased", "other"}
    assert {r for r, _ in reasons.most_common(2)} == {"moved_away", "ineligible"}


def test_two_or_three_are_sourced_for_each_admission(counted: list[Emitted]) -> None:
    sourced = len(of_type(counted, "candidate.sourced"))
    admitted = len(of_type(counted, "candidate.admitted"))
    assert 1.7 <= sourced / admitted <= 3.0


def admissions_by_commune_year(counted: list[Emitted]) -> dict[tuple[str, int], int]:
    per: dict[tuple[str, int], int] = defaultdict(int)
    for item in of_type(counted, "candidate.admitted"):
        commune = str(item.event["data"]["branch_id"]).split("-")[1]
        per[(commune, int(str(item.event["time"])[:4]))] += 1
    return per


def test_a_commune_admits_a_sane_number_a_year(counted: list[Emitted], config: GeneratorConfig) -> None:
    per = admissions_by_commune_year(counted)
    sites = len(make_plan_for(config))
    for year in FULL_YEARS:
        values = [per.get((c, year), 0) for c in {c for c, _ in per}]
        assert all(0 <= v <= 100 for v in values)
        assert 13 <= statistics.mean(values) <= 28, year
        assert 10 <= statistics.median(values) <= 24, year
    assert sites == len({c for c, _ in per})


def make_plan_for(config: GeneratorConfig) -> list[str]:
    from shared.orgtree import load_org_trees

    return [s.legacy_id for s in make_plan(load_org_trees(), config.seed, config.scale).sites()]


def test_national_volume_is_near_the_real_one(trees: OrgTrees) -> None:
    """A 10% sample of 2023 scaled up: ~200,000 admissions a year (56,370 in 2021-H1 alone)."""
    config = GeneratorConfig(now=NOW, seed=11, scale=0.1, first_year=2023, last_year=2023)
    plan = make_plan(trees, config.seed, config.scale)
    window = Window(config.start, config.begin, config.cutoff)
    admitted = 0
    for site in plan.sites():
        rng = rng_for(config.seed, "candidates", site.legacy_id)
        for candidate in simulate(rng, describe(config.seed, site), window, lambda: "x"):
            steps = candidate.steps
            admitted += sum(s.type == "candidate.admitted" and s.moment >= config.begin for s in steps)
    national = admitted * len(candidate_units(trees)) / len(plan)
    assert 180_000 <= national <= 225_000


def test_every_unit_has_targets_in_its_own_tree_and_years(
    feed: list[Emitted], config: GeneratorConfig
) -> None:
    targets = {
        (d["unit_id"], d["tree"], d["year"], d["kind"])
        for i in of_type(feed, "target.set")
        if i.counts and (d := i.event["data"]).get("category", "all") == "all"
    }
    from shared.orgtree import load_org_trees

    for site in make_plan(load_org_trees(), config.seed, config.scale).sites():
        for kind in ("resolution", "assigned"):
            for year in range(2020, 2026):
                assert (site.legacy_id, "legacy", year, kind) in targets
                assert (site.province_id, "legacy", year, kind) in targets
            for year in (2025, 2026):
                assert (site.new_id, "2025", year, kind) in targets
                assert (site.new_province_id, "2025", year, kind) in targets
    for year in range(2020, 2027):
        tree = "legacy" if year < 2025 else "2025"
        assert ("VN", tree, year, "resolution") in targets


def test_targets_are_near_what_is_achieved_so_some_pass_and_some_lag(counted: list[Emitted]) -> None:
    assigned = {}
    for item in of_type(counted, "target.set"):
        d = item.event["data"]
        if d["tree"] == "legacy" and d["kind"] == "assigned" and d["unit_id"].startswith("C"):
            assigned[(d["unit_id"], d["year"])] = d["value"]
    per = admissions_by_commune_year(counted)
    ratios = [per.get(key, 0) / value for key, value in assigned.items() if key[1] in FULL_YEARS and value]
    passing = sum(r >= 1 for r in ratios) / len(ratios)
    assert 0.3 <= passing <= 0.8
    assert 0.85 <= statistics.median(ratios) <= 1.25


def test_national_targets_come_from_the_nation(feed: list[Emitted]) -> None:
    national = [i for i in of_type(feed, "target.set") if i.event["data"]["unit_id"] == "VN"]
    assert national
    assert all(i.sender == NATIONAL for i in national)


def test_resubmissions_are_about_one_percent(feed: list[Emitted]) -> None:
    duplicates = sum(i.expect == DUPLICATE for i in feed)
    assert 0.007 <= duplicates / len(feed) <= 0.014


def test_every_kind_of_invalid_event_is_there_in_a_small_share(feed: list[Emitted]) -> None:
    codes = Counter(i.expect for i in feed if i.expect not in ("accepted", DUPLICATE))
    assert set(codes) == set(CANDIDATE_ERRORS) | set(REFERENCE_ERRORS)
    assert 0.001 <= sum(codes.values()) / len(feed) <= 0.006


def test_corrections_void_an_error_then_send_the_right_event(feed: list[Emitted]) -> None:
    position = {id(i.event): n for n, i in enumerate(feed)}
    by_id = {i.event["id"]: i for i in feed if i.expect != DUPLICATE}
    voids = [i for i in of_type(feed, "candidate.voided") if i.expect == "accepted"]
    assert len(voids) >= 5
    for void in voids:
        wrong = by_id[void.event["data"]["voids"]]
        assert not wrong.counts
        assert short(wrong) == "candidate.admitted"
        assert wrong.event["subject"] == void.event["subject"]
        assert position[id(wrong.event)] < position[id(void.event)]
        right = feed[position[id(void.event)] + 1]
        assert right.counts
        assert short(right) == "candidate.admitted"
        assert right.event["subject"] == void.event["subject"]


def test_some_events_arrive_late_and_out_of_order(counted: list[Emitted]) -> None:
    """Within a commune, events are sent in time order but for the mess."""
    latest: dict[str, datetime] = {}
    late = backwards = total = 0
    for item in counted:
        data = item.event["data"]
        if not short(item).startswith("candidate.") or "branch_id" not in data:
            continue
        commune = str(data["branch_id"]).split("-")[1]
        when = datetime.fromisoformat(str(item.event["time"]))
        before = latest.get(commune)
        if before is not None and when < before:
            backwards += 1
            late += (before - when).days >= 60
        latest[commune] = max(when, before or when)
        total += 1
    assert 0.01 <= backwards / total <= 0.2
    assert late > 50
