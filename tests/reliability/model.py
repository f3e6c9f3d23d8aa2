"""The pure side of the reliability campaign: a deterministic world, its event feed, the expected figures.

Nothing here does I/O. ``World`` is a few real provinces of the legacy tree with
branches [chi bộ] in real communes (their 2025 commune from the official
crosswalk, so both trees place every branch). ``candidate_stories`` walks
candidates through the pipeline [quần chúng ưu tú -> đảng viên] in 2023-2024 as
CloudEvents: valid histories only (some dropped, transferred or voided), so no
good event is ever rejected and anything that goes missing is a loss.

``Model`` is the expectation: the quota service's own pure domain
(``services.quota.domain.replay``) over the *accepted* events, summed per tally
key, then per year and per org unit. The invariants the scenarios check:

- lost = Σ max(0, expected - observed) and double-counted = Σ max(0, observed -
  expected) over every (branch, year, metric, ``all``) tally: each counted event
  adds exactly one there, so these count events;
- a rollup equals the sum of its children plus its unmapped, and equals the model.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from services.quota.domain import CandidateEvent, from_cloudevent, replay
from shared.orgtree import OrgTrees, TreeVersion, load_org_trees

VN = timezone(timedelta(hours=7))
PROVINCES = ("P01", "P10", "P22")  # legacy Hà Nội, Lào Cai, Quảng Ninh
UNMERGED = ("P01", "P04", "P11", "P12", "P14", "P20", "P22", "P38", "P40", "P42", "P46")
"""Legacy provinces that are their own, whole 2025 province: scenarios sharing one cluster take
disjoint sets of these, so that no province rollup of one scenario holds another's counts."""
MILESTONES = ("sourced", "class_completed", "dossier_verified", "admitted", "confirmed")
CATEGORIES = ("student", "private_sector", "business_owner", "ethnic_minority", "religious", "youth_union")
LAST_LEGACY_DAY = datetime(2025, 6, 30, 12, tzinfo=VN)
REGISTERED_AT = datetime(2020, 1, 1, 8, tzinfo=VN)
NATIONAL_TOKEN = "rel-national-token-0123456789abcdef"
TallyKey = tuple[str, date, str, str]  # branch, local date, metric, category
YearKey = tuple[str, int, str, str]  # branch, year, metric, category
Event = dict[str, Any]


def province_token(province: str, tree: TreeVersion = "legacy") -> str:
    """The token of one province of one tree (``KETNAP_TOKENS`` entry ``<tree>:<province>``)."""
    return f"rel-{tree}-{province.lower()}-token-0123456789abcdef"


def every_token() -> dict[str, list[str]]:
    """``KETNAP_TOKENS`` with the national token and one token per province of each tree."""
    org = load_org_trees()
    tokens = {NATIONAL_TOKEN: ["*"]}
    trees: tuple[TreeVersion, ...] = ("legacy", "2025")
    for tree in trees:
        for unit in org[tree].units("province"):
            tokens[province_token(unit.id, tree)] = [f"{tree}:{unit.id}"]
    return tokens


def cloudevent(
    kind: str,
    data: dict[str, Any],
    time: datetime,
    *,
    subject: str | None = None,
    event_id: str | None = None,
) -> Event:
    """One CloudEvent as a provincial deployment sends it (no ``recordedtime``: the intake adds it)."""
    event: Event = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "/deployments/reliability",
        "type": f"vn.ketnap.{kind}",
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        event["subject"] = subject
    return event


@dataclass(frozen=True, slots=True)
class Branch:
    id: str
    province: str  # legacy province
    district: str
    commune: str  # legacy commune
    commune_2025: str
    province_2025: str


@dataclass(frozen=True)
class World:
    """Provinces, their branches and the tokens that may write for them."""

    provinces: tuple[str, ...]
    branches: tuple[Branch, ...]

    def of(self, province: str) -> list[Branch]:
        return [b for b in self.branches if b.province == province]

    @property
    def communes(self) -> list[str]:
        return sorted({b.commune for b in self.branches})

    def tokens(self) -> dict[str, list[str]]:
        """``KETNAP_TOKENS``: a national token and one per legacy province (``legacy:Pxx``)."""
        return {NATIONAL_TOKEN: ["*"], **{province_token(p): [f"legacy:{p}"] for p in self.provinces}}

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(b.id for b in self.branches)

    def registrations(self) -> list[Event]:
        return [
            cloudevent(
                "org.branch_registered",
                {
                    "branch_id": b.id,
                    "name": f"Chi bộ {b.id}",
                    "kind": "residential",
                    "parents": {"legacy": b.commune, "2025": b.commune_2025},
                },
                REGISTERED_AT,
                event_id=f"reg-{b.id}",
            )
            for b in self.branches
        ]

    def targets(self, years: Sequence[int] = (2023, 2024)) -> list[Event]:
        """A resolution target per province and year (reference traffic beside the registrations)."""
        return [
            cloudevent(
                "target.set",
                {"unit_id": p, "tree": "legacy", "year": y, "kind": "resolution", "value": 100},
                datetime(y, 1, 2, 8, tzinfo=VN),
                event_id=f"target-{p}-{y}",
            )
            for p in self.provinces
            for y in years
        ]


def make_world(
    provinces: Sequence[str] = PROVINCES,
    communes_per_province: int = 4,
    branches_per_commune: int = 2,
    tag: str = "",
) -> World:
    """Deterministic: communes spread over each province, all with a 2025 home; ``tag`` marks the ids."""
    org = load_org_trees()
    branches = []
    for province in provinces:
        for commune in _communes(org, province, communes_per_province):
            new = org.to_2025(commune)
            assert new is not None
            for n in range(branches_per_commune):
                branches.append(
                    Branch(
                        id=f"B-{commune}-{tag}{n:02d}",
                        province=province,
                        district=_district(org, commune),
                        commune=commune,
                        commune_2025=new,
                        province_2025=org.v2025.province_of(new),
                    )
                )
    return World(tuple(provinces), tuple(branches))


def _communes(org: OrgTrees, province: str, n: int) -> list[str]:
    found = [
        u.id
        for u in org.legacy.units("commune")
        if org.legacy.province_of(u.id) == province and org.to_2025(u.id)
    ]
    step = max(1, len(found) // n)  # spread over the province's districts
    return found[::step][:n]


def _district(org: OrgTrees, commune: str) -> str:
    parent = org.legacy.parent(commune)
    assert parent is not None
    return parent.id


# -- candidate stories -----------------------------------------------------------------


def candidate_story(
    rng: random.Random,
    cid: str,
    branch: Branch,
    mates: Sequence[Branch],
    *,
    first: datetime = datetime(2023, 1, 1, 9, tzinfo=VN),
    spread_days: int = 500,
    until: datetime = LAST_LEGACY_DAY,
) -> list[Event]:
    """One candidate's valid history between ``first`` and ``until`` (legacy period by default):
    milestones in order, maybe a drop, a transfer to another branch of the same province,
    or a void of its last event."""
    profile = {
        "birth_year": rng.randint(1975, 2006),
        "sex": rng.choice(("female", "male")),
        "categories": sorted(rng.sample(CATEGORIES, rng.randint(0, 2))),
    }
    reach = rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 1, 3, 2))[0]
    t = first + timedelta(days=rng.randint(0, spread_days), minutes=rng.randint(0, 600))
    events: list[Event] = []
    for i, milestone in enumerate(MILESTONES[:reach]):
        if t > until:
            break
        data: dict[str, Any] = {"branch_id": branch.id}
        if milestone == "sourced":
            data["profile"] = profile
        events.append(cloudevent(f"candidate.{milestone}", data, t, subject=cid, event_id=f"{cid}-{i}"))
        t += timedelta(days=rng.randint(20, 60) if i < 3 else 370)
    t = min(t, until)
    roll = rng.random()
    if roll < 0.05:
        data = {"branch_id": branch.id, "reason": "moved_away"}
        events.append(cloudevent("candidate.dropped", data, t, subject=cid, event_id=f"{cid}-d"))
    elif roll < 0.10 and len(mates) > 1:
        other = rng.choice([m for m in mates if m.id != branch.id])
        data = {"from_branch_id": branch.id, "to_branch_id": other.id}
        events.append(cloudevent("candidate.transferred", data, t, subject=cid, event_id=f"{cid}-t"))
    elif roll < 0.15 and len(events) > 1:
        void = {"voids": events[-1]["id"], "reason": "entered in error"}
        events.append(cloudevent("candidate.voided", void, t, subject=cid, event_id=f"{cid}-v"))
    return events


def candidate_stories(
    world: World, events: int, *, seed: int = 1, prefix: str = "c", **window: Any
) -> list[list[Event]]:
    """Candidates spread over every branch until about ``events`` events; one list per candidate.

    ``window``: ``first``, ``spread_days``, ``until`` of :func:`candidate_story`.
    """
    rng = random.Random(seed)
    stories: list[list[Event]] = []
    total, n = 0, 0
    by_province = {p: world.of(p) for p in world.provinces}
    while total < events:
        branch = world.branches[n % len(world.branches)]
        story = candidate_story(
            rng, f"{prefix}{seed}-{n:06d}", branch, by_province[branch.province], **window
        )
        stories.append(story)
        total += len(story)
        n += 1
    return stories


def by_province(world: World, stories: Iterable[list[Event]]) -> dict[str, list[Event]]:
    """Each province's events in time order (a province sends what it has, roughly as it happens)."""
    branches = {b.id: b.province for b in world.branches}
    out: dict[str, list[Event]] = defaultdict(list)
    for story in stories:
        first = story[0]["data"]
        province = branches[first.get("branch_id") or first["from_branch_id"]]
        out[province].extend(story)
    for events in out.values():
        events.sort(key=lambda e: (e["time"], e["id"]))
    return dict(out)


def chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# -- the model ---------------------------------------------------------------------------


def domain_event(event: Mapping[str, Any]) -> CandidateEvent:
    return from_cloudevent(event, arrived_at=datetime.now(UTC))


def expected_tallies(events: Iterable[Mapping[str, Any]]) -> Counter[TallyKey]:
    """Replay each candidate's set of events with the quota domain; sum the contributions per key."""
    per_candidate: dict[str, dict[str, CandidateEvent]] = defaultdict(dict)
    for event in events:
        if str(event["type"]).startswith("vn.ketnap.candidate."):
            per_candidate[str(event["subject"])][str(event["id"])] = domain_event(event)
    totals: Counter[TallyKey] = Counter()
    for cid, mine in per_candidate.items():
        for contribution in replay(cid, mine.values()).contributions:
            for k in contribution.keys:
                totals[(k.branch_id, k.date, k.metric, k.category)] += 1
    return +totals


def by_year(tallies: Mapping[TallyKey, int]) -> Counter[YearKey]:
    out: Counter[YearKey] = Counter()
    for (branch, day, metric, category), n in tallies.items():
        out[(branch, day.year, metric, category)] += n
    return +out


@dataclass
class Discrepancy:
    """Observed against expected, per key: events lost, events counted twice, keys that differ."""

    lost: int = 0
    double_counted: int = 0
    wrong_keys: list[Any] = field(default_factory=list)

    def add(self, key: Any, expected: int, observed: int, *, counts_events: bool) -> None:
        if expected == observed:
            return
        self.wrong_keys.append((key, expected, observed))
        if counts_events:
            self.lost += max(0, expected - observed)
            self.double_counted += max(0, observed - expected)

    def merge(self, other: Discrepancy) -> Discrepancy:
        return Discrepancy(
            max(self.lost, other.lost),
            max(self.double_counted, other.double_counted),
            self.wrong_keys + other.wrong_keys,
        )

    @property
    def ok(self) -> bool:
        return not self.wrong_keys


def compare_year_tallies(expected: Mapping[YearKey, int], observed: Mapping[YearKey, int]) -> Discrepancy:
    """Every key of either side; only category ``all`` counts toward lost/double (one per event)."""
    found = Discrepancy()
    for key in sorted(set(expected) | set(observed)):
        found.add(key, expected.get(key, 0), observed.get(key, 0), counts_events=key[3] == "all")
    return found


@dataclass(frozen=True)
class UnitTotals:
    """Expected rollup values per (tree, unit, year, metric, category), from the branch tallies."""

    values: Mapping[tuple[str, str, int, str, str], int]

    def get(self, tree: str, unit: str, year: int, metric: str, category: str = "all") -> int:
        return self.values.get((tree, unit, year, metric, category), 0)


def unit_totals(world: World, year_tallies: Mapping[YearKey, int]) -> UnitTotals:
    """Each branch's year tallies added to its commune, district, province and ``VN`` in both trees."""
    branches = {b.id: b for b in world.branches}
    values: Counter[tuple[str, str, int, str, str]] = Counter()
    for (branch_id, year, metric, category), n in year_tallies.items():
        b = branches[branch_id]
        chains: dict[str, tuple[str, ...]] = {
            "legacy": (b.id, b.commune, b.district, b.province, "VN"),
            "2025": (b.id, b.commune_2025, b.province_2025, "VN"),
        }
        for tree, chain in chains.items():
            for unit in chain:
                values[(tree, unit, year, metric, category)] += n
    return UnitTotals(dict(values))
