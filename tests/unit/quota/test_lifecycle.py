"""Every lifecycle rule and rejection code of CONTRACT.md section 2, one behaviour per test."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.quota.domain import (
    DEFAULT_PARK_TTL,
    CandidateEvent,
    EventType,
    FlagCode,
    Profile,
    RejectionCode,
    Status,
    TallyDelta,
    TallyKey,
    apply,
    expire_held,
    probation_due,
)
from shared.scope import UNPLACED
from tests.unit.quota.factory import (
    MALE,
    codes,
    day,
    decided,
    ev,
    flag_codes,
    metric_totals,
    play,
    reached_by,
    state_tally,
    totals,
)

pytestmark = pytest.mark.unit

HISTORY = [
    ev("sourced", "s", 0),
    ev("class_completed", "c", 30),
    ev("dossier_verified", "v", 60),
    ev("admitted", "a", 90),
]


# --- counting and categories -------------------------------------------------------


def test_admitted_of_female_ethnic_minority_student_counts_four_categories():
    state, _ = play(HISTORY[:3])
    outcome = apply(state, ev("admitted", "a", 90))
    day_90 = day(90).date()
    assert set(outcome.deltas) == {
        TallyDelta(TallyKey("B-1", day_90, "admitted", c), 1, "a")
        for c in ("all", "female", "ethnic_minority", "student")
    }
    assert outcome.applied == ("a",)
    assert outcome.state.stage == "admitted"


def test_male_without_categories_counts_only_all():
    outcome = apply(None, ev("sourced", "s", profile=MALE))
    assert [d.key.category for d in outcome.deltas] == ["all"]


def test_tally_date_is_the_vietnamese_local_date():
    late_evening_utc = datetime(2024, 3, 1, 20, 0, tzinfo=UTC)  # 2024-03-02 03:00 in Hà Nội
    sourced = CandidateEvent(
        "s", "cand-1", EventType.SOURCED, late_evening_utc, late_evening_utc, branch_id="B-1", profile=MALE
    )
    assert {d.key.date for d in apply(None, sourced).deltas} == {date(2024, 3, 2)}


def test_complete_history_counts_each_milestone_once_without_flags():
    state, outcomes = play([*HISTORY, ev("confirmed", "f", 90 + 366)])
    assert metric_totals(outcomes) == {
        ("B-1", m): 1 for m in ("sourced", "class_completed", "dossier_verified", "admitted", "confirmed")
    }
    assert state.flags == ()
    assert [m.name for m in state.milestones] == [str(m) for m in EventType][:5]
    assert totals(outcomes) == state_tally(state)


# --- holding and releasing ---------------------------------------------------------


def test_event_before_sourced_is_held_then_released_in_time_order():
    state, first = play([ev("admitted", "a2", 100), ev("admitted", "a1", 90)])
    assert [o.held for o in first] == [("a2",), ("a1",)]
    assert not totals(first)
    assert {e.id for e in state.held} == {"a1", "a2"}
    outcome = apply(state, ev("sourced", "s", 0))
    assert outcome.applied == ("a1", "s")  # the earlier-dated admission wins
    assert codes(outcome) == [("a2", RejectionCode.DUPLICATE_MILESTONE)]
    assert metric_totals([outcome]) == {("B-1", "sourced"): 1, ("B-1", "admitted"): 1}
    assert outcome.state.held == ()


def test_void_before_the_voided_event_is_held_and_takes_effect_on_arrival():
    state, _ = play([ev("sourced", "s"), ev("voided", "x", 5, voids="a")])
    assert decided(state, "x").status is Status.HELD
    outcome = apply(state, ev("admitted", "a", 3))
    assert outcome.deltas == ()
    assert outcome.voided == ("a",)
    assert outcome.applied == ("x",)
    assert outcome.state.milestone(EventType.ADMITTED) is None


def test_held_events_expire_ttl_after_arrival_as_unknown_candidate():
    state, _ = play([ev("admitted", "a", 10, arrived=12)])
    ttl = timedelta(days=30)
    kept, none = expire_held(state, day(42) - timedelta(seconds=1), ttl)
    assert (kept, none) == (state, ())
    gone, rejections = expire_held(state, day(42), ttl)
    assert [(r.event_id, r.code) for r in rejections] == [("a", RejectionCode.UNKNOWN_CANDIDATE)]
    assert rejections[0].event == state.event("a")
    assert gone.events == ()


def test_default_park_ttl_is_30_days():
    state, _ = play([ev("admitted", "a", 10)])
    assert expire_held(state, day(39))[1] == ()
    assert len(expire_held(state, day(40))[1]) == 1
    assert timedelta(days=30) == DEFAULT_PARK_TTL


def test_expiry_keeps_counted_events_and_tallies():
    state, _ = play([*HISTORY, ev("voided", "x", 100, voids="nowhere")])
    after, rejections = expire_held(state, day(1000))
    assert [r.event_id for r in rejections] == ["x"]
    assert state_tally(after) == state_tally(state)
    assert after.event("x") is None


def test_expired_event_replayed_later_is_a_new_arrival():
    state, _ = play([ev("admitted", "a", 10)])
    state, _ = expire_held(state, day(100))
    outcome = apply(state, ev("admitted", "a", 10, arrived=200))
    assert outcome.held == ("a",)


def test_voiding_the_sourced_holds_the_rest_with_a_fresh_clock():
    state, outcomes = play([*HISTORY, ev("voided", "x", 400, voids="s")])
    assert not totals(outcomes)  # nothing can count without a profile
    assert {e.id for e in state.held} == {"c", "v", "a"}
    assert expire_held(state, day(400 + 29))[1] == ()
    assert len(expire_held(state, day(400 + 30))[1]) == 3


def test_corrected_sourced_after_void_releases_everything_with_new_categories():
    fix = [ev("voided", "x", 400, voids="s"), ev("sourced", "s2", 0, profile=MALE)]
    state, outcomes = play([*HISTORY, *fix])
    assert outcomes[-1].applied == ("a", "c", "s2", "v")
    assert {k.category for k in totals(outcomes)} == {"all"}
    assert state.profile == MALE


# --- duplicates and idempotency ----------------------------------------------------


def test_same_event_twice_is_a_noop():
    state, _ = play(HISTORY)
    again = apply(state, HISTORY[-1])
    assert again.duplicate
    assert (again.state, again.deltas, again.rejections) == (state, (), ())


def test_redelivery_with_another_arrival_time_is_a_duplicate():
    state, _ = play(HISTORY)
    assert apply(state, ev("admitted", "a", 90, arrived=95)).duplicate


def test_same_id_with_other_content_is_id_conflict_and_changes_nothing():
    state, _ = play(HISTORY)
    outcome = apply(state, ev("admitted", "a", 91))
    assert codes(outcome) == [("a", RejectionCode.ID_CONFLICT)]
    assert outcome.state == state
    assert outcome.deltas == ()


def test_second_different_event_for_a_reached_milestone_is_duplicate_milestone():
    state, _ = play(HISTORY)
    outcome = apply(state, ev("admitted", "a-again", 95, branch="B-9"))
    assert codes(outcome) == [("a-again", RejectionCode.DUPLICATE_MILESTONE)]
    assert outcome.deltas == ()
    assert decided(outcome.state, "a-again").status is Status.REJECTED


def test_earlier_dated_duplicate_arriving_late_displaces_the_counted_one():
    state, before = play(HISTORY)
    outcome = apply(state, ev("admitted", "a-early", 80, branch="B-2"))
    assert codes(outcome) == [("a", RejectionCode.DUPLICATE_MILESTONE)]
    assert metric_totals([*before, outcome])[("B-2", "admitted")] == 1
    assert ("B-1", "admitted") not in metric_totals([*before, outcome])
    assert {d.event_id for d in outcome.deltas if d.delta < 0} == {"a"}


@pytest.mark.parametrize("order", [("a-1", "a-2"), ("a-2", "a-1")])
def test_same_time_duplicates_are_decided_by_smaller_id(order):
    events = {i: ev("admitted", i, 90, branch=i) for i in order}
    state, _ = play([*HISTORY[:3], *(events[i] for i in order)])
    assert reached_by(state, "admitted") == "a-1"
    assert decided(state, "a-2").code is RejectionCode.DUPLICATE_MILESTONE


def test_duplicate_sourced_keeps_the_earliest_profile_for_every_event():
    early = ev("sourced", "s", 0, profile=MALE)
    state, outcomes = play([ev("admitted", "a", 90), ev("sourced", "s-late", 5), early])
    assert state.profile == MALE
    assert decided(state, "s-late").code is RejectionCode.DUPLICATE_MILESTONE
    assert {k.category for k in totals(outcomes)} == {"all"}


def test_voiding_the_counted_milestone_promotes_a_rejected_duplicate():
    fix = [ev("admitted", "a-fix", 91, branch="B-2"), ev("voided", "x", 92, voids="a")]
    _, outcomes = play([*HISTORY, *fix])
    assert outcomes[-1].applied == ("a-fix", "x")
    assert metric_totals(outcomes)[("B-2", "admitted")] == 1
    assert ("B-1", "admitted") not in metric_totals(outcomes)


# --- timeline flags ----------------------------------------------------------------


def test_skipped_milestones_are_counted_and_flagged():
    state, outcomes = play([ev("sourced", "s"), ev("admitted", "a", 90)])
    assert metric_totals(outcomes)[("B-1", "admitted")] == 1
    assert flag_codes(state) == {("a", FlagCode.INCONSISTENT_TIMELINE)}
    assert outcomes[-1].flags_added == state.flags


def test_out_of_order_times_are_counted_and_flagged():
    swapped = [ev("class_completed", "c", 50), ev("dossier_verified", "v", 40)]
    state, outcomes = play([ev("sourced", "s"), *swapped])
    assert metric_totals(outcomes)[("B-1", "dossier_verified")] == 1
    assert flag_codes(state) == {("v", FlagCode.INCONSISTENT_TIMELINE)}


def test_milestone_dated_before_sourced_counts_and_flags():
    state, outcomes = play([ev("class_completed", "c", -5), ev("sourced", "s", 0)])
    assert metric_totals(outcomes)[("B-1", "class_completed")] == 1
    assert flag_codes(state) == {("c", FlagCode.INCONSISTENT_TIMELINE)}


def test_filling_the_gap_later_removes_the_flag():
    state, _ = play([ev("sourced", "s"), ev("dossier_verified", "v", 40)])
    outcome = apply(state, ev("class_completed", "c", 20))
    assert [f.event_id for f in outcome.flags_removed] == ["v"]
    assert outcome.state.flags == ()


# --- probation -------------------------------------------------------------------


def test_confirmation_before_twelve_months_is_counted_and_flagged():
    state, outcomes = play([*HISTORY, ev("confirmed", "f", 90 + 330)])
    assert metric_totals(outcomes)[("B-1", "confirmed")] == 1
    assert flag_codes(state) == {("f", FlagCode.PROBATION_TOO_SHORT)}


def test_confirmation_exactly_twelve_months_later_is_fine():
    admitted = day(90)
    confirmed = admitted.replace(year=admitted.year + 1)
    state, _ = play([*HISTORY, ev("confirmed", "f", (confirmed - day(0)).days)])
    assert state.flags == ()
    state, _ = play([*HISTORY, ev("confirmed", "f", (confirmed - day(0)).days - 1)])
    assert flag_codes(state) == {("f", FlagCode.PROBATION_TOO_SHORT)}


def test_probation_due_of_29_february_is_28_february():
    vn = timezone(timedelta(hours=7))
    assert probation_due(datetime(2024, 2, 29, 10, tzinfo=vn)) == date(2025, 2, 28)
    assert probation_due(datetime(2024, 5, 11, 20, tzinfo=UTC)) == date(2025, 5, 12)


def test_confirmed_without_admitted_is_a_timeline_flag_only():
    state, _ = play([*HISTORY[:3], ev("confirmed", "f", 100)])
    assert flag_codes(state) == {("f", FlagCode.INCONSISTENT_TIMELINE)}


# --- drops -----------------------------------------------------------------------


def test_drop_counts_dropped_and_its_reason():
    state, outcomes = play([*HISTORY[:2], ev("dropped", "d", 40, reason="declined")])
    assert metric_totals(outcomes) == {
        ("B-1", "sourced"): 1,
        ("B-1", "class_completed"): 1,
        ("B-1", "dropped"): 1,
        ("B-1", "dropped.declined"): 1,
    }
    assert (state.stage, state.drop_reason) == ("dropped", "declined")


def test_events_after_the_drop_are_rejected_before_it_still_count():
    state, _ = play([ev("sourced", "s"), ev("dropped", "d", 50)])
    after = apply(state, ev("class_completed", "late", 51))
    assert codes(after) == [("late", RejectionCode.CANDIDATE_DROPPED)]
    before = apply(after.state, ev("class_completed", "c", 49))
    assert before.applied == ("c",)
    same_instant = apply(state, ev("class_completed", "c0", 50))
    assert same_instant.applied == ("c0",)


def test_late_drop_rejects_counted_events_dated_after_it():
    state, outcomes = play([*HISTORY, ev("dropped", "d", 45)])
    assert codes(outcomes[-1]) == [(i, RejectionCode.CANDIDATE_DROPPED) for i in ("a", "v")]
    assert ("B-1", "admitted") not in metric_totals(outcomes)
    assert state.milestone(EventType.ADMITTED) is None


@pytest.mark.parametrize("t", [50, 60])
def test_second_drop_is_duplicate_milestone(t):
    state, _ = play([ev("sourced", "s"), ev("dropped", "d", 50)])
    outcome = apply(state, ev("dropped", "d2", t, reason="other"))
    assert codes(outcome) == [("d2", RejectionCode.DUPLICATE_MILESTONE)]
    assert outcome.state.drop_reason == "moved_away"


def test_earlier_dated_second_drop_displaces_the_first():
    state, _ = play([ev("sourced", "s"), ev("dropped", "d", 50)])
    outcome = apply(state, ev("dropped", "d0", 40, reason="other"))
    assert codes(outcome) == [("d", RejectionCode.DUPLICATE_MILESTONE)]
    assert outcome.state.drop_reason == "other"


def test_transfer_after_the_drop_is_rejected():
    state, _ = play([ev("sourced", "s"), ev("dropped", "d", 50)])
    assert codes(apply(state, ev("transferred", "t", 60))) == [("t", RejectionCode.CANDIDATE_DROPPED)]


def test_sourced_dated_after_the_drop_still_counts_and_is_flagged():
    state, outcomes = play([ev("dropped", "d", 10), ev("sourced", "s", 20), ev("class_completed", "c", 30)])
    assert ("B-1", "sourced") in metric_totals(outcomes)
    assert decided(state, "c").code is RejectionCode.CANDIDATE_DROPPED
    assert (("s", FlagCode.INCONSISTENT_TIMELINE)) in flag_codes(state)


def test_not_recognised_is_valid_for_a_probationary_member():
    _, outcomes = play([*HISTORY, ev("dropped", "d", 400, reason="not_recognised")])
    assert metric_totals(outcomes)[("B-1", "dropped.not_recognised")] == 1


def test_not_recognised_after_confirmation_is_invalid_transition():
    state, _ = play([*HISTORY, ev("confirmed", "f", 460)])
    outcome = apply(state, ev("dropped", "d", 500, reason="not_recognised"))
    assert codes(outcome) == [("d", RejectionCode.INVALID_TRANSITION)]
    assert outcome.state.dropped is None


def test_not_recognised_dated_before_the_admission_is_invalid_transition():
    state, _ = play(HISTORY)
    outcome = apply(state, ev("dropped", "d", 85, reason="not_recognised"))
    assert codes(outcome) == [("d", RejectionCode.INVALID_TRANSITION)]
    assert metric_totals([outcome]) == {}


def test_not_recognised_waits_for_the_admission_then_counts():
    state, outcomes = play([*HISTORY[:3], ev("dropped", "d", 500, reason="not_recognised")])
    assert outcomes[-1].held == ("d",)
    assert state.dropped is None
    outcome = apply(state, HISTORY[3])
    assert (outcome.applied, outcome.rejections) == (("a", "d"), ())
    assert outcome.state.drop_reason == "not_recognised"


def test_not_recognised_never_admitted_expires_as_invalid_transition():
    state, _ = play([*HISTORY[:3], ev("dropped", "d", 500, reason="not_recognised")])
    after, rejections = expire_held(state, day(530))
    assert [(r.event_id, r.code) for r in rejections] == [("d", RejectionCode.INVALID_TRANSITION)]
    assert state_tally(after) == state_tally(state)


def test_voided_drop_lifts_it_and_revives_later_events():
    state, outcomes = play([ev("sourced", "s"), ev("dropped", "d", 50), ev("class_completed", "c", 60)])
    outcome = apply(state, ev("voided", "x", 70, voids="d"))
    assert outcome.applied == ("c", "x")
    assert outcome.state.dropped is None
    assert metric_totals([*outcomes, outcome]) == {("B-1", "sourced"): 1, ("B-1", "class_completed"): 1}


# --- transfers -------------------------------------------------------------------


def test_transfer_counts_out_and_in_and_moves_the_candidate():
    state, outcomes = play([ev("sourced", "s"), ev("transferred", "t", 20, branch="B-1")])
    assert metric_totals(outcomes) == {
        ("B-1", "sourced"): 1,
        ("B-1", "transferred_out"): 1,
        ("B-2", "transferred_in"): 1,
    }
    assert state.branch_id == "B-2"
    assert {d.key.date for d in outcomes[-1].deltas} == {day(20).date()}
    assert len(outcomes[-1].deltas) == 2 * 4  # two metrics x (all, female, ethnic_minority, student)


def test_later_events_count_on_the_branch_they_name():
    moved = [ev("transferred", "t", 20), ev("class_completed", "c", 30, branch="B-2")]
    _, outcomes = play([ev("sourced", "s"), *moved])
    assert metric_totals(outcomes)[("B-2", "class_completed")] == 1


def test_branch_follows_the_latest_event_in_time_not_in_arrival():
    late_arrival = [ev("class_completed", "c", 30, branch="B-2"), ev("transferred", "t", 20)]
    state, _ = play([ev("sourced", "s"), *late_arrival])
    assert state.branch_id == "B-2"
    state, _ = play([ev("sourced", "s"), ev("transferred", "t", 20, to_branch_id="B-3")])
    assert state.branch_id == "B-3"


# --- voids -----------------------------------------------------------------------


def test_void_takes_back_exactly_what_the_event_counted():
    state, outcomes = play([*HISTORY, ev("transferred", "t", 95)])
    counted = outcomes[-1].deltas
    outcome = apply(state, ev("voided", "x", 300, voids="t"))
    assert len(outcome.deltas) == len(counted) == 8
    assert set(outcome.deltas) == {TallyDelta(d.key, -d.delta, d.event_id) for d in counted}
    assert outcome.state.branch_id == "B-1"
    assert outcome.voided == ("t",)


def test_voided_milestone_is_unreached_so_a_corrected_event_applies():
    state, _ = play([*HISTORY, ev("voided", "x", 100, voids="a")])
    assert state.milestone(EventType.ADMITTED) is None
    outcome = apply(state, ev("admitted", "a2", 92))
    assert outcome.applied == ("a2",)
    assert outcome.rejections == ()


def test_void_of_an_already_voided_event_is_a_noop():
    state, _ = play([*HISTORY, ev("voided", "x", 100, voids="a")])
    outcome = apply(state, ev("voided", "x2", 101, voids="a"))
    assert (outcome.deltas, outcome.rejections, outcome.applied) == ((), (), ("x2",))
    assert "already voided" in (decided(outcome.state, "x2").detail or "")


def test_of_two_voids_of_one_event_the_earlier_dated_takes_effect():
    voids = [ev("voided", "x2", 200, voids="a"), ev("voided", "x1", 150, voids="a", arrived=300)]
    state, _ = play([*HISTORY, *voids])
    assert decided(state, "a").detail == "voided by x1"
    assert decided(state, "x2").detail == "a was already voided"


@pytest.mark.parametrize("target", ["x", "self"])
def test_void_of_a_void_is_invalid_transition(target):
    state, _ = play([*HISTORY, ev("voided", "x", 100, voids="a")])
    outcome = apply(state, ev("voided", "self", 101, voids=target))
    assert codes(outcome) == [("self", RejectionCode.INVALID_TRANSITION)]
    assert outcome.deltas == ()


def test_void_is_not_refused_after_a_drop():
    state, _ = play([*HISTORY, ev("dropped", "d", 100)])
    assert apply(state, ev("voided", "x", 200, voids="a")).voided == ("a",)


# --- voids with a scope (a province's void of an event the intake had not seen) ----------

LAO_CAI = ("legacy:P10", "2025:P15")


def scoped(eid: str, t: float, voids: str, scope: tuple[str, ...] = LAO_CAI, **kw) -> CandidateEvent:
    return ev("voided", eid, t, voids=voids, scope=scope, **kw)


@pytest.mark.parametrize("place", ["legacy:P10", "2025:P15"])
def test_a_scoped_void_takes_back_an_event_its_scope_holds(place):
    state, counted = play([*HISTORY[:3], ev("admitted", "a", 90, place=place)])
    outcome = apply(state, scoped("x", 100, "a"))
    assert outcome.voided == ("a",)
    assert set(outcome.deltas) == {TallyDelta(d.key, -d.delta, d.event_id) for d in counted[-1].deltas}


@pytest.mark.parametrize("place", ["legacy:P22", "2025:P22", "2025:P10", "legacy:P15", UNPLACED, None])
def test_a_scoped_void_of_an_event_outside_its_scope_is_out_of_scope_and_the_event_counts(place):
    state, _ = play([*HISTORY[:3], ev("admitted", "a", 90, place=place)])
    outcome = apply(state, scoped("x", 100, "a"))
    assert codes(outcome) == [("x", RejectionCode.OUT_OF_SCOPE)]
    assert (outcome.deltas, outcome.voided) == ((), ())
    assert reached_by(outcome.state, "admitted") == "a"
    assert "outside the voiding token's provinces (legacy:P10 2025:P15)" in (
        decided(outcome.state, "x").detail or ""
    )


def test_a_held_scoped_void_is_decided_when_its_event_arrives():
    state, _ = play([*HISTORY[:3], scoped("in", 100, "a"), scoped("out", 101, "b", scope=("legacy:P22",))])
    assert {e.id for e in state.held} == {"in", "out"}
    state, outcomes = play([ev("admitted", "a", 90, place="legacy:P10")], state)
    assert outcomes[-1].voided == ("a",)
    outcome = apply(state, ev("admitted", "b", 92, place="legacy:P10"))
    assert codes(outcome) == [("out", RejectionCode.OUT_OF_SCOPE)]
    assert reached_by(outcome.state, "admitted") == "b"


def test_an_out_of_scope_void_does_not_stop_a_rightful_one():
    state, _ = play([*HISTORY[:3], ev("admitted", "a", 90, place="legacy:P22")])
    state, outcomes = play([scoped("foreign", 95, "a"), scoped("own", 99, "a", scope=("P22",))], state)
    assert codes(outcomes[0]) == [("foreign", RejectionCode.OUT_OF_SCOPE)]
    assert outcomes[1].voided == ("a",)
    assert decided(state, "foreign").status is Status.REJECTED


def test_an_unscoped_void_ignores_the_place():
    state, _ = play([*HISTORY[:3], ev("admitted", "a", 90, place="legacy:P22")])
    assert apply(state, ev("voided", "x", 100, voids="a")).voided == ("a",)


def test_a_national_scope_holds_every_place_but_an_unknown_one():
    state, _ = play([*HISTORY[:3], ev("admitted", "a", 90, place="2025:P01")])
    assert apply(state, scoped("x", 100, "a", scope=("*",))).voided == ("a",)
    state, _ = play([*HISTORY[:3], ev("admitted", "a", 90, place=UNPLACED)])
    assert codes(apply(state, scoped("x", 100, "a", scope=("*",)))) == [("x", RejectionCode.OUT_OF_SCOPE)]


def test_a_scoped_void_of_a_void_is_still_invalid_transition():
    state, _ = play([*HISTORY, ev("voided", "x", 100, voids="a")])
    assert codes(apply(state, scoped("y", 101, "x"))) == [("y", RejectionCode.INVALID_TRANSITION)]


def test_the_place_is_not_content_a_redelivery_unplaced_is_a_duplicate():
    state, _ = play([*HISTORY[:3], ev("admitted", "a", 90, place="legacy:P10")])
    assert apply(state, ev("admitted", "a", 90)).duplicate


# --- misc ------------------------------------------------------------------------


def test_event_for_another_candidate_is_a_programming_error():
    state, _ = play(HISTORY)
    with pytest.raises(ValueError, match="cand-2"):
        apply(state, ev("admitted", "z", cand="cand-2"))


def test_stage_is_none_while_nothing_counts():
    state, _ = play([ev("admitted", "a")])
    assert state.stage is None
    assert state.branch_id is None


def test_profile_categories_change_with_the_winning_sourced():
    profile = Profile(2000, "male", ("religious",))
    _, outcomes = play([*HISTORY, ev("sourced", "s0", -1, profile=profile)])
    assert {k.category for k in totals(outcomes)} == {"all", "religious"}
