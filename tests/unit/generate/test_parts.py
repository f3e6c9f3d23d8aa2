"""The generator's pieces: clock, ids, config, sampling, branches, wire, output, and purity."""

from __future__ import annotations

import ast
import io
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketnap.generate import Emitted, GeneratorConfig, generate, make_plan, parse_now, parse_years
from ketnap.generate.branches import kinds, make_branches, split_name
from ketnap.generate.clock import VN_OFFSET, from_datetime, iso
from ketnap.generate.ndjson import write_ndjson
from ketnap.generate.plan import EXCLUDED, candidate_units
from ketnap.generate.seeding import IdMint
from ketnap.generate.wire import ACCEPTED, deployment
from shared.events import BranchKind, Envelope, parse_data
from shared.orgtree import OrgTrees
from tests.unit.generate.conftest import NOW

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[3] / "ketnap" / "generate"
IO_MODULES = {"os", "sys", "io", "time", "socket", "pathlib", "subprocess", "asyncio", "httpx", "shutil"}


@pytest.mark.parametrize(
    ("text", "years"), [("2020-2026", (2020, 2026)), ("2024", (2024, 2024)), (" 2021..2025 ", (2021, 2025))]
)
def test_years_parse(text: str, years: tuple[int, int]) -> None:
    assert parse_years(text) == years


@pytest.mark.parametrize("text", ["2026-2020", "20-26", "", "2020-", "1999-2001"])
def test_bad_years_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="years"):
        parse_years(text)


def test_config_refuses_a_bad_scale_or_a_naive_now() -> None:
    with pytest.raises(ValueError, match="scale"):
        GeneratorConfig(now=NOW, scale=0)
    with pytest.raises(ValueError, match="scale"):
        GeneratorConfig(now=NOW, scale=1.5)
    with pytest.raises(ValueError, match="aware"):
        GeneratorConfig(now=datetime(2026, 1, 1))


def test_cutoff_is_now_or_the_end_of_the_last_year() -> None:
    assert GeneratorConfig(now=NOW, last_year=2030).cutoff == from_datetime(NOW)
    end_2024 = from_datetime(datetime(2024, 12, 31, 23, 59, tzinfo=VN_OFFSET))
    assert GeneratorConfig(now=NOW, first_year=2023, last_year=2024).cutoff == end_2024


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1)))
def test_iso_writes_the_same_instant_with_the_vietnamese_offset(when: datetime) -> None:
    local = when.replace(second=0, microsecond=0, tzinfo=VN_OFFSET)
    text = iso(from_datetime(local))
    assert text.endswith("+07:00")
    assert datetime.fromisoformat(text) == local


@given(st.integers(min_value=0, max_value=2**31), st.text(min_size=1, max_size=20), st.integers(0, 10**9))
def test_ids_are_exactly_uuid5(seed: int, scope: str, n: int) -> None:
    mint = IdMint(seed)
    assert mint(scope, n) == str(mint.reference(scope, n))
    assert uuid.UUID(mint(scope, n)).version == 5


def test_the_sample_is_the_asked_share_spread_over_every_province(trees: OrgTrees) -> None:
    units = candidate_units(trees)
    plan = make_plan(trees, seed=5, scale=0.1)
    assert len(plan) == round(0.1 * len(units))
    per_province = Counter(trees.legacy.province_of(u.id) for u in units)
    sampled = Counter(s.province_id for s in plan.sites())
    for province, n in per_province.items():
        assert abs(sampled[province] - 0.1 * n) <= 1, province


def test_a_tiny_sample_still_reaches_far_apart_provinces(trees: OrgTrees) -> None:
    plan = make_plan(trees, seed=1, scale=0.002)
    assert len(plan) == 20
    assert len({s.province_id for s in plan.sites()}) >= 15
    assert not {s.legacy_id for s in plan.sites()} & EXCLUDED


def test_the_whole_country_is_every_inhabited_commune_grouped_by_2025_province(trees: OrgTrees) -> None:
    plan = make_plan(trees, seed=1, scale=1.0)
    assert len(plan) == 10_039
    assert len(plan.groups) == 34
    for group in plan.groups:
        assert all(s.new_province_id == group.province_id for s in group.sites)


@given(st.integers(min_value=0, max_value=10**6))
def test_a_commune_has_8_to_20_branches_mostly_residential(seed: int) -> None:
    drawn = kinds(random.Random(seed))
    assert 8 <= len(drawn) <= 20
    assert drawn.count(BranchKind.RESIDENTIAL) >= 4
    assert drawn[0] == BranchKind.RESIDENTIAL


def test_branch_names_follow_the_commune_type() -> None:
    rng = random.Random(2)
    ward = make_branches(rng, "C00001", "Phường Phúc Xá")
    commune = make_branches(rng, "C06901", "Xã Quảng An")
    assert ward[0].name == "Chi bộ tổ dân phố số 1"
    assert ward[0].id == "B-C00001-01"
    assert commune[0].name.startswith("Chi bộ thôn ")
    police = [b.name for b in commune if b.kind == BranchKind.POLICE]
    assert all(name == "Chi bộ Công an xã Quảng An" for name in police)
    assert len({b.id for b in commune}) == len(commune)


def test_split_name_and_deployment_slugs() -> None:
    assert split_name("Thị trấn Phố Lu") == ("Thị trấn", "Phố Lu")
    assert split_name("Huyện Côn Đảo") == ("Huyện", "Côn Đảo")
    assert deployment("Tỉnh Quảng Ninh") == "/deployments/quang-ninh"
    assert deployment("Tỉnh Bà Rịa - Vũng Tàu") == "/deployments/ba-ria-vung-tau"
    assert deployment("Thành phố Hồ Chí Minh") == "/deployments/ho-chi-minh"
    assert deployment("Tỉnh Đắk Lắk") == "/deployments/dak-lak"


def test_ndjson_output_is_one_valid_event_per_line(trees: OrgTrees) -> None:
    config = GeneratorConfig(now=NOW, seed=2, scale=0.001, first_year=2025, last_year=2025)
    stream = io.BytesIO()
    written = write_ndjson(generate(config, trees), stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == written.events == sum(written.expect.values()) > 100
    for line in lines[:200]:
        event = orjson.loads(line)
        assert event["specversion"] == "1.0"
    assert written.per_second > 0


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from([(2024, 2025), (2025, 2026), (2020, 2021)]))
def test_any_seed_gives_valid_events_in_order_never_after_now(seed: int, years: tuple[int, int]) -> None:
    from shared.orgtree import load_org_trees

    config = GeneratorConfig(now=NOW, seed=seed, scale=0.0005, first_year=years[0], last_year=years[1])
    last_step: dict[str, tuple[datetime, int]] = {}
    order = ("sourced", "class_completed", "dossier_verified", "admitted", "confirmed")
    steps = sorted(
        (i for i in generate(config, load_org_trees()) if i.expect == ACCEPTED and i.counts),
        key=lambda i: str(i.event["time"]),
    )
    for item in steps:
        envelope = Envelope.model_validate(item.event)
        parse_data(envelope.type, envelope.data)
        assert envelope.time <= NOW
        kind = envelope.type.rsplit(".", 1)[-1]
        if kind in order and envelope.subject:
            previous = last_step.get(envelope.subject)
            assert previous is None or (previous[0] < envelope.time and previous[1] < order.index(kind))
            last_step[envelope.subject] = (envelope.time, order.index(kind))


def test_the_core_does_no_io_and_reads_no_clock() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.name == "ndjson.py":  # the one edge: writes the feed to a stream
            continue
        source = path.read_text()
        tree = ast.parse(source)
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        froms = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        roots |= {module.split(".")[0] for module in froms}
        assert not roots & IO_MODULES, path.name
        for call in (".now(", "today(", "open("):
            assert call not in source, path.name


def test_the_purity_check_would_catch_io() -> None:
    tree = ast.parse("import time\nfrom pathlib import Path\n")
    roots = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots & IO_MODULES == {"time", "pathlib"}


def test_decisions_fall_on_working_days_in_office_hours(feed: list[Emitted]) -> None:
    for item in feed:
        if item.expect != ACCEPTED:
            continue
        when = datetime.fromisoformat(str(item.event["time"]))
        assert when.weekday() != 6
        if item.type.startswith("vn.ketnap.candidate."):
            since_midnight = when - when.replace(hour=0, minute=0)
            assert timedelta(hours=7, minutes=30) <= since_midnight <= timedelta(hours=17)


def test_now_parses_dates_and_times_in_vietnamese_time() -> None:
    default = datetime(2030, 1, 1, tzinfo=VN_OFFSET)
    assert parse_now(None, default) == default
    assert parse_now("2026-11-22", default) == datetime(2026, 11, 22, tzinfo=VN_OFFSET)
    assert parse_now("2026-11-22T09:30:00Z", default).hour == 9
    assert parse_now("2026-11-22T09:30", default).utcoffset() == timedelta(hours=7)
    with pytest.raises(ValueError, match="ISO"):
        parse_now("yesterday", default)


def test_parallel_output_is_byte_for_byte_the_sequential_one(
    trees: OrgTrees, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ketnap.generate import ndjson
    from ketnap.generate.ndjson import write_feed

    monkeypatch.setattr(ndjson, "_PARALLEL_FROM_SITES", 2)
    config = GeneratorConfig(now=NOW, seed=4, scale=0.003, first_year=2025, last_year=2025)
    one, two = io.BytesIO(), io.BytesIO()
    written = write_feed(config, one, jobs=1)
    assert write_feed(config, two, jobs=2).expect == written.expect
    assert one.getvalue() == two.getvalue()
    expected = b"".join(orjson.dumps(i.event) + b"\n" for i in generate(config, trees))
    assert one.getvalue() == expected
