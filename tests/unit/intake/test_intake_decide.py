"""The per-event decision: every code, scope by tree and date, ids within and across requests."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.domain.decide import Known, Plan, StoredEvent, decide, inspect, judging, lookups
from services.intake.domain.registry import Attribution, BranchHistory, Placement
from services.intake.domain.validation import content_hash
from shared.orgtree import load_org_trees
from shared.scope import TokenScope
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS

pytestmark = pytest.mark.unit

TREES = load_org_trees()
NOW = datetime.fromisoformat("2026-03-01T10:00:00+07:00")
NATIONAL = TokenScope.parse(["*"])
QUANG_NINH = TokenScope.parse(["P22"])
LAO_CAI_LEGACY = TokenScope.parse(["legacy:P10"])
LAO_CAI_2025 = TokenScope.parse(["2025:P15"])
_ids = itertools.count()


def ev(
    event_type: str, data: dict[str, Any], *, time: str = "2024-05-12T09:00:00+07:00", **over: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"e{next(_ids)}",
        "source": "/test",
        "type": f"vn.ketnap.{event_type}",
        "time": time,
        "data": data,
    }
    if event_type.startswith("candidate."):
        doc["subject"] = "cand-1"
    return {**doc, **over}


def register(
    branch_id: str = "B1", legacy: str | None = "C06901", v2025: str | None = None, **over: Any
) -> dict[str, Any]:
    parents = {k: v for k, v in (("legacy", legacy), ("2025", v2025)) if v}
    data = {"branch_id": branch_id, "name": "Chi bộ", "kind": "school", "parents": parents}
    return ev("org.branch_registered", data, time="2024-01-01T00:00:00+07:00", **over)


def admitted(branch_id: str = "B1", **over: Any) -> dict[str, Any]:
    return ev("candidate.admitted", {"branch_id": branch_id}, **over)


def target(unit_id: str, tree: str | None = None, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"unit_id": unit_id, "year": 2024, "kind": "assigned", "value": 9}
    if tree:
        data["tree"] = tree
    return ev("target.set", data, **over)


def history(branch_id: str = "B1", legacy: str | None = "C06901", v2025: str | None = None) -> BranchHistory:
    placed = Placement(branch_id, datetime.fromisoformat("2024-01-01T00:00:00+07:00"), "reg", legacy, v2025)
    return BranchHistory.of([placed])


def run(items: list[Any], scope: TokenScope = NATIONAL, known: Known | None = None) -> Plan:
    return decide(inspect(items), known or Known(), scope, TREES, NOW)


def codes(plan: Plan) -> list[str | None]:
    return [r.code if r.status == "rejected" else r.status for r in plan.results]


QN_BRANCH = Known(branches={"B1": history()})  # B1 under Xã Quảng An C06901, Quảng Ninh


def test_candidate_event_for_a_known_branch_is_accepted_keyed_by_subject() -> None:
    plan = run([admitted()], QUANG_NINH, QN_BRANCH)
    assert codes(plan) == ["accepted"]
    (accepted,) = plan.accepted
    assert (accepted.topic, accepted.key, accepted.branch_id) == (CANDIDATE_EVENTS, "cand-1", "B1")
    assert accepted.attribution == Attribution("C06901", "legacy")
    assert plan.results[0].province == "P22"
    assert plan.results[0].type == "candidate.admitted"


def test_registration_is_known_to_later_events_of_the_request_only_if_accepted() -> None:
    plan = run([register("B9"), admitted("B9"), register("B8", legacy="P22"), admitted("B8")])
    assert codes(plan) == ["accepted", "accepted", "unknown_unit", "unknown_branch"]
    assert (plan.accepted[0].topic, plan.accepted[0].key) == (REFERENCE_EVENTS, "B9")
    assert plan.accepted[0].placement is not None


def test_events_before_the_registration_in_the_request_do_not_see_it() -> None:
    assert codes(run([admitted("B9"), register("B9")])) == ["unknown_branch", "accepted"]


def test_store_ids_duplicate_conflict_and_pending() -> None:
    same, other, pending, pending_other = admitted(), admitted(), admitted(), admitted()
    stored = {
        same["id"]: StoredEvent(content_hash(same), True, "B1", Attribution("C06901", "legacy")),
        other["id"]: StoredEvent(b"x" * 32, True, "B1", None),
        pending["id"]: StoredEvent(content_hash(pending), False, "B1", None),
        pending_other["id"]: StoredEvent(b"y" * 32, False, "B1", None),
    }
    plan = run([same, other, pending, pending_other], known=Known(stored, QN_BRANCH.branches))
    assert codes(plan) == ["duplicate", "id_conflict", "accepted", "id_conflict"]
    assert [a.was_pending for a in plan.accepted] == [True]


def test_ids_repeated_within_a_request() -> None:
    first = admitted()
    conflicting = {**first, "time": "2024-05-13T09:00:00+07:00"}
    plan = run([first, dict(first), conflicting], known=QN_BRANCH)
    assert codes(plan) == ["accepted", "duplicate", "id_conflict"]
    assert len(plan.accepted) == 1


def test_a_published_duplicate_wins_over_anything_that_changed_since() -> None:
    late = admitted("B-unknown")
    stored = {late["id"]: StoredEvent(content_hash(late), True, "B-unknown", None)}
    assert codes(run([late], QUANG_NINH, Known(stored))) == ["duplicate"]


def test_future_time_tolerates_five_minutes() -> None:
    ok = admitted(time="2026-03-01T10:04:59+07:00")
    late = admitted(time="2026-03-01T10:05:01+07:00")
    other_offset = admitted(time="2026-03-01T03:06:00+00:00")
    assert codes(run([ok, late, other_offset], known=QN_BRANCH)) == ["accepted", "future_time", "future_time"]


def test_future_time_is_checked_before_references() -> None:
    assert codes(run([admitted("B-unknown", time="2030-01-01T00:00:00+07:00")])) == ["future_time"]


@pytest.mark.parametrize(
    ("legacy", "v2025"),
    [("P22", None), ("D200", None), ("C99999", None), (None, "D200"), ("C06901", "C99999"), ("VN", None)],
)
def test_branch_parents_must_be_attachable_units(legacy: str | None, v2025: str | None) -> None:
    assert codes(run([register("B2", legacy, v2025)])) == ["unknown_unit"]


def test_island_district_is_attachable() -> None:
    assert codes(run([register("B2", "D318")])) == ["accepted"]  # Bạch Long Vĩ, no communes


def test_transfer_needs_both_branches_and_scope_of_the_origin() -> None:
    known = Known(branches={"B1": history(), "B2": history("B2", "C02680")})  # B2 in Lào Cai (P10)
    out = ev("candidate.transferred", {"from_branch_id": "B1", "to_branch_id": "B2"})
    back = ev("candidate.transferred", {"from_branch_id": "B2", "to_branch_id": "B1"})
    nowhere = ev("candidate.transferred", {"from_branch_id": "B1", "to_branch_id": "B3"})
    plan = run([out, back, nowhere], QUANG_NINH, known)
    assert codes(plan) == ["accepted", "out_of_scope", "unknown_branch"]
    assert plan.accepted[0].branch_id == "B1"


def test_registration_parents_must_all_be_in_scope() -> None:
    inside = register("B2", "C06901", "C06913")
    half = register("B3", "C06901", TREES.to_2025("C02680"))
    assert codes(run([inside, half], QUANG_NINH)) == ["accepted", "out_of_scope"]


def test_a_province_cannot_take_over_another_provinces_branch() -> None:
    known = Known(branches={"B2": history("B2", "C02680")})  # Lào Cai
    assert codes(run([register("B2", "C06901")], QUANG_NINH, known)) == ["out_of_scope"]
    assert codes(run([register("B2", "C06901")], NATIONAL, known)) == ["accepted"]


def test_scope_goes_through_the_tree_in_force_at_the_event_date() -> None:
    """Legacy P10 Lào Cai lies in 2025 P15: which token covers it depends on the date."""
    known = Known(branches={"B2": history("B2", "C02680")})
    before = admitted("B2", time="2025-06-30T12:00:00+07:00")
    after = admitted("B2", time="2025-07-01T00:00:00+07:00")
    assert codes(run([before, after], LAO_CAI_LEGACY, known)) == ["accepted", "out_of_scope"]
    assert codes(run([before, after], LAO_CAI_2025, known)) == ["out_of_scope", "accepted"]


def test_targets_in_the_named_tree_or_the_tree_in_force() -> None:
    plan = run(
        [
            target("P22"),
            target("D200"),
            target("D200", "2025"),
            target("VN"),
            target("P15", "2025"),
            target("C06913", time="2025-08-01T00:00:00+07:00"),
        ],
        QUANG_NINH,
    )
    assert codes(plan) == ["accepted", "accepted", "unknown_unit", "out_of_scope", "out_of_scope", "accepted"]
    assert (plan.accepted[0].topic, plan.accepted[0].key) == (REFERENCE_EVENTS, "P22")
    assert codes(run([target("VN")], NATIONAL)) == ["accepted"]


def test_voids_are_authorised_through_the_voided_event() -> None:
    ours, theirs = admitted(), admitted()
    stored = {
        ours["id"]: StoredEvent(content_hash(ours), True, "B1", Attribution("C06901", "legacy")),
        theirs["id"]: StoredEvent(content_hash(theirs), True, "B2", Attribution("C02680", "legacy")),
    }
    voids = [
        ev("candidate.voided", {"voids": i, "reason": "entered in error"})
        for i in (ours["id"], theirs["id"], "nope")
    ]
    plan = run(voids, QUANG_NINH, Known(stored, QN_BRANCH.branches))
    # a void of an event never seen here is held by the quota (late batches), not refused
    assert codes(plan) == ["accepted", "out_of_scope", "accepted"]
    assert plan.accepted[0].branch_id == "B1"
    assert codes(run(voids, NATIONAL, Known(stored))) == ["accepted", "accepted", "accepted"]


def test_a_provincial_void_of_an_unseen_event_carries_the_tokens_scope() -> None:
    """The quota applies it only to an event lying in those provinces (finding 9)."""
    unseen = ev("candidate.voided", {"voids": "never-seen", "reason": "typo"})
    scopes = {
        QUANG_NINH: "legacy:P22 2025:P22",
        LAO_CAI_LEGACY: "legacy:P10",
        LAO_CAI_2025: "2025:P15",
        TokenScope.parse(["legacy:P10", "legacy:P15", "2025:P15"]): "legacy:P10 legacy:P15 2025:P15",
        NATIONAL: None,
    }
    for scope, expected in scopes.items():
        plan = run([unseen], scope)
        assert codes(plan) == ["accepted"]
        assert plan.accepted[0].void_scope == expected


def test_a_void_of_a_known_event_carries_no_scope() -> None:
    ours = admitted()
    stored = {ours["id"]: StoredEvent(content_hash(ours), True, "B1", Attribution("C06901", "legacy"))}
    void = ev("candidate.voided", {"voids": ours["id"], "reason": "typo"})
    assert run([void], QUANG_NINH, Known(stored, QN_BRANCH.branches)).accepted[0].void_scope is None
    later = admitted()
    same_request = run(
        [ev("candidate.voided", {"voids": later["id"], "reason": "x"}), later], QUANG_NINH, QN_BRANCH
    )
    assert [a.void_scope for a in same_request.accepted] == [None, None]


def test_the_scope_is_published_as_the_voidscope_extension() -> None:
    from services.intake.publisher import cloudevent_value

    unseen = ev("candidate.voided", {"voids": "never-seen", "reason": "typo"})
    [accepted] = run([unseen], LAO_CAI_LEGACY).accepted
    value = orjson.loads(cloudevent_value(accepted, "2026-03-01T03:00:00.000000Z"))
    assert value == {**unseen, "recordedtime": "2026-03-01T03:00:00.000000Z", "voidscope": "legacy:P10"}
    [national] = run([unseen], NATIONAL).accepted
    assert "voidscope" not in orjson.loads(cloudevent_value(national, "2026-03-01T03:00:00.000000Z"))


def test_a_void_may_come_before_the_event_it_voids_in_the_same_request() -> None:
    original = admitted()
    void = ev("candidate.voided", {"voids": original["id"], "reason": "typo"})
    plan = run([void, original], QUANG_NINH, QN_BRANCH)
    assert codes(plan) == ["accepted", "accepted"]
    assert [r.id for r in plan.results] == [void["id"], original["id"]]


def test_lookups_name_every_id_the_decision_needs() -> None:
    items = [
        admitted("B1"),
        ev("candidate.transferred", {"from_branch_id": "B2", "to_branch_id": "B3"}),
        ev("candidate.voided", {"voids": "old", "reason": "x"}),
        register("B4"),
        target("P22"),
        {"not": "valid"},
    ]
    wanted = lookups(inspect(items))
    assert wanted.branch_ids == {"B1", "B2", "B3", "B4"}
    assert wanted.event_ids == {items[i]["id"] for i in range(5)} | {"old"}


def test_one_bad_item_never_blocks_its_neighbours() -> None:
    plan = run(
        [admitted(), "junk", {**admitted(), "data": {"branch_id": "B1", "name": "A"}}, admitted()],
        known=QN_BRANCH,
    )
    assert codes(plan) == ["accepted", "invalid_schema", "invalid_schema", "accepted"]
    assert plan.results[1].id is None
    assert plan.counts() == {"accepted": 2, "duplicate": 0, "rejected": 2}


item_strategy = st.one_of(
    st.builds(lambda: admitted()),
    st.builds(lambda: admitted("B-none")),
    st.builds(lambda: admitted(time="2031-01-01T00:00:00+07:00")),
    st.builds(lambda: register(f"B{next(_ids)}")),
    st.builds(lambda: target("P22")),
    st.builds(lambda: target("P15", "2025")),
    st.just("junk"),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(item_strategy, max_size=12), st.sampled_from([NATIONAL, QUANG_NINH, LAO_CAI_2025]))
def test_one_result_per_item_in_order_and_accepted_means_published(
    items: list[Any], scope: TokenScope
) -> None:
    plan = run(items, scope, QN_BRANCH)
    assert len(plan.results) == len(items)
    assert [r.id for r in plan.results] == [i["id"] if isinstance(i, dict) else None for i in items]
    accepted_ids = [r.id for r in plan.results if r.status == "accepted"]
    assert accepted_ids == [a.event.id for a in sorted(plan.accepted, key=lambda a: a.index)]
    assert all(r.code is None for r in plan.results if r.status != "rejected")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(item_strategy, max_size=12),
    st.sampled_from([NATIONAL, QUANG_NINH, LAO_CAI_2025]),
    st.integers(1, 4),
)
def test_judging_in_slices_decides_as_in_one_go(items: list[Any], scope: TokenScope, step: int) -> None:
    inspected = inspect(items)
    steps = judging(inspected, QN_BRANCH, scope, TREES, NOW, step=step)
    pauses = 0
    while True:
        try:
            next(steps)
            pauses += 1
        except StopIteration as done:
            sliced: Plan = done.value
            break
    whole = decide(inspected, QN_BRANCH, scope, TREES, NOW)
    assert sliced.results == whole.results
    assert [a.event.id for a in sliced.accepted] == [a.event.id for a in whole.accepted]
    assert pauses == max(0, (len(items) - 1) // step)


def test_a_branch_moved_within_the_request_counts_under_its_new_parent_from_the_move_on() -> None:
    """Events of one branch share their attribution within a request until it is registered again."""
    move = {"branch_id": "B1", "name": "Chi bộ", "kind": "school", "parents": {"legacy": "C02680"}}
    plan = run(
        [
            admitted("B1", time="2024-05-12T09:00:00+07:00"),
            admitted("B1", time="2024-05-13T09:00:00+07:00"),
            ev("org.branch_registered", move, time="2024-06-01T00:00:00+07:00"),
            admitted("B1", time="2024-05-14T09:00:00+07:00"),
            admitted("B1", time="2024-07-01T09:00:00+07:00"),
        ],
        NATIONAL,
        QN_BRANCH,
    )
    assert codes(plan) == ["accepted"] * 5
    assert [r.province for r in plan.results] == ["P22", "P22", "P10", "P22", "P10"]
    assert [a.attribution.unit_id for a in plan.accepted] == [
        "C06901",
        "C06901",
        "C02680",
        "C06901",
        "C02680",
    ]
