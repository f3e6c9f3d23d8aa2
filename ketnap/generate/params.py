"""The figures that make the synthetic feed look like the real one.

Calibrated on the national volume first: Vietnam admits about 200,000 new members
[đảng viên mới] a year (2021-2024). The seed articles give its shape: 56,370
nationally in the first half of 2021 alone, the Tết-quiet half (5,248,600 members
then); a province admitting 1,700-1,900 a year (Ninh Bình 1,749, Phú Thọ 1,814 in
2021, Yên Bái's resolution "over 1,800, of which 180 from private enterprises");
3-5 outstanding citizens [quần chúng ưu tú] trained for every 1-2 admitted; a
commune of 16-17 branches [chi bộ] mostly residential (Hợp Thành: 12 residential,
3 schools, 1 police). The communes the articles quote as struggling admit 6-9 a
year (Hợp Thành's resolution "6 or more", upland Quảng An 9 of 9); they sit in the
lower part of the spread, while wards with agencies, schools, enterprises, police
and army units admit far more. Every admission is counted in a commune's branches
here, so nationally: 10,039 communes x ~20 a year = ~200,000 admissions a year,
about 2 million events in a national year."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from shared.events import BranchKind, DropReason

K = BranchKind

BRANCHES_PER_COMMUNE: Final = (8, 20)
"""Every commune has 8 to 20 branches, residential ones making up the rest."""
MIN_RESIDENTIAL: Final = 4

OTHER_KIND_COUNTS: Final = MappingProxyType(
    {
        K.AGENCY: ((1, 0.55), (2, 0.45)),
        K.SCHOOL: ((0, 0.2), (1, 0.45), (2, 0.3), (3, 0.05)),
        K.ENTERPRISE: ((0, 0.45), (1, 0.3), (2, 0.2), (3, 0.05)),
        K.POLICE: ((0, 0.3), (1, 0.7)),
        K.MILITARY: ((0, 0.6), (1, 0.4)),
        K.OTHER: ((0, 0.7), (1, 0.3)),
    }
)
"""(count, probability) of each non-residential kind in a commune. Expected shares
of all branches: residential ~65%, agency ~10%, school ~9%, enterprise ~6%,
police ~5%, military ~3%, other ~2%."""

ADMISSIONS_PER_BRANCH_YEAR: Final = MappingProxyType(
    {
        K.RESIDENTIAL: 0.95,
        K.AGENCY: 1.6,
        K.SCHOOL: 2.45,
        K.ENTERPRISE: 2.3,
        K.POLICE: 2.6,
        K.MILITARY: 2.8,
        K.OTHER: 1.05,
    }
)
"""Expected admissions per branch and year before the commune's own factor:
about 20 for an average commune, 8-9 of them in residential branches (the
national ~200,000 spread over ~10,000 communes; see the module note)."""

HIGH_SCHOOL_ADMISSIONS_PER_YEAR: Final = 5.0
"""A high school [THPT] branch admits its best final-year students [học sinh lớp 12]."""
P_HIGH_SCHOOL_FIRST: Final = 0.3
"""Share of communes (with a school branch) whose first school is a high school."""

COMMUNE_SPREAD: Final = 0.4
"""Sigma of the log-normal performance of a commune: the median commune admits
about 10 a year, a few twice the average, some half of it."""
PLANNING_NOISE: Final = 0.12
"""Sigma of the log-normal error in what the commune's planners expect of it."""

YEAR_FACTOR: Final = MappingProxyType(
    {2019: 0.95, 2020: 0.94, 2021: 0.98, 2022: 1.0, 2023: 1.02, 2024: 1.03, 2025: 0.97, 2026: 1.0}
)
"""National rhythm (COVID-19 in 2020-2021, the 2025 reorganisation); 1.0 for other years."""

SOURCING_SEASON: Final = (0.85, 0.6, 1.1, 1.1, 1.05, 1.0, 1.0, 1.0, 1.1, 1.1, 1.05, 1.05)
"""Relative sourcing per month, January first: Tết (Jan-Feb) is quiet."""

REFORM_PAUSE: Final = ((2025, 6, 20), (2025, 7, 31), (20, 45))
"""Admissions that would fall between these dates wait 20-45 days: the new
communes' party committees [đảng ủy xã mới] were being formed."""

# Pipeline: days between milestones, as (low, high) of a uniform draw.
DAYS_TO_CLASS: Final = (20, 150)  # awareness class [lớp bồi dưỡng nhận thức về Đảng]
DAYS_TO_VERIFIED: Final = (30, 180)  # background verification [thẩm tra lý lịch] is the slow step
DAYS_TO_ADMITTED: Final = (7, 75)
PROBATION_DAYS: Final = (365, 425)  # 12 months, recognition [công nhận chính thức] often a little late
EARLY_CONFIRMATION_DAYS: Final = (330, 364)
P_EARLY_CONFIRMATION: Final = 0.003
"""A few confirmations come before the 12 months are up (flagged ``probation_too_short``)."""

P_DROP_BEFORE_CLASS: Final = 0.20
P_DROP_AFTER_CLASS: Final = 0.30
P_STALL: Final = 0.10
"""Share of candidates past the class who simply stay in the pool: no event ever again."""
P_DROP_AFTER_VERIFIED: Final = 0.07
P_NOT_RECOGNISED: Final = 0.012
P_DECEASED_ON_PROBATION: Final = 0.001
P_TRANSFER: Final = 0.006
"""Candidates who move to another branch of the same commune before admission."""

ADMIT_PROBABILITY: Final = (
    (1 - P_DROP_BEFORE_CLASS) * (1 - P_DROP_AFTER_CLASS) * (1 - P_STALL) * (1 - P_DROP_AFTER_VERIFIED)
)
"""P(admitted | sourced) = 0.469: about 2.1 sourced for each admission."""

DROP_DAYS: Final = MappingProxyType(
    {"before_class": (15, 120), "after_class": (10, 120), "after_verified": (5, 60)}
)
DROP_REASONS: Final = MappingProxyType(
    {
        "before_class": ((DropReason.MOVED_AWAY, 0.5), (DropReason.DECLINED, 0.35), (DropReason.OTHER, 0.15)),
        "after_class": (
            (DropReason.INELIGIBLE, 0.45),
            (DropReason.MOVED_AWAY, 0.35),
            (DropReason.DECLINED, 0.15),
            (DropReason.OTHER, 0.05),
        ),
        "after_verified": (
            (DropReason.INELIGIBLE, 0.7),
            (DropReason.DECLINED, 0.2),
            (DropReason.DECEASED, 0.02),
            (DropReason.OTHER, 0.08),
        ),
    }
)
"""Why candidates leave the pipeline at each stage: young people working far away
[đi làm ăn xa], education or background not meeting the standard [không đủ điều kiện]."""

P_FEMALE: Final = MappingProxyType(
    {
        K.RESIDENTIAL: 0.46,
        K.AGENCY: 0.5,
        K.SCHOOL: 0.65,
        K.ENTERPRISE: 0.45,
        K.POLICE: 0.15,
        K.MILITARY: 0.05,
        K.OTHER: 0.5,
    }
)
AGE_AT_SOURCING: Final = MappingProxyType(
    {
        K.RESIDENTIAL: (18, 40, 23),
        K.AGENCY: (22, 38, 26),
        K.SCHOOL: (22, 38, 25),
        K.ENTERPRISE: (20, 40, 25),
        K.POLICE: (20, 35, 25),
        K.MILITARY: (19, 32, 23),
        K.OTHER: (20, 45, 30),
    }
)
"""(low, high, mode) of a triangular draw; students of a THPT school branch are 17."""

P_STUDENT_AT_HIGH_SCHOOL: Final = 0.6
"""Share of a high-school [THPT] branch's candidates who are its students."""
P_YOUTH_UNION_UP_TO_30: Final = 0.95
P_UNIVERSITY_STUDENT: Final = 0.25  # residential candidates aged 18-22 at university or college
P_PRIVATE_SECTOR: Final = MappingProxyType({K.ENTERPRISE: 0.9, K.RESIDENTIAL: 0.06, K.OTHER: 0.2})
P_BUSINESS_OWNER: Final = MappingProxyType({K.ENTERPRISE: 0.04, K.RESIDENTIAL: 0.008})
P_DEMOBILIZED: Final = MappingProxyType({K.RESIDENTIAL: 0.22, K.MILITARY: 0.35, K.POLICE: 0.1})
"""Among men aged 21-30 (young men back from military service [quân nhân xuất ngũ])."""

ETHNIC_MINORITY_SHARE: Final = MappingProxyType(
    {
        "P02": 0.88,
        "P04": 0.9,
        "P06": 0.85,
        "P08": 0.52,
        "P10": 0.65,
        "P11": 0.82,
        "P12": 0.85,
        "P14": 0.82,
        "P15": 0.5,
        "P17": 0.72,
        "P19": 0.28,
        "P20": 0.82,
        "P22": 0.12,
        "P24": 0.12,
        "P25": 0.15,
        "P38": 0.15,
        "P40": 0.13,
        "P44": 0.05,
        "P49": 0.1,
        "P51": 0.11,
        "P54": 0.06,
        "P56": 0.07,
        "P58": 0.22,
        "P60": 0.05,
        "P62": 0.52,
        "P64": 0.45,
        "P66": 0.33,
        "P67": 0.32,
        "P68": 0.24,
        "P70": 0.17,
        "P84": 0.31,
        "P91": 0.13,
        "P94": 0.34,
        "P95": 0.09,
    }
)
"""Approximate share of ethnic minorities [đồng bào dân tộc thiểu số] in a legacy
province's population (keys are legacy province ids); 2% elsewhere."""
DEFAULT_ETHNIC_SHARE: Final = 0.02
RELIGIOUS_SHARE: Final = (0.015, 0.15, 0.08)
"""Believers' share in an ordinary commune, in a commune with a large parish
[vùng giáo], and the share of communes that have one."""
