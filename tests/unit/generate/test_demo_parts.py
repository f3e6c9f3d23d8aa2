"""The demo's pure parts: batching, province tokens, answers against expectations, metrics parsing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ketnap.demo import (
    Batch,
    FeedStats,
    ProvinceRow,
    batches,
    latest_full_year,
    metric_by_label,
    metric_total,
    prepare_data_dir,
    province_scopes,
    split_ends,
)
from ketnap.generate import Emitted
from shared.orgtree import OrgTrees
from shared.scope import TokenScope
from tests.unit.generate.conftest import NOW, VN

pytestmark = pytest.mark.unit


def item(sender: str, kind: str = "candidate.admitted", expect: str = "accepted") -> Emitted:
    return Emitted({"id": "x", "type": f"vn.ketnap.{kind}", "data": {}}, sender, expect)


def test_batches_are_cut_by_size_and_by_sender() -> None:
    feed = [item("P01")] * 5 + [item("P04")] * 2
    cut = list(batches(feed, 2))
    assert [(b.sender, len(b.items)) for b in cut] == [("P01", 2), ("P01", 2), ("P01", 1), ("P04", 2)]


def test_a_void_stays_in_the_batch_of_the_event_before_it() -> None:
    feed = [item("P01"), item("P01"), item("P01", "candidate.voided"), item("P01")]
    cut = list(batches(feed, 2))
    assert [len(b.items) for b in cut] == [3, 1]


def test_every_2025_province_token_covers_the_legacy_provinces_it_absorbed(trees: OrgTrees) -> None:
    scopes = province_scopes(trees)
    assert len(scopes) == 34
    assert sorted(scopes["P15"]) == ["2025:P15", "legacy:P10", "legacy:P15"]
    legacy = [e for entries in scopes.values() for e in entries if e.startswith("legacy:")]
    assert len(legacy) == len(set(legacy)) == 63
    for province, entries in scopes.items():
        scope = TokenScope.parse(entries)
        assert scope.covers(province, "2025", trees)


def test_answers_are_tallied_against_what_the_generator_expected() -> None:
    stats = FeedStats()
    batch = Batch("P01", [item("P01"), item("P01", expect="duplicate"), item("P01", expect="unknown_type")])
    answer = {
        "results": [
            {"id": "a", "status": "accepted"},
            {"id": "b", "status": "duplicate"},
            {"id": "c", "status": "rejected", "error": {"code": "invalid_schema", "detail": "..."}},
        ]
    }
    stats.record(batch, answer)
    assert stats.sent == 3
    assert stats.accepted == 1
    assert stats.rejected == {"invalid_schema": 1}
    assert stats.surprises == {"unknown_type -> invalid_schema": 1}


def test_prometheus_samples_are_summed() -> None:
    text = (
        "# HELP ketnap_consumer_lag Messages behind the log end.\n"
        'ketnap_consumer_lag{partition="0",service="quota",topic="a"} 12.0\n'
        'ketnap_consumer_lag{partition="1",service="quota",topic="a"} 3.0\n'
        'ketnap_consumer_lag_other{service="quota"} 100.0\n'
        'ketnap_rejections_total{code="duplicate_milestone",service="quota"} 4.0\n'
        'ketnap_rejections_total{code="candidate_dropped",service="quota"} 1.0\n'
    )
    assert metric_total(text, "ketnap_consumer_lag") == 15.0
    assert metric_total(text, "ketnap_outbox_backlog") == 0.0
    assert metric_by_label(text, "ketnap_rejections_total", "code") == {
        "duplicate_milestone": 4,
        "candidate_dropped": 1,
    }


def row(n: int) -> ProvinceRow:
    return ProvinceRow(f"P{n:02d}", "x", n, 10, "assigned", f"{100 - n}.00")


@pytest.mark.parametrize(("rows", "ahead", "behind"), [(12, 5, 5), (7, 4, 3), (1, 1, 0), (0, 0, 0)])
def test_ahead_and_behind_never_overlap(rows: int, ahead: int, behind: int) -> None:
    ranked = [row(n) for n in range(rows)]
    first, last = split_ends(ranked)
    assert (len(first), len(last)) == (ahead, behind)
    assert not {r.id for r in first} & {r.id for r in last}
    if last:
        assert last[0] == ranked[-1]  # furthest behind first


def test_the_latest_full_year_is_last_year_within_the_range() -> None:
    assert latest_full_year(2020, 2026, NOW) == 2025
    assert latest_full_year(2020, 2023, NOW) == 2023
    assert latest_full_year(2026, 2026, datetime(2026, 3, 1, tzinfo=VN)) == 2026


def test_the_data_dir_is_wiped_only_if_a_demo_made_it(tmp_path: Path) -> None:
    prepare_data_dir(tmp_path / "demo")
    (tmp_path / "demo" / "quota.db").write_text("old")
    prepare_data_dir(tmp_path / "demo")
    assert not (tmp_path / "demo" / "quota.db").exists()
    foreign = tmp_path / "up"
    foreign.mkdir()
    (foreign / "quota.db").write_text("precious")
    with pytest.raises(SystemExit):
        prepare_data_dir(foreign)
    assert (foreign / "quota.db").read_text() == "precious"


def test_two_copies_answered_in_the_other_order_are_not_a_surprise() -> None:
    stats = FeedStats()
    stats.surprises.update(
        {"accepted -> duplicate": 2, "duplicate -> accepted": 2, "accepted -> id_conflict": 1}
    )
    assert stats.unexplained() == ({"accepted -> id_conflict": 1}, 2)
