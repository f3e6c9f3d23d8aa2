"""Scenario 7, poison and bad input: bad records straight on the topics, bad requests at the intake.

On the topics (no intake in the way): records that are not JSON, that break the
schema, that name an unknown type or an unknown unit, oversized ones (1 MB, just under
Apache Kafka's default largest record, far beyond any field's limit); each consumer
of the topic rejects each with a clear code on ``ketnap.rejected``. At the intake:
malformed bodies, wrong content types, oversized bodies, wrong tokens, events for
a foreign province, events carrying personal data; each answered with its code.
Good traffic sent right behind them is processed within 5 s, and the bad input
changes no tally.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pytest

from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS, REJECTED, TALLY_CHANGES
from tests.reliability.harness import (
    Client,
    Cluster,
    Figures,
    Raw,
    publish_raw,
    read_topic,
    scaled,
    verify,
)
from tests.reliability.model import (
    NATIONAL_TOKEN,
    VN,
    Event,
    World,
    YearKey,
    by_year,
    candidate_stories,
    cloudevent,
    expected_tallies,
    make_world,
    province_token,
    unit_totals,
)

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

ON_TOPICS = scaled(200, 1_000)
OVER_HTTP = scaled(200, 1_000)
GOOD = scaled(300, 1_000)
WITHIN_S = scaled(15.0, 5.0)  # the scenario's 5 s, with a margin on a loaded CI machine
WHEN = datetime(2024, 3, 5, 9, tzinfo=VN)
YEARS = (2023, 2024, 2025)
CONSUMERS = {
    CANDIDATE_EVENTS: ("quota",),
    REFERENCE_EVENTS: ("quota", "reporting"),
    TALLY_CHANGES: ("reporting",),
}


@dataclass(frozen=True)
class Bad:
    """One bad record: where it goes, its unique key (which keys its rejection), the code it must get."""

    topic: str
    key: str
    value: bytes
    code: str

    @property
    def record(self) -> Raw:
        return (self.key.encode(), self.value, [])


def _event(kind: str, data: dict[str, Any], key: str, **extra: Any) -> bytes:
    return orjson.dumps({**cloudevent(kind, data, WHEN, event_id=key), **extra})


def poison(n: int, branch: str) -> list[Bad]:
    """``n`` bad records of ten kinds, round robin."""
    kinds: list[tuple[str, str, Callable[[str], bytes]]] = [
        (CANDIDATE_EVENTS, "invalid_schema", lambda k: b'{"specversion": "1.0", "id": ' + k.encode()),
        (
            CANDIDATE_EVENTS,
            "invalid_schema",
            lambda k: _event(
                "candidate.admitted", {"branch_id": branch, "full_name": "Nguyễn Văn A"}, k, subject=k
            ),
        ),
        (
            CANDIDATE_EVENTS,
            "invalid_schema",
            lambda k: _event("candidate.admitted", {"branch_id": branch}, k),
        ),  # no subject
        (
            CANDIDATE_EVENTS,
            "unknown_type",
            lambda k: _event("candidate.teleported", {"branch_id": branch}, k, subject=k),
        ),
        (
            CANDIDATE_EVENTS,
            "invalid_schema",
            lambda k: _event(
                "candidate.dropped", {"branch_id": branch, "reason": "x" * 1_000_000}, k, subject=k
            ),
        ),
        (
            REFERENCE_EVENTS,
            "unknown_unit",
            lambda k: _event(
                "target.set", {"unit_id": "P99", "year": 2024, "kind": "resolution", "value": 3}, k
            ),
        ),
        (
            REFERENCE_EVENTS,
            "unknown_unit",
            lambda k: _event(
                "org.branch_registered",
                {"branch_id": f"B-{k}", "name": "x", "kind": "other", "parents": {"legacy": "C99999"}},
                k,
            ),
        ),
        (REFERENCE_EVENTS, "invalid_schema", lambda k: b"\xff\xfe not json"),
        (
            TALLY_CHANGES,
            "invalid_schema",
            lambda k: orjson.dumps(
                {
                    "branch_id": branch,
                    "date": "2024-13-45",
                    "metric": "admitted",
                    "category": "all",
                    "delta": 1,
                    "value": 1,
                    "version": 1,
                    "source_event_id": k,
                }
            ),
        ),
        (TALLY_CHANGES, "invalid_schema", lambda k: b"[1, 2, 3]"),
    ]
    out = []
    for i in range(n):
        topic, code, make = kinds[i % len(kinds)]
        key = f"poison-{i:05d}"
        out.append(Bad(topic, key, make(key), code))
    return out


def bad_requests(n: int, good: Event, foreign: Event) -> list[tuple[dict[str, Any], int, str]]:
    """``n`` bad requests: (httpx request arguments, expected status, expected code)."""
    national = {"Authorization": f"Bearer {NATIONAL_TOKEN}"}
    as_json = {**national, "Content-Type": "application/json"}
    personal = [
        {**good, "id": "", "data": {**good["data"], "full_name": "Trần Thị B"}},
        {
            **good,
            "id": "",
            "data": {
                **good["data"],
                "profile": {**good["data"].get("profile", {}), "id_card_number": "001234567890"},
            },
        },
        {**good, "id": "", "data": {**good["data"], "date_of_birth": "2001-02-03"}},
    ]
    kinds: list[tuple[Any, int, str]] = [
        (lambda i: {"content": b"{oops " + str(i).encode(), "headers": as_json}, 400, "malformed_body"),
        (lambda i: {"content": b"[1, 2", "headers": as_json}, 400, "malformed_body"),
        (
            lambda i: {"content": orjson.dumps(good), "headers": {**national, "Content-Type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        (
            lambda i: {"content": b"<event/>", "headers": {**national, "Content-Type": "application/xml"}},
            415,
            "unsupported_media_type",
        ),
        (lambda i: {"content": orjson.dumps([{}] * 10_001), "headers": as_json}, 413, "payload_too_large"),
        (
            lambda i: {"content": orjson.dumps(good), "headers": {"Content-Type": "application/json"}},
            401,
            "unauthorized",
        ),
        (
            lambda i: {
                "content": orjson.dumps(good),
                "headers": {"Authorization": f"Bearer wrong-{i}", "Content-Type": "application/json"},
            },
            401,
            "unauthorized",
        ),
        (
            lambda i: {
                "content": orjson.dumps(good),
                "headers": {"Authorization": f"Basic {NATIONAL_TOKEN}", "Content-Type": "application/json"},
            },
            401,
            "unauthorized",
        ),
        (
            lambda i: {
                "content": orjson.dumps({**foreign, "id": f"foreign-{i}"}),
                "headers": {
                    "Authorization": f"Bearer {province_token('P20')}",
                    "Content-Type": "application/json",
                },
            },
            200,
            "out_of_scope",
        ),
        (
            lambda i: {
                "content": orjson.dumps({**personal[i % 3], "id": f"personal-{i}"}),
                "headers": as_json,
            },
            200,
            "invalid_schema",
        ),
    ]
    out = [(make(i), status, code) for i in range(n) for make, status, code in [kinds[i % len(kinds)]]]
    huge = b"[" + b" " * (16 * 1024 * 1024 + 10) + b"]"
    out[4] = ({"content": huge, "headers": as_json}, 413, "payload_too_large")  # one over 16 MiB
    return out


async def answer_code(cluster: Cluster, request: dict[str, Any]) -> tuple[int, str]:
    answer = await cluster.http.post(f"{cluster.url('intake')}/v1/events", **request)
    doc = answer.json()
    if answer.status_code in (200, 202):
        errors = [r.get("error", {}).get("code", r["status"]) for r in doc["results"]]
        return answer.status_code, ",".join(errors)
    return answer.status_code, str(doc.get("code"))


async def province_tallies(cluster: Cluster, world: World) -> dict[tuple[str, int, str, str], int]:
    """Every non-zero (province, year, metric, category) tally of the world's provinces (legacy tree)."""
    found: dict[tuple[str, int, str, str], int] = {}
    for province in world.provinces:
        for year in YEARS:
            answer = await cluster.get("quota", f"/v1/provinces/{province}/tallies", year=year, tree="legacy")
            for metric, per in answer.json()["tallies"].items():
                found |= {(province, year, metric, c): int(n) for c, n in per.items() if n}
    return found


async def processed_at(cluster: Cluster, world: World, expected: Mapping[YearKey, int]) -> float:
    """When (monotonic) the quota API first shows exactly the model's tallies of the world's provinces."""
    totals = unit_totals(world, expected)
    want = {
        (p, y, m, c): n
        for (tree, p, y, m, c), n in totals.values.items()
        if tree == "legacy" and p in world.provinces and n
    }
    started = time.monotonic()
    while time.monotonic() - started < 120:
        if await province_tallies(cluster, world) == want:
            return time.monotonic()
        await asyncio.sleep(0.05)
    return float("inf")


async def test_poison_and_bad_input(shared_cluster: Cluster, book: list[Figures]) -> None:
    started, cluster = time.monotonic(), shared_cluster
    mark = cluster.mark()
    rng = random.Random(7)
    world = make_world(("P14", "P20"), communes_per_province=scaled(2, 4), branches_per_commune=2, tag="p")
    figures = Figures("07 poison and bad input")
    book.append(figures)
    client = Client(cluster)
    await client.post(world.registrations())
    stories = candidate_stories(world, GOOD, seed=7, prefix="g")
    first = stories[0][0]
    p14 = next(e for s in stories for e in s if e["data"].get("branch_id") in {b.id for b in world.of("P14")})
    bad_records = poison(ON_TOPICS, world.branches[0].id)
    by_topic: dict[str, list[Raw]] = defaultdict(list)
    for bad in bad_records:
        by_topic[bad.topic].append(bad.record)
    requests = bad_requests(OVER_HTTP, first, p14)
    rng.shuffle(requests)
    for topic, records in by_topic.items():
        await publish_raw(cluster.broker.bootstrap, topic, records)
    answers = [await answer_code(cluster, request) for request, _, _ in requests]
    sending = time.monotonic()  # right behind the poison, on the same topics
    await client.send_world(world, stories, batch=100)
    accepted = time.monotonic()  # every good event is in Kafka now
    good_events = client.accepted_events()
    took = await processed_at(cluster, world, by_year(expected_tallies(good_events))) - accepted
    verdict = await verify(cluster, world, good_events, scope=set(client.sent))
    wrong_answers = [
        (status, code, want_status, want_code)
        for (status, code), (_, want_status, want_code) in zip(answers, requests, strict=True)
        if status != want_status or code != want_code
    ]
    rejections: dict[tuple[str, str], str] = {}
    for record in await read_topic(cluster.broker.bootstrap, REJECTED):
        doc = orjson.loads(record.value)
        rejections[((record.key or b"").decode(), doc["service"])] = doc["code"]
    unclear = []
    for bad in bad_records:
        for service in CONSUMERS[bad.topic]:
            got = rejections.get((bad.key, service))
            if got != bad.code:
                unclear.append((bad.topic, bad.key, service, bad.code, got))
    tally_sources = {
        str(doc.get("source_event_id"))
        for r in await read_topic(cluster.broker.bootstrap, TALLY_CHANGES)
        if r.key is None or not r.key.startswith(b"poison-")  # our own poison on that topic
        for doc in [orjson.loads(r.value)]
    }
    poison_counted = {bad.key for bad in bad_records} & tally_sources
    figures.sent = len(client.sent) + ON_TOPICS + OVER_HTTP
    figures.accepted = len(client.ledger.accepted)
    figures.rejected = ON_TOPICS + OVER_HTTP - len(unclear) - len(wrong_answers)
    figures.faults = ON_TOPICS + OVER_HTTP
    figures.fill(cluster, verdict, since=mark)
    figures.dead_lettered = sum(len(CONSUMERS[bad.topic]) for bad in bad_records) - len(unclear)
    figures.seconds = time.monotonic() - started
    figures.passed = (
        verdict.ok and not wrong_answers and not unclear and not poison_counted and took <= WITHIN_S
    )
    figures.notes = (
        f"{ON_TOPICS:,} bad records on the topics, {OVER_HTTP:,} bad requests; answered with the wrong "
        f"code: {len(wrong_answers)} requests, {len(unclear)} records (by consumer); {len(good_events):,} "
        f"good events behind them sent in {accepted - sending:.2f} s, all processed {took:.2f} s after the "
        f"last was accepted; bad records that changed a tally: {len(poison_counted)}"
    )
    assert verdict.ok, verdict.explain()
    assert not poison_counted
    assert not wrong_answers, Counter(wrong_answers).most_common(10)
    assert not unclear, Counter((t, s, c, g) for t, _, s, c, g in unclear).most_common(10)
    assert took <= WITHIN_S, f"good traffic processed {took:.2f} s after it was accepted"
