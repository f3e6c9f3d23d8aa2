"""Building both trees and the crosswalk from the official rows (pure: no I/O).

Ids: `VN`; province `P` + provinceCode; district `D` + districtCode; commune
`C` + wardCode, exactly as the tables give them (zero-padded text).

Crosswalk rules for each attachable legacy unit (commune, or island district):
1. listed under exactly one 2025 ward in the converter's undivided lists: that ward;
2. otherwise a divided ward [xã bị chia tách] with exactly one default new ward:
   the default (recorded in `OrgTrees.divided`);
3. the 2025 ward must exist in `admin_units` and lie in the 2025 successor of
   the legacy province.
Anything else is a crosswalk exception, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from shared.orgtree.model import ROOT_ID, Level, OrgTree, OrgTrees, Unit
from shared.orgtree.source import Converter, LegacyRow, NewWard, Row2025, Source

ROOT_NAME = "Việt Nam"


class _NoHomeError(Exception):
    """A legacy unit the converter does not place in exactly one 2025 commune."""


def build_org_trees(source: Source) -> OrgTrees:
    """Both trees and the crosswalk; ValueError if the data breaks a tree invariant."""
    legacy, old_keys = build_legacy(source.legacy)
    v2025, new_ids = build_2025(source.v2025)
    new_provinces = {row.province_key: f"P{row.province_code}" for row in source.v2025}
    crosswalk: dict[str, str] = {}
    exceptions: dict[str, str] = {}
    divided: set[str] = set()
    for old_key, (old_id, old_province) in old_keys.items():
        if not legacy.attachable(old_id):
            continue
        try:
            new_ward, was_divided = _home(old_key, source.converter)
            crosswalk[old_id] = _check_home(new_ward, old_province, source.converter, new_ids, new_provinces)
        except _NoHomeError as no_home:
            exceptions[old_id] = str(no_home)
            continue
        if was_divided:
            divided.add(old_id)
    return OrgTrees(
        legacy=legacy,
        v2025=v2025,
        crosswalk=MappingProxyType(crosswalk),
        crosswalk_exceptions=MappingProxyType(exceptions),
        divided=frozenset(divided),
    )


def build_legacy(rows: Iterable[LegacyRow]) -> tuple[OrgTree, dict[str, tuple[str, str]]]:
    """The legacy tree, and converter old key -> (legacy id, old provinceKey)."""
    units: dict[str, Unit] = {ROOT_ID: Unit(ROOT_ID, ROOT_NAME, "national", "legacy", None)}
    keys: dict[str, tuple[str, str]] = {}
    for row in rows:
        province_id, district_id = f"P{row.province_code}", f"D{row.district_code}"
        _add(units, province_id, row.province, "province", ROOT_ID)
        _add(units, district_id, row.district, "district", province_id)
        if row.ward_code is None or row.ward is None:  # an island district with no ward
            keys[f"{row.province_key}_{row.district_key}_"] = (district_id, row.province_key)
            continue
        commune_id = f"C{row.ward_code}"
        _add(units, commune_id, row.ward, "commune", district_id)
        keys[f"{row.province_key}_{row.district_key}_{row.ward_key}"] = (commune_id, row.province_key)
    return OrgTree("legacy", units.values()), keys


def build_2025(rows: Iterable[Row2025]) -> tuple[OrgTree, dict[NewWard, str]]:
    """The 2025 tree, and (new provinceKey, new wardKey) -> 2025 commune id."""
    units: dict[str, Unit] = {ROOT_ID: Unit(ROOT_ID, ROOT_NAME, "national", "2025", None)}
    ids: dict[NewWard, str] = {}
    for row in rows:
        province_id, commune_id = f"P{row.province_code}", f"C{row.ward_code}"
        _add(units, province_id, row.province, "province", ROOT_ID)
        _add(units, commune_id, row.ward, "commune", province_id)
        ids[(row.province_key, row.ward_key)] = commune_id
    return OrgTree("2025", units.values()), ids


def _add(units: dict[str, Unit], unit_id: str, name: str, level: Level, parent_id: str) -> None:
    """Add a unit once; rows repeat their parents, which must then agree with the first sighting."""
    known = units.get(unit_id)
    if known is None:
        # Built only when new: a frozen dataclass costs ~1 µs to construct, rows repeat parents 10,000 times.
        units[unit_id] = Unit(unit_id, name, level, units[ROOT_ID].tree, parent_id)
    elif (known.name, known.level, known.parent_id) != (name, level, parent_id):
        raise ValueError(f"{unit_id} is both {known} and {name!r} {level} under {parent_id}")


def _home(old_key: str, converter: Converter) -> tuple[NewWard, bool]:
    """The new ward the converter assigns, and whether the old ward was divided."""
    whole = converter.undivided.get(old_key, ())
    shares = converter.divided.get(old_key, ())
    if whole and shares:
        raise _NoHomeError("converter lists it both as undivided and as divided")
    if len(whole) > 1:
        raise _NoHomeError(f"converter lists it whole under {len(whole)} new wards: {_keys(whole)}")
    if whole:
        return whole[0], False
    if not shares:
        raise _NoHomeError("absent from the 2025 converter (converter_2025.json)")
    defaults = [(c.province_key, c.ward_key) for c in shares if c.is_default]
    if len(defaults) != 1:
        raise _NoHomeError(
            f"divided across {_keys((c.province_key, c.ward_key) for c in shares)}"
            f" with {len(defaults)} default new wards"
        )
    return defaults[0], True


def _check_home(
    new_ward: NewWard,
    old_province: str,
    converter: Converter,
    new_ids: Mapping[NewWard, str],
    new_provinces: Mapping[str, str],
) -> str:
    """The 2025 commune id of `new_ward`, if it exists and lies where the province went."""
    new_id = new_ids.get(new_ward)
    if new_id is None:
        raise _NoHomeError(f"converter names {_keys([new_ward])}, which admin_units does not list")
    successor = converter.provinces.get(old_province)
    if successor != new_ward[0]:
        raise _NoHomeError(
            f"converter puts it in {new_ward[0]}, but its province {old_province}"
            f" became {successor} ({new_provinces.get(successor or '', 'unknown')})"
        )
    return new_id


def _keys(wards: Iterable[NewWard]) -> str:
    return ", ".join(f"{province}/{ward}" for province, ward in wards)
