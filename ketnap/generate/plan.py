"""Which communes the feed covers: all of them, or a deterministic sample spread over provinces.

Sampling is systematic over the attachable legacy units ordered by province
(and by a seeded hash inside each province): every province gets its share of
``scale`` to within one commune, and a tiny scale still touches far-apart
provinces. Sites are then grouped by their 2025 province [tỉnh mới], which
always holds whole legacy provinces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from ketnap.generate.seeding import rng_for
from shared.orgtree import OrgTrees, Unit

EXCLUDED: Final = frozenset({"D498"})
"""Huyện Hoàng Sa: an island district with no resident population or party organisation."""


@dataclass(frozen=True, slots=True)
class Site:
    """One legacy commune (or island district) and its place in both trees."""

    legacy_id: str
    name: str
    district_id: str
    district_name: str
    province_id: str
    province_name: str
    new_id: str
    new_name: str
    new_province_id: str
    new_province_name: str


@dataclass(frozen=True, slots=True)
class Group:
    """The sites of one 2025 province, ordered by legacy province, district and id."""

    province_id: str
    name: str
    sites: tuple[Site, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    groups: tuple[Group, ...]

    def sites(self) -> Iterator[Site]:
        for group in self.groups:
            yield from group.sites

    def __len__(self) -> int:
        return sum(len(g.sites) for g in self.groups)


def make_plan(trees: OrgTrees, seed: int, scale: float) -> Plan:
    """The sampled sites, grouped by 2025 province (sorted by id)."""
    chosen = [_site(trees, unit) for unit in sample(trees, candidate_units(trees), seed, scale)]
    by_group: dict[str, list[Site]] = {}
    for site in chosen:
        by_group.setdefault(site.new_province_id, []).append(site)
    return Plan(
        tuple(
            Group(pid, trees.v2025.unit(pid).name, tuple(sorted(sites, key=_site_order)))
            for pid, sites in sorted(by_group.items())
        )
    )


def candidate_units(trees: OrgTrees) -> list[Unit]:
    """Attachable legacy units with a 2025 home, in tree order."""
    legacy = trees.legacy
    return [
        u
        for u in legacy.units()
        if legacy.attachable(u.id) and u.id not in EXCLUDED and trees.to_2025(u.id) is not None
    ]


def sample(trees: OrgTrees, units: list[Unit], seed: int, scale: float) -> list[Unit]:
    """Systematic sample of ``round(scale * len(units))`` units (at least one), spread over provinces."""
    if scale >= 1:
        return list(units)
    ordered = sorted(units, key=lambda u: (trees.legacy.province_of(u.id), _hash(seed, u.id)))
    count = max(1, round(scale * len(ordered)))
    step = len(ordered) / count
    offset = rng_for(seed, "sample").random() * step
    return [ordered[int(offset + i * step)] for i in range(count)]


def _hash(seed: int, unit_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}|{unit_id}".encode(), digest_size=8).digest()


def _site(trees: OrgTrees, unit: Unit) -> Site:
    legacy, new = trees.legacy, trees.v2025
    district = legacy.unit(unit.parent_id or "") if unit.level == "commune" else unit
    province = legacy.unit(legacy.province_of(unit.id))
    new_id = trees.to_2025(unit.id) or ""
    new_province = new.unit(new.province_of(new_id))
    return Site(
        unit.id,
        unit.name,
        district.id,
        district.name,
        province.id,
        province.name,
        new_id,
        new.unit(new_id).name,
        new_province.id,
        new_province.name,
    )


def _site_order(site: Site) -> tuple[str, str, str]:
    return site.province_id, site.district_id, site.legacy_id
