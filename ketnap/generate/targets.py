"""Targets [chỉ tiêu kết nạp] for every commune and province, and the nation, in the tree they belong to.

Each unit gets, per year, a resolution target [chỉ tiêu Nghị quyết] adopted in
December and a quota assigned from above [chỉ tiêu cấp trên giao] in
January-February, both near what the planners expect of it (so some units pass
and some lag). Legacy units get targets for years up to 2025, 2025 units from
2025 (set in July-August 2025 for that year, once the new units existed).
Provinces also get a private-sector target (Yên Bái: "180 from enterprises").
Invariants: every target names its tree; none is dated after the cutoff; a
revision of a quota comes later than the quota it revises (the latest wins).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Final

from ketnap.generate import clock
from ketnap.generate.branches import split_name
from ketnap.generate.commune import Commune
from ketnap.generate.config import GeneratorConfig

REFORM_YEAR: Final = 2025
P_REVISED: Final = 0.05
_RESOLUTION_BAND: Final = (0.92, 1.12)
_ASSIGNED_BAND: Final = (0.88, 1.06)


@dataclass(frozen=True, slots=True)
class Target:
    unit_id: str
    tree: str
    year: int
    kind: str
    value: int
    moment: int
    source_doc: str
    category: str = "all"

    def data(self) -> dict[str, object]:
        data: dict[str, object] = {
            "unit_id": self.unit_id,
            "tree": self.tree,
            "year": self.year,
            "kind": self.kind,
            "value": self.value,
        }
        if self.category != "all":
            data["category"] = self.category
        data["source_doc"] = self.source_doc
        return data


@dataclass(frozen=True, slots=True)
class _Unit:
    """A unit to set targets for: its id, tree, name and the communes that make it up."""

    id: str
    tree: str
    name: str
    communes: tuple[Commune, ...]
    level: str
    assigner: str


def group_targets(rng: random.Random, config: GeneratorConfig, communes: list[Commune]) -> list[Target]:
    """Targets of the communes and provinces of one 2025 province, in both trees."""
    out: list[Target] = []
    for unit in _units(communes):
        for year in config.years:
            if in_force(unit.tree, year):
                out += _unit_targets(rng, unit, year)
    return [t for t in out if t.moment <= config.cutoff]


def in_force(tree: str, year: int) -> bool:
    """Legacy units have targets up to 2025, 2025 units from 2025 (both in 2025)."""
    return year <= REFORM_YEAR if tree == "legacy" else year >= REFORM_YEAR


def national_targets(
    rng: random.Random, config: GeneratorConfig, provinces: Iterable[Target]
) -> Iterator[Target]:
    """``VN`` resolution targets: the provinces' resolution targets summed, per tree and year."""
    totals: dict[tuple[str, int], int] = {}
    for t in provinces:
        if t.kind == "resolution" and t.category == "all":
            totals[(t.tree, t.year)] = totals.get((t.tree, t.year), 0) + t.value
    for (tree, year), total in sorted(totals.items()):
        moment = _when(rng, tree, year, "national")
        if moment <= config.cutoff:
            value = round(total * rng.uniform(1.0, 1.03))
            yield Target("VN", tree, year, "resolution", value, moment, _congress(year))


def _units(communes: list[Commune]) -> Iterator[_Unit]:
    by_key: dict[tuple[str, str], list[Commune]] = {}
    for c in communes:
        s = c.site
        for key in ((s.legacy_id, "legacy"), (s.province_id, "legacy"), (s.new_id, "2025")):
            by_key.setdefault(key, []).append(c)
        by_key.setdefault((s.new_province_id, "2025"), []).append(c)
    for (unit_id, tree), members in by_key.items():
        yield _describe_unit(unit_id, tree, tuple(members))


def _describe_unit(unit_id: str, tree: str, members: tuple[Commune, ...]) -> _Unit:
    s = members[0].site
    if unit_id.startswith("P"):
        name = s.province_name if tree == "legacy" else s.new_province_name
        return _Unit(unit_id, tree, name, members, "province", "Ban Tổ chức Trung ương")
    if tree == "legacy":
        return _Unit(unit_id, tree, s.name, members, "commune", _committee(s.district_name))
    return _Unit(unit_id, tree, s.new_name, members, "commune", _committee(s.new_province_name))


def _unit_targets(rng: random.Random, unit: _Unit, year: int) -> list[Target]:
    expected = sum(c.expected(year, planned=True) for c in unit.communes)
    resolution = _target(rng, unit, year, "resolution", expected, _RESOLUTION_BAND)
    assigned = _target(rng, unit, year, "assigned", expected, _ASSIGNED_BAND)
    out = [resolution, assigned]
    if unit.level == "commune" and rng.random() < P_REVISED:
        out.append(_revision(rng, assigned, unit.tree))
    if unit.level == "province":
        private = sum(c.expected_private_sector(year) for c in unit.communes)
        doc = resolution.source_doc
        value = max(1, round(private * rng.uniform(0.9, 1.25)))
        out.append(
            Target(unit.id, unit.tree, year, "resolution", value, resolution.moment, doc, "private_sector")
        )
    return out


def _target(
    rng: random.Random, unit: _Unit, year: int, kind: str, expected: float, band: tuple[float, float]
) -> Target:
    value = max(1, round(expected * rng.uniform(*band)))
    moment = _when(rng, unit.tree, year, f"{unit.level}-{kind}")
    return Target(unit.id, unit.tree, year, kind, value, moment, _document(rng, unit, kind, moment))


def _revision(rng: random.Random, target: Target, tree: str) -> Target:
    """A quota adjusted mid-year [điều chỉnh chỉ tiêu]; legacy quotas only before the reform."""
    moment = clock.off_sunday(target.moment + rng.randint(120, 200) * clock.MINUTES_PER_DAY)
    if tree == "legacy" and moment >= clock.at(date(REFORM_YEAR, 7, 1)):
        moment = clock.at(date(REFORM_YEAR, 6, 25), 9 * 60)
    if clock.year_of(moment) > target.year:
        moment = clock.at(date(target.year, 12, 10), 9 * 60)
    value = max(1, target.value + rng.choice((-2, -1, 1, 2)))
    doc = f"{target.source_doc} (điều chỉnh)"
    return Target(target.unit_id, target.tree, target.year, target.kind, value, moment, doc)


_WINDOWS: Final = {
    "national": ((12, 1), (12, 15), -1),
    "province-resolution": ((12, 1), (12, 20), -1),
    "province-assigned": ((12, 20), (12, 31), -1),
    "commune-resolution": ((12, 10), (12, 28), -1),
    "commune-assigned": ((1, 5), (2, 25), 0),
}


def _when(rng: random.Random, tree: str, year: int, what: str) -> int:
    """When a target is adopted: around the turn of the year, or Jul-Aug 2025 for 2025 units' 2025 targets."""
    if tree == "2025" and year == REFORM_YEAR:
        first, last = clock.day_index(date(2025, 7, 10)), clock.day_index(date(2025, 8, 31))
    else:
        (m1, d1), (m2, d2), shift = _WINDOWS[what]
        first = clock.day_index(date(year + shift, m1, d1))
        last = clock.day_index(date(year + shift, m2, d2))
    day = rng.randint(first, last)
    return clock.off_sunday(day * clock.MINUTES_PER_DAY + rng.randrange(8 * 60, 16 * 60, 15))


def _document(rng: random.Random, unit: _Unit, kind: str, moment: int) -> str:
    day = clock.day_of(moment // clock.MINUTES_PER_DAY)
    n = rng.randint(1, 150)
    if kind == "assigned":
        return f"Kế hoạch số {n}-KH ngày {day:%d/%m/%Y} của {unit.assigner}"
    prefix, place = split_name(unit.name)
    owner = _committee(unit.name) if unit.level == "province" else f"Đảng ủy {prefix.lower()} {place}"
    return f"Nghị quyết số {n}-NQ ngày {day:%d/%m/%Y} của {owner}"


def _committee(name: str) -> str:
    """The party committee of a district or province: "Huyện ủy Đầm Hà", "Tỉnh ủy Quảng Ninh"."""
    for prefix, committee in (
        ("Thành phố", "Thành ủy"),
        ("Thị xã", "Thị ủy"),
        ("Tỉnh", "Tỉnh ủy"),
        ("Quận", "Quận ủy"),
        ("Huyện", "Huyện ủy"),
    ):
        if name.startswith(prefix + " "):
            return f"{committee} {name[len(prefix) + 1 :]}"
    return f"Đảng ủy {name}"


def _congress(year: int) -> str:
    number = "XII" if year <= 2020 else "XIII" if year <= 2025 else "XIV"
    return f"Nghị quyết Đại hội đại biểu toàn quốc lần thứ {number} của Đảng"
