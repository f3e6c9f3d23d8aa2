"""Scenario 11, province isolation: every province token against every other province.

Each province of each tree has a token and a registered branch. Each token sends,
for every *other* province of its tree (dated in that tree's period): candidate
events at that province's branch, a transfer out of it, targets for the province
and one of its communes (and district), a branch registered under one of its
communes. Every one is refused ``out_of_scope``; none of them reaches a topic;
each refusal is in the intake's log line with the token's scope (never the
token). The same events aimed at the token's own province pass (a dry run), so
the refusals are about place, nothing else.

Voids (finding 9): each token also voids, for every other province of its tree, an
event id the intake has not seen (the intake accepts it, a late batch may void an
event still on its way, and stamps the token's scope on it); that province then
sends that event for the candidate in its own branch. Every such void is refused
``out_of_scope`` by the quota (``ketnap.rejected`` and ``/v1/rejections``) and every
such event counts; each token's void of its own province's event is the control: it
takes its event back. These events are dated in years no other scenario of the
shared cluster reads (2022 legacy, 2026 in the 2025 tree).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from shared.orgtree import OrgTree, TreeVersion, load_org_trees
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS, REJECTED
from tests.reliability.harness import Client, Cluster, Figures, read_topic, scaled, topic_ids
from tests.reliability.model import NATIONAL_TOKEN, REGISTERED_AT, VN, Event, cloudevent, province_token

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

WHEN: dict[TreeVersion, datetime] = {
    "legacy": datetime(2024, 5, 10, 9, tzinfo=VN),
    "2025": datetime(2025, 9, 10, 9, tzinfo=VN),
}
SUBSET = scaled(12, 1000)  # provinces per tree taking part (all of them in full)
VOIDED_AT: dict[TreeVersion, datetime] = {
    "legacy": datetime(2022, 5, 10, 9, tzinfo=VN),
    "2025": datetime(2026, 3, 10, 9, tzinfo=VN),
}


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


@dataclass
class Voids:
    """The cross-province voids of unseen events and what became of them."""

    foreign: set[str] = field(default_factory=set)  # void ids that must be refused
    own: set[str] = field(default_factory=set)  # the controls, which must apply
    intake_refused: dict[str, str] = field(default_factory=dict)
    expected: Counter[tuple[str, int, str]] = field(default_factory=Counter)  # (branch, year, metric)
    branches: set[tuple[str, int]] = field(default_factory=set)


def void_story(tree: TreeVersion, me: str, there: str, tag: str) -> tuple[Event, list[Event]]:
    """``me``'s void of an id not yet sent, and ``there``'s candidate whose event has that id."""
    when, branch = VOIDED_AT[tree], home_branch(tree, there)
    cid = f"iso-{tag}-{tree}-{me}-{there}"
    profile = {"birth_year": 1999, "sex": "female", "categories": []}
    void = cloudevent(
        "candidate.voided",
        {"voids": f"{cid}-x", "reason": "entered in error"},
        when + timedelta(days=1),
        subject=cid,
        event_id=f"{cid}-v",
    )
    events = [
        cloudevent(
            "candidate.sourced",
            {"branch_id": branch, "profile": profile},
            when,
            subject=cid,
            event_id=f"{cid}-s",
        ),
        cloudevent("candidate.admitted", {"branch_id": branch}, when, subject=cid, event_id=f"{cid}-x"),
    ]
    return void, events


async def cross_province_voids(
    cluster: Cluster, client: Client, trees: dict[TreeVersion, list[str]]
) -> Voids:
    """Every token voids an unseen event of every other province of its tree (and one of its own);
    the owning province then sends those events. Answers are kept; the quota is read after quiet."""
    await cluster.settle()  # the home branches' registrations have reached the quota
    found = Voids()
    sends: dict[str, list[Event]] = {}
    for tree, ids in trees.items():
        for me in ids:
            voids = []
            for there in ids:
                void, events = void_story(tree, me, there, "vo" if there == me else "vx")
                voids.append(void)
                (found.own if there == me else found.foreign).add(void["id"])
                sends.setdefault(province_token(there, tree), []).extend(events)
                branch, year = home_branch(tree, there), VOIDED_AT[tree].year
                found.branches.add((branch, year))
                found.expected[(branch, year, "sourced")] += 1
                found.expected[(branch, year, "admitted")] += int(there != me)  # the own void takes it back
            answer = await client.post(voids, province_token(me, tree))
            found.intake_refused |= {
                r["id"]: r["error"]["code"] for r in answer["results"] if r["status"] == "rejected"
            }
    for token, events in sends.items():
        answer = await client.post(events, token)
        found.intake_refused |= {
            r["id"]: r["error"]["code"] for r in answer["results"] if r["status"] == "rejected"
        }
    await cluster.settle()
    return found


async def quota_rejections(cluster: Cluster, code: str) -> dict[str, str]:
    """``GET /v1/rejections?code=`` page by page: event id -> code."""
    found: dict[str, str] = {}
    after: str | None = None
    while True:
        params = {"code": code, "limit": 1000, **({"after": after} if after else {})}
        page = (await cluster.get("quota", "/v1/rejections", **params)).json()
        found |= {item["id"]: item["code"] for item in page["items"]}
        after = page["next"]
        if after is None:
            return found


async def counted(cluster: Cluster, voids: Voids) -> Counter[tuple[str, int, str]]:
    """The quota's ``all`` tallies of the branches the voided events were sent to."""
    observed: Counter[tuple[str, int, str]] = Counter()
    for branch, year in sorted(voids.branches):
        doc = (await cluster.get("quota", f"/v1/branches/{branch}/tallies", year=year)).json()
        for metric in ("sourced", "admitted"):
            observed[(branch, year, metric)] = int(doc["tallies"][metric]["all"])
    return observed


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
    voids = await cross_province_voids(cluster, client, trees)
    listed = await quota_rejections(cluster, "out_of_scope")
    dead = {
        (r.key or b"").decode(): orjson.loads(r.value)["code"]
        for r in await read_topic(cluster.broker.bootstrap, REJECTED)
        if (r.key or b"").decode() in voids.foreign | voids.own
    }
    voids_refused = {
        i for i in voids.foreign if listed.get(i) == "out_of_scope" and dead.get(i) == "out_of_scope"
    }
    controls_refused = voids.own & (set(listed) | set(dead))
    observed = await counted(cluster, voids)
    miscounted = {k: (n, observed[k]) for k, n in voids.expected.items() if observed[k] != n}
    wrong = {i: code for i, code in refused.items() if code != "out_of_scope"}
    on_topics = await topic_ids(cluster.broker.bootstrap, CANDIDATE_EVENTS)
    on_topics.update(await topic_ids(cluster.broker.bootstrap, REFERENCE_EVENTS))
    leaked = foreign_ids & set(on_topics)
    log_text = cluster.of("intake")[0].log.read_text(errors="replace")
    logged = logged_refusals(log_text)
    unlogged = {s: (n, logged.get(s, 0)) for s, n in expected_log.items() if logged.get(s, 0) < n}
    tokens_in_log = [p for tree, ids in trees.items() for p in ids if province_token(p, tree) in log_text]
    voids_ok = (
        len(voids_refused) == len(voids.foreign)
        and not controls_refused
        and not miscounted
        and not voids.intake_refused
    )
    figures.sent = len(foreign_ids) + len(voids.foreign)
    figures.rejected = len(refused) - len(wrong) + len(voids_refused)
    figures.accepted = len(foreign_ids) - len(refused) + len(wrong)
    figures.faults = len(foreign_ids) + len(voids.foreign)
    figures.dead_lettered = len(dead)
    figures.seconds = time.monotonic() - started
    figures.passed = (
        not wrong
        and len(refused) == len(foreign_ids)
        and not leaked
        and not unlogged
        and not tokens_in_log
        and voids_ok
    )
    figures.notes = (
        f"{len(trees['legacy'])} legacy and {len(trees['2025'])} 2025 province tokens, "
        "each against every other "
        f"province of its tree (candidate events, transfer, targets, branch registration): "
        f"{len(refused) - len(wrong):,}/{len(foreign_ids):,} refused out_of_scope, {len(leaked)} on a topic, "
        f"{len(unlogged)} scopes with refusals missing from the log; "
        f"own-province control (dry run): {dict(controls)}; "
        f"voids of another province's unseen events (accepted by the intake, refused by the quota): "
        f"{len(voids_refused):,}/{len(voids.foreign):,} refused out_of_scope on ketnap.rejected and "
        f"/v1/rejections, their events counted where sent ({len(miscounted)} branch tallies off); "
        f"own-province voids applied: {len(voids.own) - len(controls_refused)}/{len(voids.own)}"
    )
    assert len(refused) == len(foreign_ids)
    assert not wrong, list(wrong.items())[:10]
    assert not leaked, sorted(leaked)[:10]
    assert not unlogged, unlogged
    assert not tokens_in_log, "a token reached the log"
    assert set(controls) == {"accepted"}, controls
    assert not voids.intake_refused, list(voids.intake_refused.items())[:10]
    assert voids_refused == voids.foreign, sorted(voids.foreign - voids_refused)[:10]
    assert not controls_refused, sorted(controls_refused)[:10]
    assert not miscounted, list(miscounted.items())[:10]
