"""The candidate-event handler: decode, decide with the pure lifecycle, write in one transaction.

``handle_candidates`` (``ketnap.candidate-events``): in the consumer's transaction,
(1) decode every record once, poison becomes a rejection; (2) lock and load the state
of every candidate named (one query, plus one for states not in the cache); (3) drop
duplicates and reject ``id_conflict`` (same id, other content) against
``quota_processed`` and within the batch; (4) apply each candidate's new events with
one replay of the lifecycle (:func:`apply_all`); (5) write processed ids, candidate
rows, tallies (summed per key first, one upsert), rejections and the outbox (one
tally change per changed key and batch, one message per rejection). A redelivered
event is found in ``quota_processed`` and changes nothing.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from services.quota import store, wire
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


async def _fresh(
    connection: AsyncConnection, items: list[tuple[wire.Decoded, CandidateEvent]], effects: Effects
) -> list[tuple[wire.Decoded, CandidateEvent]]:
    """Events not taken in before; duplicates counted, ``id_conflict`` rejected."""
    known = await store.processed_digests(connection, [d.id for d, _ in items])
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
    connection: AsyncConnection, ids: Sequence[str], cache: StateCache
) -> dict[str, tuple[int, CandidateState]]:
    """Lock the candidates' rows and return (version, state) of those that exist."""
    versions = await store.candidate_versions(connection, ids)
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


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic collection while a batch runs; one (of what survived it) when it is done.

    A batch keeps hundreds of thousands of new objects alive until it ends (events,
    states, rows, messages), so the collector would scan them again and again as they
    pile up: three young collections per batch, ~15 us per event (measured with
    ``gc.callbacks``). A batch's garbage is freed by reference counting; what is cyclic
    waits for the collection after the batch.
    """
    if not gc.isenabled():  # already paused (e.g. by a caller): leave it to them
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def handle_candidates(batch: Batch, cache: StateCache) -> None:
    """One batch of ``ketnap.candidate-events`` (see the module docstring)."""
    with _collector_paused():
        await _handle_candidates(batch, cache)


async def _handle_candidates(batch: Batch, cache: StateCache) -> None:
    connection, effects = batch.connection, Effects(batch.now)
    items = _decode_candidates(batch.records, effects)
    states = await load_states(connection, sorted({e.candidate_id for _, e in items}), cache)
    fresh = await _fresh(connection, items, effects)
    by_id = {d.id: d for d, _ in fresh}
    per_candidate: dict[str, list[tuple[wire.Decoded, CandidateEvent]]] = {}
    for decoded, event in fresh:
        per_candidate.setdefault(event.candidate_id, []).append((decoded, event))
    touched: dict[str, CandidateState] = {}
    failed: set[str] = set()
    for cid, mine in per_candidate.items():
        cause = mine[-1][0]
        bind_ids(event_id=cause.id, correlation_id=cause.correlation_id)
        known = states.get(cid)
        try:
            outcome = apply_all(known[1] if known else None, [e for _, e in mine])
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
    rows = [candidate_row(s, states[cid][0] + 1 if cid in states else 1) for cid, s in touched.items()]
    await store.insert_processed(
        connection,
        [
            {"event_id": d.id, "digest": d.digest, "candidate_id": e.candidate_id, "event": d.text}
            for d, e in fresh
            if d.id not in failed
        ],
    )
    await store.save_candidates(connection, rows)
    await effects.write(connection, {d.id: d.raw for d, _ in fresh})

    def committed() -> None:
        for row in rows:
            cache.put(row["candidate_id"], row["version"], touched[row["candidate_id"]])
        effects.report()

    batch.after_commit(committed)
