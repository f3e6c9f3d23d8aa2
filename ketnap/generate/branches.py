"""The branches [chi bộ] of a commune: how many of each kind, and their Vietnamese names.

Invariants: 8 to 20 branches, at least 4 residential; ids ``B-<legacy commune
id>-<nn>`` numbered from 01, residential first; names as a commune's party
committee writes them ("Chi bộ thôn 3", "Chi bộ tổ dân phố số 5", "Chi bộ Công an
xã Quảng An", "Chi bộ Trường THCS Quảng An").
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from ketnap.generate import params
from shared.events import BranchKind

K = BranchKind
_PREFIXES: Final = ("Thị trấn", "Đặc khu", "Phường", "Huyện", "Xã")
_VILLAGE_STEMS: Final = (
    "Tân Lập",
    "Đông Hòa",
    "Tây Sơn",
    "Phú Thịnh",
    "An Bình",
    "Hòa Bình",
    "Trung Tâm",
    "Quyết Tiến",
    "Thắng Lợi",
    "Đoàn Kết",
    "Tiền Phong",
    "Thống Nhất",
    "Bình Minh",
    "Phú Lộc",
    "Tân Tiến",
    "Đồng Tâm",
    "Hưng Thịnh",
    "Minh Khai",
    "Quang Trung",
    "Nam Sơn",
)
_SCHOOLS: Final = ("Trường Tiểu học", "Trường THCS", "Trường Mầm non", "Trường THPT")
_FIRMS: Final = (
    "Công ty TNHH Thành Công",
    "Công ty Cổ phần Hưng Phát",
    "Công ty TNHH May Minh Phát",
    "Hợp tác xã Nông nghiệp",
    "Công ty Cổ phần Xây dựng Đại Thành",
    "Công ty TNHH Thương mại Phú Gia",
)
_OTHERS: Final = ("Bưu điện", "Ban Quản lý chợ", "Quỹ Tín dụng nhân dân")
HIGH_SCHOOL: Final = "Trường THPT"


@dataclass(frozen=True, slots=True)
class Branch:
    """A party branch and its expected admissions a year before the commune's factor."""

    id: str
    name: str
    kind: BranchKind
    rate: float

    @property
    def is_high_school(self) -> bool:
        return HIGH_SCHOOL in self.name


def split_name(name: str) -> tuple[str, str]:
    """``"Xã Quảng An"`` -> (``"Xã"``, ``"Quảng An"``)."""
    for prefix in _PREFIXES:
        if name.startswith(prefix + " "):
            return prefix, name[len(prefix) + 1 :]
    return "", name


def kinds(rng: random.Random) -> list[BranchKind]:
    """The kinds of a commune's branches, residential first (8 to 20 in all)."""
    others: list[BranchKind] = []
    for kind, weights in params.OTHER_KIND_COUNTS.items():
        counts, probabilities = zip(*weights, strict=True)
        others += [kind] * rng.choices(counts, probabilities)[0]
    low, high = params.BRANCHES_PER_COMMUNE
    residential = max(params.MIN_RESIDENTIAL, rng.randint(low, high) - len(others))
    return [K.RESIDENTIAL] * residential + others


def make_branches(rng: random.Random, legacy_id: str, commune_name: str) -> tuple[Branch, ...]:
    """A commune's branches with ids, names and base rates."""
    names = _Namer(rng, commune_name)
    out = []
    for n, kind in enumerate(kinds(rng), start=1):
        name = names.next(kind)
        rate = params.ADMISSIONS_PER_BRANCH_YEAR[kind]
        if HIGH_SCHOOL in name:
            rate = params.HIGH_SCHOOL_ADMISSIONS_PER_YEAR
        out.append(Branch(f"B-{legacy_id}-{n:02d}", name, kind, rate))
    return tuple(out)


class _Namer:
    """Names in a commune's own style: villages [thôn] in a xã, street groups [tổ dân phố] in a phường."""

    def __init__(self, rng: random.Random, commune_name: str) -> None:
        self.rng = rng
        prefix, self.place = split_name(commune_name)
        self.local = f"{prefix.lower()} {self.place}".strip()
        self.village = {"Phường": "tổ dân phố số", "Thị trấn": "khu"}.get(prefix, "thôn")
        self.stems = rng.sample(_VILLAGE_STEMS, len(_VILLAGE_STEMS))
        self.named = rng.random() < 0.3 and self.village == "thôn"
        self.schools = list(_SCHOOLS)
        if rng.random() < params.P_HIGH_SCHOOL_FIRST:
            self.schools.remove(HIGH_SCHOOL)
            self.schools.insert(0, HIGH_SCHOOL)
        self.seen: dict[BranchKind, int] = {}

    def next(self, kind: BranchKind) -> str:
        n = self.seen[kind] = self.seen.get(kind, 0) + 1
        if kind == K.RESIDENTIAL:
            return self._residential(n)
        if kind == K.AGENCY:
            return f"Chi bộ Cơ quan {self.local}" if n == 1 else f"Chi bộ Trạm Y tế {self.local}"
        if kind == K.SCHOOL:
            return f"Chi bộ {self.schools[(n - 1) % len(self.schools)]} {self.place}"
        if kind == K.ENTERPRISE:
            return f"Chi bộ {self._firm(n)}"
        if kind == K.POLICE:
            return f"Chi bộ Công an {self.local}"
        if kind == K.MILITARY:
            return f"Chi bộ Quân sự {self.local}"
        return f"Chi bộ {self.rng.choice(_OTHERS)} {self.place}"

    def _residential(self, n: int) -> str:
        if self.named and n <= len(self.stems):
            return f"Chi bộ thôn {self.stems[n - 1]}"
        return f"Chi bộ {self.village} {n}"

    def _firm(self, n: int) -> str:
        firm = self.rng.choice(_FIRMS)
        return f"{firm} {self.place}" if firm.startswith("Hợp tác xã") else f"{firm} {n}"
