"""The candidate-event handler: decode, decide with the pure lifecycle, write in one transaction.

``handle_candidates`` (``ketnap.candidate-events``): in the consumer's transaction,
(1) decode every record once, poison becomes a rejection; (2) lock and load the state
of every candidate named (one query, plus one for states not in the cache); (3) drop
duplicates and reject ``id_conflict`` (same id, other content) against
``quota_processed`` and within the batch; (4) place the events named by voids with a
scope (:mod:`services.quota.places`: one branch query, only when there are such voids)
and apply each candidate's new events with one replay of the lifecycle
(:func:`apply_all`); (5) write processed ids, candidate rows, tallies (summed per key
first, one upsert), rejections and the outbox (one tally change per changed key and
batch, one message per rejection). A redelivered event is found in
``quota_processed`` and changes nothing.

:class:`CandidatePipeline` does steps (1)-(4) for the next batch *before* its
transaction, while the previous batch's transaction is still in PostgreSQL (the
consumer overlaps them): states come from that batch's planned writes, the state cache
or an unlocked read, ids and branches from its planned ids or an unlocked read (a
place stamped from a branch registered meanwhile is as good as one stamped a moment
later: the reference consumer runs beside this one anyway). The transaction then
checks what the plan was decided against (the locked versions, the digests it took as
known; an id it took as new is held by the primary key) and writes it, or, when anything
moved, decides again in the transaction as above.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.quota import places, store, wire
from services.quota.cache import StateCache
from services.quota.domain import (
    CandidateEvent,
    CandidateState,
    EventType,
    Rejection,
    RejectionCode,
    Status,
    probation_due,
    replay,
)
from services.quota.effects import Effects
from shared.consumer import Batch, Record
from shared.events import short_type
from shared.logging import bind_ids, clear_ids, get_logger
from shared.orgtree import local_date

log = get_logger(__name__)


def _decode_candidates(
    records: Iterable[Record], effects: Effects
) -> list[tuple[wire.Decoded, CandidateEvent]]:
    decoded: list[tuple[wire.Decoded, CandidateEvent]] = []
    for record in records:
        item = wire.decode(record, None)
        if isinstance(item, wire.Poison):
            effects.poison(item)
            continue
        try:
            decoded.append((item, wire.candidate_event(item)))
        except ValueError as exc:  # valid on the wire, unusable by the lifecycle
            effects.poison(wire.Poison(item.id, "invalid_schema", str(exc), item.raw, item.correlation_id))
    return decoded


def _fresh(
    items: list[tuple[wire.Decoded, CandidateEvent]], known: dict[str, bytes], effects: Effects
) -> list[tuple[wire.Decoded, CandidateEvent]]:
    """Events not taken in before (``known``: digests of ids taken in, updated); duplicates
    counted, ``id_conflict`` rejected."""
    fresh = []
    for decoded, event in items:
        kind = short_type(decoded.type)
        seen = known.get(decoded.id)
        if seen is None:
            known[decoded.id] = decoded.digest
            fresh.append((decoded, event))
        elif seen == decoded.digest:
            effects.outcomes[(kind, "duplicate")] += 1
        else:
            detail = f"{decoded.id} was taken in before with other content"
            effects.reject(decoded.id, "id_conflict", detail, decoded.raw, decoded.correlation_id)
            effects.outcomes[(kind, "rejected")] += 1
    return fresh


async def load_states(
    connection: AsyncConnection, ids: Sequence[str], cache: StateCache, *, lock: bool = True
) -> dict[str, tuple[int, CandidateState]]:
    """(version, state) of the candidates that exist; their rows locked unless ``lock`` is false."""
    versions = await store.candidate_versions(connection, ids, lock=lock)
    cached = {cid: cache.get(cid, v) for cid, v in versions.items()}
    stored = await store.candidate_states(connection, [cid for cid, s in cached.items() if s is None])
    states = {}
    for cid, version in versions.items():
        state = cached[cid]
        if state is None:
            state = CandidateState.from_dict(orjson.loads(stored[cid].state))
        states[cid] = (version, state)
    return states


def candidate_row(state: CandidateState, version: int) -> dict[str, Any]:
    """The ``quota_candidates`` row of a state: JSON plus the columns the API filters on."""
    held = [d for d in state.decisions if d.status is Status.HELD]
    since = min((d.held_since for d in held if d.held_since is not None), default=None)
    admitted = state.milestone(EventType.ADMITTED)
    probationary = admitted is not None and state.stage == "admitted"
    admitted_on = local_date(admitted.time) if admitted is not None and probationary else None
    due = probation_due(admitted.time) if admitted is not None and probationary else None
    return {
        "candidate_id": state.candidate_id,
        "branch_id": state.branch_id or _any_branch(state.events),
        "stage": state.stage,
        "admitted_on": admitted_on,
        "due_on": due,
        "held_count": len(held),
        "held_since": store.utc(since),
        "version": version,
        "state": state_json(state),
    }


def state_json(state: CandidateState) -> str:
    """``state.to_dict()`` as JSON, written by orjson from the dataclasses themselves (half the CPU).

    The same bytes as ``orjson.dumps(state.to_dict())``: fields in declaration order,
    tuples as lists, enums as values, times in ISO form (a unit test holds them equal).
    """
    return orjson.dumps(state).decode()


def _any_branch(events: Iterable[CandidateEvent]) -> str | None:
    return next((e.branch_id or e.from_branch_id for e in events if e.branch_id or e.from_branch_id), None)


@dataclass(frozen=True, slots=True)
class Applied:
    """What a candidate's new events of one batch changed: state, new rejections, tally sums."""

    state: CandidateState
    rejections: tuple[Rejection, ...]
    sums: Counter[store.KeyTuple]


def contribution_sums(before: CandidateState, after: CandidateState) -> Counter[store.KeyTuple]:
    """Per tally key, how much ``after`` counts more than ``before`` (the summed domain deltas).

    Events whose contribution did not move are skipped without building a delta each.
    """
    old, new = before.contribution_map(), after.contribution_map()
    sums: Counter[store.KeyTuple] = Counter()
    if not old:  # a candidate new to the tallies: everything it counts is new
        sums.update((k.branch_id, k.date, k.metric, k.category) for keys in new.values() for k in keys)
        return sums
    for event_id in old.keys() | new.keys():
        taken, given = old.get(event_id, ()), new.get(event_id, ())
        if taken == given:
            continue
        for key in taken:
            sums[(key.branch_id, key.date, key.metric, key.category)] -= 1
        for key in given:
            sums[(key.branch_id, key.date, key.metric, key.category)] += 1
    return sums


def apply_all(state: CandidateState | None, events: Sequence[CandidateEvent]) -> Applied:
    """A candidate's new events of one batch at once: one replay instead of one per event.

    Equal to ``lifecycle.apply`` of each in turn (the lifecycle is order-free, so the
    final state and the summed deltas are the same); only an event rejected and revived
    within the same batch is not reported as rejected. Events already kept are skipped.
    """
    before = state or CandidateState(events[0].candidate_id)
    kept = {e.id for e in before.events}
    new = [e for e in events if e.id not in kept]
    if not new:
        return Applied(before, (), Counter())
    after = replay(before.candidate_id, (*before.events, *new))
    old = {d.event_id: (d.status, d.code) for d in before.decisions}
    rejections = tuple(
        Rejection(event, d.code or RejectionCode.INVALID_TRANSITION, d.detail or "")
        for d in after.decisions
        if d.status is Status.REJECTED and old.get(d.event_id) != (d.status, d.code)
        if (event := after.event(d.event_id)) is not None
    )
    return Applied(after, rejections, contribution_sums(before, after))


def _outcome_of(outcome: Applied, event_id: str) -> str:
    decision = outcome.state.decision(event_id)
    return str(decision.status) if decision is not None else "rejected"


def _reject_outcome(effects: Effects, rejection: Rejection, batch_raw: Mapping[str, wire.Decoded]) -> None:
    decoded = batch_raw.get(rejection.event_id)
    event = decoded.raw if decoded is not None else None
    correlation = decoded.correlation_id if decoded is not None else None
    effects.reject(rejection.event_id, str(rejection.code), rejection.detail, event, correlation)


async def handle_candidates(batch: Batch, cache: StateCache) -> None:
    """One batch of ``ketnap.candidate-events`` (see the module docstring)."""
    plan = batch.prepared if isinstance(batch.prepared, Plan) else None
    if plan is None or not await plan.holds(batch):
        plan = await _decide_in(batch, cache)
    await _write(batch, plan, cache)


@dataclass(slots=True)
class Outcome:
    """Whether a plan was committed exactly as planned: all that a later plan leaning on it
    needs of it. Holding the plan itself chained every plan to the one before it, so a
    replay kept every batch's states and tally changes alive (3.3 GB of quota RSS for a
    tenth of the country, 2026-12-06)."""

    kept: bool = False


@dataclass
class Plan:
    """A batch decided: what it writes, and what it was decided against.

    ``named``: the candidates of the batch (sorted); ``versions``: the version of each of
    them that has a row, as its state was read; ``known``: the digests of the batch's ids
    it took as taken in before (every other id it took as new); ``leans_on``: the outcome
    of the plan whose writes it took as done (see :class:`CandidatePipeline`);
    ``outcome``: its own (``kept``: committed as planned).
    """

    records: int
    named: list[str]
    versions: dict[str, int]
    known: dict[str, bytes]
    effects: Effects
    fresh: list[tuple[wire.Decoded, CandidateEvent]]
    touched: dict[str, CandidateState]
    rows: list[dict[str, Any]]
    processed: list[dict[str, Any]]
    leans_on: Outcome | None = None
    outcome: Outcome = field(default_factory=Outcome)

    @property
    def kept(self) -> bool:
        return self.outcome.kept

    async def holds(self, batch: Batch) -> bool:
        """Whether the plan still holds in ``batch``'s transaction (locking the candidates' rows).

        An id the plan took as new but taken in meanwhile (by another replica) breaks the
        primary key of ``quota_processed``: the transaction fails and is decided again.
        """
        if len(batch.records) != self.records:  # the fence dropped some: a redelivery
            return False
        if self.leans_on is not None and not self.leans_on.kept:
            return False
        connection = batch.connection
        if await store.candidate_versions(connection, self.named) != self.versions:
            return False
        return not self.known or await store.processed_digests(connection, list(self.known)) == self.known


async def _decide_in(batch: Batch, cache: StateCache) -> Plan:
    """Decide a batch inside its transaction: the candidates' rows locked, ids read."""
    connection, effects = batch.connection, Effects(batch.now)
    items = _decode_candidates(batch.records, effects)
    states = await load_states(connection, sorted({e.candidate_id for _, e in items}), cache)
    known = await store.processed_digests(connection, [d.id for d, _ in items])
    branches = await places.branches(connection, states, items)
    return decide(len(batch.records), items, states, known, effects, branches)


def decide(
    count: int,
    items: list[tuple[wire.Decoded, CandidateEvent]],
    states: Mapping[str, tuple[int, CandidateState]],
    known: dict[str, bytes],
    effects: Effects,
    branches: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """Apply a batch's decoded events to the candidates' states (no I/O).

    ``branches``: the rows :func:`places.branches` read for the events to place (None: none)."""
    named = sorted({e.candidate_id for _, e in items})
    versions = {cid: states[cid][0] for cid in named if cid in states}
    taken = dict(known)
    fresh = _fresh(items, known, effects)
    by_id = {d.id: d for d, _ in fresh}
    per_candidate: dict[str, list[tuple[wire.Decoded, CandidateEvent]]] = {}
    for decoded, event in fresh:
        per_candidate.setdefault(event.candidate_id, []).append((decoded, event))
    work = {
        cid: (s[1] if (s := states.get(cid)) else None, [e for _, e in mine])
        for cid, mine in per_candidate.items()
    }
    work |= places.stamp(work, branches or {})
    touched: dict[str, CandidateState] = {}
    failed: set[str] = set()
    for cid, mine in per_candidate.items():
        cause = mine[-1][0]
        bind_ids(event_id=cause.id, correlation_id=cause.correlation_id)
        try:
            outcome = apply_all(*work[cid])
        except Exception as exc:  # a defect must not block the partition: reject, keep replayable
            log.exception("lifecycle failed", candidate_id=cid)
            for decoded, _ in mine:
                failed.add(decoded.id)
                effects.poison(wire.Poison(decoded.id, "processing_error", repr(exc)[:500], decoded.raw))
            continue
        touched[cid] = outcome.state
        effects.count(cause, outcome.sums)
        for rejection in outcome.rejections:
            _reject_outcome(effects, rejection, by_id)
        for decoded, _ in mine:
            effects.outcomes[(short_type(decoded.type), _outcome_of(outcome, decoded.id))] += 1
    clear_ids()
    rows = [candidate_row(s, versions[cid] + 1 if cid in versions else 1) for cid, s in touched.items()]
    processed = [
        {"event_id": d.id, "digest": d.digest, "candidate_id": e.candidate_id, "event": d.text}
        for d, e in fresh
        if d.id not in failed
    ]
    batch_ids = {d.id for d, _ in items}
    assumed = {i: digest for i, digest in taken.items() if i in batch_ids}
    return Plan(count, named, versions, assumed, effects, fresh, touched, rows, processed)


async def _write(batch: Batch, plan: Plan, cache: StateCache) -> None:
    connection = batch.connection
    await store.insert_processed(connection, plan.processed)
    await store.save_candidates(connection, plan.rows)
    await plan.effects.write(connection, {d.id: d.raw for d, _ in plan.fresh})

    def committed() -> None:
        plan.outcome.kept = True
        for row in plan.rows:
            cache.put(row["candidate_id"], row["version"], plan.touched[row["candidate_id"]])
        plan.effects.report()

    batch.after_commit(committed)


class CandidatePipeline:
    """Decides the next batch before its transaction (``prepare``), from the plan before it.

    The consumer calls ``prepare`` while the previous batch's transaction is still
    running, so that plan's states and ids (not yet committed) stand in for the
    database's; anything else is read without locks. Nothing here is trusted by the
    transaction: :meth:`Plan.holds` checks it there, and a plan that took another's
    writes as done holds only if that one was committed exactly as planned (``kept``).
    """

    def __init__(self, engine: AsyncEngine, cache: StateCache) -> None:
        self.engine, self.cache = engine, cache
        self._last: Plan | None = None

    async def handle(self, batch: Batch) -> None:
        await handle_candidates(batch, self.cache)

    async def prepare(self, records: Sequence[Record]) -> Plan:
        effects = Effects(datetime.now(UTC))
        items = _decode_candidates(records, effects)
        states, known = self._planned(items)
        leans_on = self._last.outcome if self._last is not None and (states or known) else None
        ids = sorted({e.candidate_id for _, e in items} - states.keys())
        unknown = [d.id for d, _ in items if d.id not in known]
        async with self.engine.connect() as connection:
            states |= await load_states(connection, ids, self.cache, lock=False)
            known |= await store.processed_digests(connection, unknown)
            branches = await places.branches(connection, states, items)
        plan = decide(len(records), items, states, known, effects, branches)
        plan.leans_on = leans_on
        self._last = plan
        return plan

    def _planned(
        self, items: list[tuple[wire.Decoded, CandidateEvent]]
    ) -> tuple[dict[str, tuple[int, CandidateState]], dict[str, bytes]]:
        """What the previous plan will have written, for the candidates and ids named."""
        last = self._last
        if last is None:
            return {}, {}
        planned = {r["candidate_id"]: r["version"] for r in last.rows}
        states = {
            e.candidate_id: (planned[e.candidate_id], last.touched[e.candidate_id])
            for _, e in items
            if e.candidate_id in planned
        }
        taken = {r["event_id"]: r["digest"] for r in last.processed}
        return states, {d.id: taken[d.id] for d, _ in items if d.id in taken}
