"""Scenario 11, province isolation: every province token against every other province.

Each province of each tree has a token and a registered branch. Each token sends,
for every *other* province of its tree (dated in that tree's period): candidate
events at that province's branch, a transfer out of it, targets for the province
and one of its communes (and district), a branch registered under one of its
communes. Every one is refused ``out_of_scope``; none of them reaches a topic;
each refusal is in the intake's log line with the token's scope (never the
token). The same events aimed at the token's own province pass (a dry run), so
the refusals are about place, nothing else.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
import pytest

from shared.orgtree import OrgTree, TreeVersion, load_org_trees
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS
from tests.reliability.harness import Client, Cluster, Figures, scaled, topic_ids
from tests.reliability.model import NATIONAL_TOKEN, REGISTERED_AT, VN, Event, cloudevent, province_token

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

WHEN: dict[TreeVersion, datetime] = {
    "legacy": datetime(2024, 5, 10, 9, tzinfo=VN),
    "2025": datetime(2025, 9, 10, 9, tzinfo=VN),
}
SUBSET = scaled(12, 1000)  # provinces per tree taking part (all of them in full)


def provinces(org: OrgTree) -> list[str]:
    found = [u.id for u in org.units("province")]
    step = max(1, len(found) // SUBSET)
    return found[::step][:SUBSET]


def first_commune(org: OrgTree, province: str) -> tuple[str, str | None]:
    """(commune, its district or None) of a province: the first one in id order."""
    commune = next(u for u in org.units("commune") if org.province_of(u.id) == province)
    parent = org.parent(commune.id)
    return commune.id, parent.id if parent is not None and parent.level == "district" else None


def home_branch(tree: TreeVersion, province: str) -> str:
    return f"B-ISO-{tree}-{province}"


def registrations(trees: dict[TreeVersion, list[str]]) -> list[Event]:
    org = load_org_trees()
    out = []
    for tree, ids in trees.items():
        for p in ids:
            commune, _ = first_commune(org[tree], p)
            data = {
                "branch_id": home_branch(tree, p),
                "name": f"Chi bộ {p}",
                "kind": "agency",
                "parents": {tree: commune},
            }
            out.append(
                cloudevent("org.branch_registered", data, REGISTERED_AT, event_id=f"iso-reg-{tree}-{p}")
            )
    return out


def aimed_at(tree: TreeVersion, me: str, there: str, tag: str) -> list[Event]:
    """Every kind of write that names a place of ``there``, sent by ``me``'s token."""
    org = load_org_trees()[tree]
    when, branch = WHEN[tree], home_branch(tree, there)
    commune, district = first_commune(org, there)
    cid = f"iso-{tag}-{tree}-{me}-{there}"
    profile = {"birth_year": 1999, "sex": "female", "categories": []}
    events = [
        cloudevent(
            "candidate.sourced",
            {"branch_id": branch, "profile": profile},
            when,
            subject=cid,
            event_id=f"{cid}-s",
        ),
        cloudevent("candidate.admitted", {"branch_id": branch}, when, subject=cid, event_id=f"{cid}-a"),
        cloudevent(
            "candidate.transferred",
            {"from_branch_id": branch, "to_branch_id": home_branch(tree, me)},
            when,
            subject=cid,
            event_id=f"{cid}-t",
        ),
        cloudevent(
            "org.branch_registered",
            {"branch_id": f"B-{cid}", "name": "Chi bộ mới", "kind": "school", "parents": {tree: commune}},
            when,
            event_id=f"{cid}-r",
        ),
    ]
    for unit in (there, commune, district):
        if unit is not None:
            data = {"unit_id": unit, "tree": tree, "year": when.year, "kind": "assigned", "value": 5}
            events.append(cloudevent("target.set", data, when, event_id=f"{cid}-g{unit}"))
    return events


def logged_refusals(log_text: str) -> Counter[str]:
    """Refusals per scope in the intake's ``events_answered`` lines (dry runs left out)."""
    found: Counter[str] = Counter()
    for line in log_text.splitlines():
        if '"events_answered"' not in line:
            continue
        doc: dict[str, Any] = orjson.loads(line)
        if not doc.get("dry_run"):
            found[",".join(doc["scope"])] += int(doc.get("rejected", 0))
    return found


async def test_province_isolation(shared_cluster: Cluster, book: list[Figures]) -> None:
    started, cluster = time.monotonic(), shared_cluster
    org = load_org_trees()
    trees: dict[TreeVersion, list[str]] = {"legacy": provinces(org.legacy), "2025": provinces(org.v2025)}
    figures = Figures("11 province isolation")
    book.append(figures)
    client = Client(cluster)
    await client.post(registrations(trees), NATIONAL_TOKEN)
    refused: dict[str, str] = {}
    controls: Counter[str] = Counter()
    foreign_ids: set[str] = set()
    expected_log: Counter[str] = Counter()
    for tree, ids in trees.items():
        for me in ids:
            token = province_token(me, tree)
            foreign = [e for there in ids if there != me for e in aimed_at(tree, me, there, "x")]
            answer = await client.post(foreign, token)
            foreign_ids |= {e["id"] for e in foreign}
            refused |= {r["id"]: r.get("error", {}).get("code", r["status"]) for r in answer["results"]}
            expected_log[f"{tree}:{me}"] += len(foreign)
            own = aimed_at(tree, me, me, "own")
            control = await cluster.http.post(
                f"{cluster.url('intake')}/v1/events?dry_run=true",
                content=orjson.dumps(own),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            controls.update(r["status"] for r in control.json()["results"])
    wrong = {i: code for i, code in refused.items() if code != "out_of_scope"}
    on_topics = await topic_ids(cluster.broker.bootstrap, CANDIDATE_EVENTS)
    on_topics.update(await topic_ids(cluster.broker.bootstrap, REFERENCE_EVENTS))
    leaked = foreign_ids & set(on_topics)
    log_text = cluster.of("intake")[0].log.read_text(errors="replace")
    logged = logged_refusals(log_text)
    unlogged = {s: (n, logged.get(s, 0)) for s, n in expected_log.items() if logged.get(s, 0) < n}
    tokens_in_log = [p for tree, ids in trees.items() for p in ids if province_token(p, tree) in log_text]
    figures.sent, figures.rejected = len(foreign_ids), len(refused) - len(wrong)
    figures.accepted = len(foreign_ids) - len(refused) + len(wrong)
    figures.faults = len(foreign_ids)
    figures.dead_lettered = 0
    figures.seconds = time.monotonic() - started
    figures.passed = (
        not wrong and len(refused) == len(foreign_ids) and not leaked and not unlogged and not tokens_in_log
    )
    figures.notes = (
        f"{len(trees['legacy'])} legacy and {len(trees['2025'])} 2025 province tokens, "
        "each against every other "
        f"province of its tree (candidate events, transfer, targets, branch registration): "
        f"{len(refused) - len(wrong):,}/{len(foreign_ids):,} refused out_of_scope, {len(leaked)} on a topic, "
        f"{len(unlogged)} scopes with refusals missing from the log; "
        f"own-province control (dry run): {dict(controls)}"
    )
    assert len(refused) == len(foreign_ids)
    assert not wrong, list(wrong.items())[:10]
    assert not leaked, sorted(leaked)[:10]
    assert not unlogged, unlogged
    assert not tokens_in_log, "a token reached the log"
    assert set(controls) == {"accepted"}, controls
