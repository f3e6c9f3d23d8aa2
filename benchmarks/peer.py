"""The peer: ketnap's quota job written the way a Quix Streams user would, replayed on Tansu.

The job (issue 8): read the CloudEvents of ``ketnap.candidate-events`` (key = candidate
id), keep per-candidate state [hồ sơ quần chúng] in Quix's RocksDB store (the profile's
categories from ``sourced``, the milestones reached, events held until their ``sourced``
arrives), count each milestone at most once, keep per-branch tallies by (branch, local
date in Asia/Ho_Chi_Minh, metric, category) for ``all``, ``female`` and each profile
category, roll them up to the province, and emit every tally change, branch level to
``peer.tally-changes`` (the shape of ``ketnap.tally-changes``) and province level to
``peer.province-tallies``. Re-keying is Quix's idiom, ``group_by`` through repartition
topics; state is backed by changelog topics; the guarantee is at-least-once (Tansu has
no idempotent producer and no transactions).

Scope: milestones only (no drops, transfers or voids), and no pydantic validation of the
envelope (ketnap's quota re-validates every event; the peer trusts the intake).

Measured: ``peer_replay_events_per_s``, the N events already on the topic, from the
first message processed to the final checkpoint (producer flushed, state and offsets
committed), then checked: both output topics hold one change per counted (event,
category). Joining the consumer group (23 s on Tansu with librdkafka's defaults, ~3 s
with `make_app`'s settings) and opening the state stores are not counted: the clock
starts at the first processed message. ``peer_events_per_cpu_s`` divides by this
process's CPU time instead (Quix and librdkafka, not the broker): steadier on a loaded
machine. ``peer_ratio`` is ketnap's replay throughput on the same events over the
peer's, when ``benchmarks.quota`` exposes ``replay_events_per_s(events, reference)``
(the branch registrations first, untimed, as the peer's job knows every branch's province).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from quixstreams import Application

from benchmarks.common import broker
from shared.orgtree import load_org_trees
from shared.topics import CANDIDATE_EVENTS, CLOUDEVENTS_CONTENT_TYPE

QUICK_RUNS = 1
QUICK_RUNS_WHY = (
    "Quix's group join and 36 state partitions, then ketnap's own replay, cost ~20 s a run "
    "against ~3 s of measuring 5,000 events"
)
PEER_TALLIES = "peer.tally-changes"
PEER_PROVINCES = "peer.province-tallies"
VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MILESTONES = ("sourced", "class_completed", "dossier_verified", "admitted", "confirmed")
# Chance that a candidate who reached milestone i goes on to milestone i + 1.
PROGRESS = (0.85, 0.75, 0.8, 0.9)
CATEGORIES = (
    "student",
    "private_sector",
    "business_owner",
    "ethnic_minority",
    "religious",
    "demobilized_soldier",
    "youth_union",
)
PROVINCES = ("P22", "P10", "P01")  # Quảng Ninh, Lào Cai, Hà Nội (legacy tree)
COMMUNES_PER_PROVINCE = 40
LATE_SOURCED = 0.02  # share of candidates whose `sourced` reaches the topic after a later milestone

Tally = dict[str, Any]
Key = tuple[str, str, str, str]  # (branch or province, local date, metric, category)


class Store(Protocol):
    """What the steps need of Quix's per-key ``State`` (so they run without a broker, too)."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


# ---------------------------------------------------------------- the feed


@dataclass(frozen=True, slots=True)
class Feed:
    """Branch registrations, candidate events in topic order, and the province of every branch.

    Invariant: per candidate, events are in time order except that a `LATE_SOURCED`
    share have their ``sourced`` recorded just after their ``class_completed``.
    """

    reference: list[dict[str, Any]]
    events: list[dict[str, Any]]
    provinces: dict[str, str]


def make_branches(rng: random.Random) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """About 300 branches [chi bộ] in real communes of three provinces: branch -> province, registrations."""
    org = load_org_trees()
    provinces: dict[str, str] = {}
    reference: list[dict[str, Any]] = []
    for province in PROVINCES:
        communes = [u.id for u in org.legacy.units("commune") if org.legacy.province_of(u.id) == province]
        for commune in communes[:COMMUNES_PER_PROVINCE]:
            for k in range(1, rng.randint(3, 4)):
                branch = f"B-{commune}-{k:02d}"
                provinces[branch] = province
                parents = {"legacy": commune, **({"2025": c} if (c := org.to_2025(commune)) else {})}
                data = {"branch_id": branch, "name": f"Chi bộ {k}", "kind": "residential", "parents": parents}
                reference.append(_registered(len(reference), data))
    return provinces, reference


def _registered(i: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"ref-{i:06d}",
        "source": "/deployments/bench",
        "type": "vn.ketnap.org.branch_registered",
        "time": "2023-12-01T09:00:00+07:00",
        "datacontenttype": "application/json",
        "data": data,
        "recordedtime": "2023-12-01T02:00:00Z",
    }


def _profile(rng: random.Random) -> dict[str, Any]:
    k = rng.choices((0, 1, 2, 3), weights=(4, 4, 2, 1))[0]
    return {
        "birth_year": rng.randint(1975, 2006),
        "sex": rng.choice(("female", "male")),
        "categories": rng.sample(CATEGORIES, k),
    }


def _stamp(moment: datetime, utc: bool) -> str:
    """RFC 3339 with an offset: local +07:00, or UTC (the local date must still be Vietnam's)."""
    if utc:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return moment.astimezone(VN_TZ).isoformat()


def _event(i: int, cand: str, milestone: str, when: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{i:08d}",
        "source": "/deployments/bench",
        "type": f"vn.ketnap.candidate.{milestone}",
        "time": _stamp(when, utc=i % 5 == 0),
        "subject": cand,
        "datacontenttype": "application/json",
        "data": data,
    }


def _candidate(rng: random.Random, n: int, branch: str, first: int) -> list[tuple[datetime, dict[str, Any]]]:
    """One candidate's life: (arrival, event) for each milestone reached, ids from ``first``."""
    cand = f"cand-{n:07d}"
    when = datetime(2024, 1, 1, tzinfo=VN_TZ) + timedelta(minutes=rng.randrange(366 * 24 * 60))
    lives = [(when, _event(first, cand, "sourced", when, {"branch_id": branch, "profile": _profile(rng)}))]
    for step, chance in enumerate(PROGRESS, start=1):
        if rng.random() > chance:
            break
        when += timedelta(days=rng.randint(20, 200), minutes=rng.randrange(1440))
        data: dict[str, Any] = {"branch_id": branch}
        if MILESTONES[step] == "admitted" and rng.random() < 0.5:
            data["decision_no"] = f"{rng.randint(1, 999)}-QĐ/ĐU"
        lives.append((when, _event(first + step, cand, MILESTONES[step], when, data)))
    if len(lives) > 1 and rng.random() < LATE_SOURCED:
        lives[0] = (lives[1][0] + timedelta(seconds=1), lives[0][1])
    return lives


def make_feed(n: int, seed: int = 8) -> Feed:
    """``n`` valid candidate events in arrival order, deterministic for a ``seed``."""
    rng = random.Random(seed)
    provinces, reference = make_branches(rng)
    branches = sorted(provinces)
    arrivals: list[tuple[datetime, dict[str, Any]]] = []
    cand = 0
    while len(arrivals) < n + n // 4:  # extra lives so the cut at n keeps a natural mix
        arrivals += _candidate(rng, cand, rng.choice(branches), len(arrivals))
        cand += 1
    arrivals.sort(key=lambda a: (a[0], a[1]["id"]))
    events = []
    for arrival, event in arrivals[:n]:
        event["recordedtime"] = arrival.astimezone(UTC).isoformat().replace("+00:00", "Z")
        events.append(event)
    return Feed(reference, events, provinces)


def categories_of(profile: dict[str, Any]) -> list[str]:
    """``all``, ``female`` if so, then every profile category."""
    return ["all", *(["female"] if profile["sex"] == "female" else []), *profile["categories"]]


def local_date(stamp: str) -> str:
    """The Vietnamese calendar date (ISO) of an RFC 3339 time."""
    return datetime.fromisoformat(stamp).astimezone(VN_TZ).date().isoformat()


def expected_tallies(feed: Feed) -> Counter[Key]:
    """The branch tallies the job must end with, straight from the feed (no holds, no state).

    An event counts when its candidate's ``sourced`` is in the feed (the generator never
    repeats a milestone).
    """
    cats = {
        e["subject"]: categories_of(e["data"]["profile"])
        for e in feed.events
        if e["type"].endswith("sourced")
    }
    tallies: Counter[Key] = Counter()
    for e in feed.events:
        for cat in cats.get(e["subject"], ()):
            tallies[(e["data"]["branch_id"], local_date(e["time"]), e["type"].rpartition(".")[2], cat)] += 1
    return tallies


def counted_events(feed: Feed) -> int:
    """How many events of the feed the job counts (one bundle each through both repartitions)."""
    sourced = {e["subject"] for e in feed.events if e["type"].endswith("sourced")}
    return sum(e["subject"] in sourced for e in feed.events)


# ---------------------------------------------------------------- the Quix job


def _bundle(event: dict[str, Any], categories: list[str], state: Store) -> list[dict[str, Any]]:
    """The counted event, or nothing when its milestone was already reached."""
    milestone = event["type"].rpartition(".")[2]
    reached = state.get("reached", [])
    if milestone in reached:
        return []
    state.set("reached", [*reached, milestone])
    return [
        {
            "branch_id": event["data"]["branch_id"],
            "date": local_date(event["time"]),
            "metric": milestone,
            "categories": categories,
            "event_id": event["id"],
        }
    ]


def count_candidate_event(event: dict[str, Any], state: Store) -> list[dict[str, Any]]:
    """Per candidate (the message key): each milestone once; events before ``sourced`` are held.

    A held event is released, in time order, when its ``sourced`` arrives.
    """
    categories: list[str] | None = state.get("categories")
    if not event["type"].endswith(".sourced"):
        if categories is None:
            state.set("held", [*state.get("held", []), event])
            return []
        return _bundle(event, categories, state)
    if categories is not None:
        return []  # a second sourced: duplicate_milestone in ketnap's words
    categories = categories_of(event["data"]["profile"])
    state.set("categories", categories)
    held = sorted(state.get("held", []), key=lambda e: datetime.fromisoformat(e["time"]))
    state.delete("held")
    return [b for e in (event, *held) for b in _bundle(e, categories, state)]


def _tally(bundle: dict[str, Any], state: Store, where: dict[str, str]) -> list[Tally]:
    """+1 on (date, metric, category) for each of the bundle's categories; the changes, with
    the new absolute ``value`` and a ``version`` rising by one per change of the key.
    """
    out = []
    for category in bundle["categories"]:
        key = f"{bundle['date']}|{bundle['metric']}|{category}"
        value, version = state.get(key, (0, 0))
        state.set(key, (value + 1, version + 1))
        out.append(
            {
                **where,
                "date": bundle["date"],
                "metric": bundle["metric"],
                "category": category,
                "delta": 1,
                "value": value + 1,
                "version": version + 1,
                "source_event_id": bundle["event_id"],
            }
        )
    return out


def tally_branch(bundle: dict[str, Any], state: Store) -> list[Tally]:
    """Per branch [chi bộ] (the message key): the shape of ``ketnap.tally-changes``."""
    return _tally(bundle, state, {"branch_id": bundle["branch_id"]})


def tally_province(bundle: dict[str, Any], state: Store) -> list[Tally]:
    """Per province [tỉnh]: the same +1s as its branches', so a province is the sum of its branches."""
    return _tally(bundle, state, {"province": bundle["province"]})


def build_job(app: Application, provinces: dict[str, str]) -> None:
    """candidate state, then two branches: group_by branch -> branch tallies, group_by province -> rollup.

    Quix allows no group_by after a group_by, so the province rollup branches off the
    counted events rather than off the branch tallies.
    """
    events = app.topic(CANDIDATE_EVENTS, key_deserializer="str", value_deserializer="json")
    tallies = app.topic(PEER_TALLIES, key_serializer="str", value_serializer="json")
    rollups = app.topic(PEER_PROVINCES, key_serializer="str", value_serializer="json")
    counted = app.dataframe(events).apply(count_candidate_event, stateful=True, expand=True)
    counted = counted.apply(lambda b: {**b, "province": provinces[b["branch_id"]]})
    by_branch = counted.group_by("branch_id", key_serializer="str", key_deserializer="str")
    by_branch.apply(tally_branch, stateful=True, expand=True).to_topic(tallies)
    by_province = counted.group_by("province", key_serializer="str", key_deserializer="str")
    by_province.apply(tally_province, stateful=True, expand=True).to_topic(rollups)


# ---------------------------------------------------------------- the run


def create_peer_topics(bootstrap: str) -> None:
    """Tansu needs explicit configs; Quix derives its internal topics' retention from the input's."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    specs = [NewTopic(t, 12, 1, config={"retention.ms": "-1"}) for t in (PEER_TALLIES, PEER_PROVINCES)]
    for future in admin.create_topics(specs).values():
        future.result(30)


def produce(bootstrap: str, events: list[dict[str, Any]]) -> None:
    """The events onto ``ketnap.candidate-events`` as the intake would put them (acks=all)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False, "linger.ms": 5}
    )
    headers = [("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())]
    for event in events:
        while True:
            try:
                producer.produce(CANDIDATE_EVENTS, orjson.dumps(event), event["subject"], headers=headers)
                break
            except BufferError:  # local queue full: let librdkafka send some
                producer.poll(0.1)
    if producer.flush(60):
        raise RuntimeError("events not all delivered")


class _Finish:
    """Counts processed messages over every topic; stops the app once it has seen ``total``.

    The clock starts at the first processed message, so the consumer group join is not
    counted, and stops when the final forced checkpoint (producer flushed, changelogs
    written, state and offsets committed) is done, so leaving the group is not counted.
    """

    def __init__(self, total: int) -> None:
        self.total, self.seen = total, 0
        self.app: Application | None = None
        self.started = self.ended = self.cpu_started = self.cpu_ended = 0.0

    def processed(self, _topic: str, _partition: int, _offset: int) -> None:
        self.seen += 1
        if self.seen == 1:
            self.started, self.cpu_started = time.perf_counter(), time.process_time()
        if self.seen == self.total and self.app is not None:
            self.app.stop()  # the run loop then forces the final checkpoint

    def watch(self, app: Application) -> None:
        self.app = app
        # Quix has no public hook for "checkpoint committed"; wrap the context's method.
        context: Any = app._processing_context
        commit = context.commit_checkpoint

        def commit_and_time(force: bool = False, revoking: bool = False) -> None:
            commit(force=force, revoking=revoking)
            if force and self.seen >= self.total and not self.ended:
                self.ended, self.cpu_ended = time.perf_counter(), time.process_time()

        context.commit_checkpoint = commit_and_time


def make_app(bootstrap: str, state_dir: str, on_processed: Callable[[str, int, int], None]) -> Application:
    """At-least-once on Tansu: no idempotent producer, and two consumer settings Tansu needs.

    Measured on Tansu: a JoinGroup is answered after about half of ``session.timeout.ms``
    (librdkafka's 45 s default: a 23 s join; 6 s, Kafka's usual minimum: 3 s), and a
    watermark query waits behind the consumer's long-polling Fetch, so librdkafka's
    ``fetch.wait.max.ms`` of 500 costs ~0.5 s for each of the 36 state partitions Quix
    assigns (18 s before the first message); 50 ms costs ~2 s.
    """
    return Application(
        broker_address=bootstrap,
        consumer_group="peer-quota",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        processing_guarantee="at-least-once",
        producer_extra_config={"enable.idempotence": False, "acks": "all"},
        consumer_extra_config={"session.timeout.ms": 6000, "fetch.wait.max.ms": 50},
        on_message_processed=on_processed,
        loglevel="WARNING",
    )


@dataclass(frozen=True, slots=True)
class Replayed:
    events_per_s: float
    events_per_cpu_s: float


def replay(bootstrap: str, feed: Feed, state_root: str | None = None) -> Replayed:
    """Run the job over the feed already on the topic; join and group exit excluded."""
    # Input messages, plus one bundle per counted event through each of the two group_bys.
    total = len(feed.events) + 2 * counted_events(feed)
    with tempfile.TemporaryDirectory(prefix="peer-state-", dir=state_root) as state_dir:
        finish = _Finish(total)
        app = make_app(bootstrap, state_dir, finish.processed)
        finish.watch(app)
        build_job(app, feed.provinces)
        app.run(timeout=60, collect=False)  # a stall ends the run (and the check below fails it)
    if finish.seen < total or not finish.ended:
        raise RuntimeError(f"peer stopped after {finish.seen} of {total} messages")
    n = len(feed.events)
    return Replayed(n / (finish.ended - finish.started), n / (finish.cpu_ended - finish.cpu_started))


def final_values(bootstrap: str, topic: str, unit: str, expected: int) -> dict[Key, int]:
    """The last ``value`` per (unit, date, metric, category) of ``topic``, read from the start.

    Read up to ``expected`` changes (partitions assigned: no group join). Not from the high
    watermarks: Tansu reports them short of what is readable (8,495 for 10,000 messages).
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "peer-check", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    final: dict[Key, int] = {}
    seen, idle = 0, 0
    try:
        while seen < expected and idle < 50:
            messages = [m for m in consumer.consume(10_000, 0.2) if not m.error()]
            seen, idle = seen + len(messages), 0 if messages else idle + 1
            for message in messages:
                c = orjson.loads(message.value())
                key = (c[unit], c["date"], c["metric"], c["category"])
                final[key] = max(final.get(key, 0), c["value"])
    finally:
        consumer.close()
    return final


def check_outputs(bootstrap: str, feed: Feed) -> None:
    """Both output topics end with the feed's tallies, or the figure means nothing."""
    branches = expected_tallies(feed)
    provinces: Counter[Key] = Counter()
    for (branch, day, metric, category), value in branches.items():
        provinces[(feed.provinces[branch], day, metric, category)] += value
    changes = sum(branches.values())
    if final_values(bootstrap, PEER_TALLIES, "branch_id", changes) != branches:
        raise RuntimeError(f"{PEER_TALLIES} does not end with the feed's branch tallies")
    if final_values(bootstrap, PEER_PROVINCES, "province", changes) != provinces:
        raise RuntimeError(f"{PEER_PROVINCES} does not end with the feed's province tallies")


def ketnap_replay(feed: Feed) -> float | None:
    """Ketnap's own replay of the same events, its branches registered first as the peer's job
    has their provinces before it starts, if ``benchmarks.quota`` offers it."""
    try:
        from benchmarks import quota
    except ImportError:
        return None
    measure = getattr(quota, "replay_events_per_s", None)
    return float(measure(feed.events, feed.reference)) if callable(measure) else None


def run(quick: bool) -> dict[str, float]:
    n = 5_000 if quick else 200_000
    feed = make_feed(n)
    with broker() as running:
        create_peer_topics(running.bootstrap)
        produce(running.bootstrap, feed.events)
        replayed = replay(running.bootstrap, feed)
        check_outputs(running.bootstrap, feed)
    figures = {
        "peer_replay_events_per_s": replayed.events_per_s,
        "peer_events_per_cpu_s": replayed.events_per_cpu_s,
        "peer_events": float(n),
    }
    ketnap_rate = ketnap_replay(feed)
    if ketnap_rate is not None:
        figures["peer_ratio"] = ketnap_rate / replayed.events_per_s
    return figures


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
