"""Synthetic quota feeds for the integration tests and the benchmark, with their expected tallies.

Deterministic for a seed: real communes of the legacy tree (their 2025 commune from
the official crosswalk), branches ``B-<commune>-<nn>``, candidates walking the
pipeline through 2024 (some dropped, some transferred, a few events voided), as
CloudEvents with a ``recordedtime``. :func:`expected_tallies` is the model: the pure
domain's replay of each candidate's whole event set, summed per tally key.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson

from services.quota.domain import replay
from services.quota.wire import candidate_event, decode
from shared.orgtree import load_org_trees

VN = timezone(timedelta(hours=7))
MILESTONES = ("sourced", "class_completed", "dossier_verified", "admitted", "confirmed")
CATEGORIES = ("student", "private_sector", "business_owner", "ethnic_minority", "religious", "youth_union")
Key = tuple[str, date, str, str]


def cloudevent(
    kind: str,
    data: dict[str, Any],
    time: datetime,
    *,
    subject: str | None = None,
    event_id: str | None = None,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": "/deployments/test",
        "type": f"vn.ketnap.{kind}",
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        "recordedtime": (recorded or datetime.now(UTC)).isoformat(),
    }
    if subject is not None:
        event["subject"] = subject
    return event


def branch_registered(
    branch_id: str, legacy: str | None, v2025: str | None, time: datetime
) -> dict[str, Any]:
    parents = {k: v for k, v in (("legacy", legacy), ("2025", v2025)) if v}
    data = {"branch_id": branch_id, "name": f"Chi bộ {branch_id}", "kind": "residential", "parents": parents}
    return cloudevent("org.branch_registered", data, time)


def target_set(
    unit_id: str, year: int, kind: str, value: int, time: datetime, tree: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"unit_id": unit_id, "year": year, "kind": kind, "value": value}
    if tree:
        data["tree"] = tree
    return cloudevent("target.set", data, time)


@dataclass(frozen=True)
class Feed:
    reference: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    branches: dict[str, str]  # branch id -> legacy commune


def communes(n: int) -> list[str]:
    """``n`` legacy communes that have a 2025 home, in id order."""
    org = load_org_trees()
    found = []
    for unit in org.legacy.units("commune"):
        if org.to_2025(unit.id):
            found.append(unit.id)
            if len(found) == n:
                break
    return found


def _candidate_events(rng: random.Random, cid: str, branch: str, other: str, start: datetime) -> list[dict]:
    profile = {
        "birth_year": rng.randint(1975, 2005),
        "sex": rng.choice(("female", "male")),
        "categories": sorted(rng.sample(CATEGORIES, rng.randint(0, 2))),
    }
    reach = rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 1, 3, 3))[0]
    events, t = [], start
    for i, milestone in enumerate(MILESTONES[:reach]):
        data: dict[str, Any] = {"branch_id": branch}
        if milestone == "sourced":
            data["profile"] = profile
        events.append(cloudevent(f"candidate.{milestone}", data, t, subject=cid))
        t += timedelta(days=rng.randint(20, 60) if i < 3 else 370)
    roll = rng.random()
    if roll < 0.1:
        reason = "not_recognised" if reach == 4 else "moved_away"
        events.append(
            cloudevent("candidate.dropped", {"branch_id": branch, "reason": reason}, t, subject=cid)
        )
    elif roll < 0.15:
        data = {"from_branch_id": branch, "to_branch_id": other}
        events.append(cloudevent("candidate.transferred", data, t - timedelta(days=1), subject=cid))
    elif roll < 0.2 and len(events) > 1:
        target = events[-1]["id"]
        void = {"voids": target, "reason": "entered in error"}
        events.append(cloudevent("candidate.voided", void, t, subject=cid))
    return events


def make_feed(candidates: int, *, branches: int = 40, seed: int = 1, shuffle: bool = True) -> Feed:
    """Branch registrations and targets, then candidate events (shuffled within each candidate)."""
    rng = random.Random(seed)
    homes = communes(max(1, branches // 4))
    ids = {f"B-{homes[i % len(homes)]}-{i:02d}": homes[i % len(homes)] for i in range(branches)}
    org = load_org_trees()
    when = datetime(2023, 12, 1, 9, tzinfo=VN)
    reference = [branch_registered(b, c, org.to_2025(c), when) for b, c in ids.items()]
    names = list(ids)
    events: list[dict[str, Any]] = []
    for n in range(candidates):
        branch = names[n % len(names)]
        start = datetime(2024, 1, 1, 9, tzinfo=VN) + timedelta(days=rng.randint(0, 200), minutes=n % 600)
        mine = _candidate_events(rng, f"cand-{seed}-{n:06d}", branch, rng.choice(names), start)
        if shuffle:
            rng.shuffle(mine)
        events.extend(mine)
    return Feed(reference, events, ids)


def encode(event: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) as the intake publishes it: key = subject (or branch/unit id)."""
    key = event.get("subject") or event["data"].get("branch_id") or event["data"].get("unit_id")
    return str(key).encode(), orjson.dumps(event)


class _Record:
    """Just enough of a Kafka record for ``wire.decode``."""

    def __init__(self, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.timestamp = "model", 0, 0, 0
        self.key, self.value, self.headers = None, value, ()


def expected_tallies(events: Iterable[dict[str, Any]]) -> dict[Key, int]:
    """The model: replay each candidate's event set with the pure domain and sum the contributions."""
    per_candidate: dict[str, list[Any]] = defaultdict(list)
    seen: set[str] = set()
    for event in events:
        if event["id"] in seen:
            continue
        seen.add(event["id"])
        decoded = decode(_Record(orjson.dumps(event)), None)
        assert not hasattr(decoded, "code"), decoded
        domain = candidate_event(decoded)  # type: ignore[arg-type]
        per_candidate[domain.candidate_id].append(domain)
    totals: Counter[Key] = Counter()
    for cid, mine in per_candidate.items():
        state = replay(cid, mine)
        for contribution in state.contributions:
            for key in contribution.keys:
                totals[(key.branch_id, key.date, key.metric, key.category)] += 1
    return {k: n for k, n in totals.items() if n}


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
