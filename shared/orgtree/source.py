"""Reading the official unit lists shipped in the `vietnamadminunits` package.

Only the data files are read (`data/dataset.db`, `data/converter_2025.json`);
the package itself is never imported, because importing it loads its address
parser (shapely, several MB of JSON: about a second and 40 MB) which the trees
do not need. Nothing here is hand-typed unit data: every name, code and key
comes from those files.

Keys are the package's own: `provinceKey`, `districtKey`, `wardKey` columns, and
the converter's old-unit key `"<provinceKey>_<districtKey>_<wardKey>"` (the ward
part empty for the island districts, which have no ward).
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

PACKAGE = "vietnamadminunits"


class LegacyRow(NamedTuple):
    """One row of `admin_units_legacy`: a ward, or an island district (ward fields None)."""

    province_code: str
    province: str
    province_key: str
    district_code: str
    district: str
    district_key: str
    ward_code: str | None
    ward: str | None
    ward_key: str | None


class Row2025(NamedTuple):
    """One row of `admin_units`: a 2025 commune, ward or special zone [đặc khu]."""

    province_code: str
    province: str
    province_key: str
    ward_code: str
    ward: str
    ward_key: str


NewWard = tuple[str, str]
"""(new provinceKey, new wardKey): ward keys repeat across provinces, so both are needed."""


class Candidate(NamedTuple):
    """A 2025 ward that receives part of a divided legacy ward."""

    province_key: str
    ward_key: str
    is_default: bool


@dataclass(frozen=True, slots=True)
class Converter:
    """The 2025 old-to-new mapping (`converter_2025.json`), keyed by old-unit key."""

    provinces: Mapping[str, str]
    """old provinceKey -> new provinceKey (DICT_PROVINCE, inverted)"""
    undivided: Mapping[str, tuple[NewWard, ...]]
    """old key -> the new wards listing it whole (DICT_PROVINCE_WARD_NO_DIVIDED, inverted)"""
    divided: Mapping[str, tuple[Candidate, ...]]
    """old key -> the new wards sharing it (DICT_PROVINCE_WARD_DIVIDED)"""


@dataclass(frozen=True, slots=True)
class Source:
    legacy: tuple[LegacyRow, ...]
    v2025: tuple[Row2025, ...]
    converter: Converter


_LEGACY_SQL = (
    "SELECT provinceCode, province, provinceKey, districtCode, district, districtKey,"
    " wardCode, ward, wardKey FROM admin_units_legacy"
)
_2025_SQL = "SELECT provinceCode, province, provinceKey, wardCode, ward, wardKey FROM admin_units"


def data_dir() -> Path:
    """The package's `data/` directory, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {PACKAGE} package is not installed; it ships the official unit lists")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_source(directory: Path | None = None) -> Source:
    """Read both unit tables (only the needed columns) and the 2025 converter."""
    directory = data_dir() if directory is None else directory
    uri = (directory / "dataset.db").resolve().as_uri() + "?mode=ro&immutable=1"
    with sqlite3.connect(uri, uri=True) as conn:
        legacy = tuple(map(LegacyRow._make, conn.execute(_LEGACY_SQL)))
        v2025 = tuple(map(Row2025._make, conn.execute(_2025_SQL)))
    conn.close()  # the context manager only ends the transaction
    raw = json.loads((directory / "converter_2025.json").read_bytes())
    return Source(legacy, v2025, parse_converter(raw))


def parse_converter(raw: Mapping[str, Any]) -> Converter:
    """Invert the converter's new->old lists into old-key lookups (duplicates kept, to be judged)."""
    provinces = {old: new for new, olds in raw["DICT_PROVINCE"].items() for old in olds}
    undivided: dict[str, list[NewWard]] = {}
    for new_province, wards in raw["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_ward, old_keys in wards.items():
            for old_key in old_keys:
                undivided.setdefault(old_key, []).append((new_province, new_ward))
    divided: dict[str, list[Candidate]] = {}
    for new_province, olds in raw["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old_key, candidates in olds.items():
            divided.setdefault(old_key, []).extend(
                Candidate(new_province, c["newWardKey"], bool(c["isDefaultNewWard"])) for c in candidates
            )
    return Converter(
        provinces=provinces,
        undivided={key: tuple(wards) for key, wards in undivided.items()},
        divided={key: tuple(cands) for key, cands in divided.items()},
    )
