"""Batch handlers of the quota service: decode, decide with the pure domain, write in one transaction.

``handle_candidates`` (``ketnap.candidate-events``): for a batch, in the consumer's
transaction, (1) decode every record once, poison becomes a rejection; (2) lock and
load the states of every candidate named (one query, plus one for states not in the
cache); (3) drop duplicates and reject ``id_conflict`` (same id, other content) against
``quota_processed`` and within the batch; (4) ``lifecycle.apply`` each new event in
batch order; (5) write: processed ids, candidate rows, tallies (deltas summed per
key first, one upsert), rejections, and the outbox (one tally change per changed key
and batch, one message per rejection). A redelivered event is found in
``quota_processed`` and changes nothing.

``handle_reference`` (``ketnap.reference-events``): branches (parents and provinces in
both trees) and targets (latest ``time`` wins), both idempotent upserts.

``expire_held_candidates``: events held ``park_ttl`` or longer are rejected
``unknown_candidate`` and forgotten (a replay of one is a new arrival).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.quota import store, wire
from services.quota.cache import StateCache
from services.quota.domain import (
    CandidateEvent,
    CandidateState,
    EventType,
    Rejection,
    RejectionCode,
    Status,
    Target,
    expire_held,
    latest_targets,
    probation_due,
    replay,
    target_from_cloudevent,
)
from services.quota.tables import candidates, outbox
from shared.consumer import Batch, Record
from shared.events import BranchRegistered, short_type
from shared.logging import bind_ids, clear_ids, get_logger
from shared.metrics import EVENTS_PROCESSED, REJECTIONS, gauge
from shared.orgtree import OrgTrees, TreeVersion, local_date
from shared.outbox import OutboxMessage, enqueue

log = get_logger(__name__)
SERVICE = wire.SERVICE
HELD_EVENTS = gauge(
    "ketnap_held_events", "Candidate events held, waiting for their sourced or voided event.", ("service",)
)

REFERENCE_TYPES = frozenset({wire.BRANCH_REGISTERED, wire.TARGET_SET})


@dataclass
class _Effects:
    """What one batch writes, gathered before the writes (one statement per table)."""

    now: datetime
    sums: Counter[store.KeyTuple] = field(default_factory=Counter)
    sources: dict[store.KeyTuple, tuple[str, str]] = field(default_factory=dict)
    rejected: list[tuple[str, str, str, dict[str, Any] | str | None, str | None]] = field(
        default_factory=list
    )
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    messages: list[OutboxMessage] = field(default_factory=list)

    def reject(
        self,
        event_id: str,
        code: str,
        detail: str,
        event: dict[str, Any] | str | None,
        correlation: str | None,
    ) -> None:
        """``event`` None: the original is looked up in ``quota_processed`` before writing."""
        self.rejected.append((event_id, code, detail, event, correlation))

    def poison(self, poison: wire.Poison, event_type: str = "unknown") -> None:
        self.reject(poison.key, poison.code, poison.detail, poison.event, poison.correlation_id)
        self.outcomes[(event_type, "rejected")] += 1

    def count(self, decoded: wire.Decoded, sums: Counter[store.KeyTuple]) -> None:
        recorded = decoded.recorded.isoformat()
        for key, n in sums.items():
            if n:
                self.sums[key] += n
                self.sources[key] = (decoded.id, recorded)

    async def write(self, connection: AsyncConnection, originals: Mapping[str, dict[str, Any]]) -> None:
        changed = await store.add_to_tallies(connection, self.sums)
        for key, (value, version) in changed.items():
            source, recorded = self.sources[key]
            self.messages.append(wire.tally_change(key, self.sums[key], value, version, source, recorded))
        await self._write_rejections(connection, originals)
        await enqueue(connection, outbox, self.messages)

    async def _write_rejections(
        self, connection: AsyncConnection, originals: Mapping[str, dict[str, Any]]
    ) -> None:
        missing = [r[0] for r in self.rejected if r[3] is None and r[0] not in originals]
        found = {**originals, **(await store.originals(connection, missing) if missing else {})}
        rows = []
        for event_id, code, detail, event, correlation in self.rejected:
            original: dict[str, Any] | str = (
                event if event is not None else found.get(event_id, {"id": event_id})
            )
            self.messages.append(wire.rejection(event_id, code, detail, original, self.now, correlation))
            rows.append(
                {
                    "event_id": event_id,
                    "code": code,
                    "detail": detail,
                    "service": SERVICE,
                    "rejected_at": self.now,
                    "event": orjson.dumps(original).decode(),
                }
            )
        await store.insert_rejections(connection, rows)

    def report(self) -> None:
        """Metrics and one log line per rejection, once committed."""
        for (event_type, outcome), n in self.outcomes.items():
            EVENTS_PROCESSED.labels(SERVICE, event_type, outcome).inc(n)
        for code, n in Counter(r[1] for r in self.rejected).items():
            REJECTIONS.labels(SERVICE, code).inc(n)
        for event_id, code, detail, _, correlation in self.rejected:
            log.info(
                "event rejected", event_id=event_id, correlation_id=correlation, code=code, detail=detail
            )


# -- candidate events ------------------------------------------------------------------


def _decode_candidates(
    records: Iterable[Record], effects: _Effects
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
    connection: AsyncConnection, items: list[tuple[wire.Decoded, CandidateEvent]], effects: _Effects
) -> list[tuple[wire.Decoded, CandidateEvent]]:
    """Events not taken in before; duplicates counted, ``id_conflict`` rejected."""
    known = await store.processed_digests(connection, [d.id for d, _ in items])
    fresh = []
    for decoded, event in items:
        kind = short_type(decoded.envelope.type)
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
        "state": orjson.dumps(state.to_dict()).decode(),
    }


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
    new = [e for e in events if before.event(e.id) is None]
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


def _reject_outcome(effects: _Effects, rejection: Rejection, batch_raw: Mapping[str, wire.Decoded]) -> None:
    decoded = batch_raw.get(rejection.event_id)
    event = decoded.raw if decoded is not None else None
    correlation = decoded.correlation_id if decoded is not None else None
    effects.reject(rejection.event_id, str(rejection.code), rejection.detail, event, correlation)


async def handle_candidates(batch: Batch, cache: StateCache) -> None:
    """One batch of ``ketnap.candidate-events`` (see the module docstring)."""
    connection, effects = batch.connection, _Effects(batch.now)
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
            effects.outcomes[(short_type(decoded.envelope.type), _outcome_of(outcome, decoded.id))] += 1
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


# -- reference events ------------------------------------------------------------------


def _precedes(a: Sequence[Any] | None, b: Sequence[Any]) -> bool:
    """Is registration ``a`` = [time, event_id, ...] older than ``b``? (None: nothing yet)."""
    return a is None or (datetime.fromisoformat(a[0]), a[1]) < (datetime.fromisoformat(b[0]), b[1])


def _merge_branch(
    stored: dict[str, Any] | None, decoded: wire.Decoded, org: OrgTrees
) -> dict[str, Any] | None:
    """The branch row after one registration; None when it changes nothing (older or repeated)."""
    data: BranchRegistered = decoded.data
    mark = [decoded.envelope.time.isoformat(), decoded.id]
    registered = orjson.loads(stored["registered"]) if stored else {}
    changed = False
    if _precedes(registered.get("info"), mark):
        registered["info"] = [*mark, data.name, str(data.kind)]
        changed = True
    trees: tuple[TreeVersion, ...] = ("legacy", "2025")
    for tree in trees:
        parent = data.parents.get(tree)
        if parent is not None and _precedes(registered.get(tree), mark):
            registered[tree] = [*mark, parent]
            changed = True
    return _branch_row(data.branch_id, registered, org) if changed else None


def _branch_row(branch_id: str, registered: dict[str, Any], org: OrgTrees) -> dict[str, Any]:
    legacy = registered["legacy"][2] if "legacy" in registered else None
    declared_2025 = registered["2025"][2] if "2025" in registered else None
    v2025 = declared_2025 or (org.to_2025(legacy) if legacy else None)
    return {
        "branch_id": branch_id,
        "name": registered["info"][2],
        "kind": registered["info"][3],
        "parent_legacy": legacy,
        "parent_2025": v2025,
        "province_legacy": _province(org, "legacy", legacy),
        "province_2025": _province(org, "2025", v2025),
        "district_legacy": _district(org, legacy),
        "registered": orjson.dumps(registered).decode(),
    }


def _province(org: OrgTrees, tree: str, unit_id: str | None) -> str | None:
    if unit_id is None or unit_id not in org[tree]:  # type: ignore[index]
        return None
    return org[tree].province_of(unit_id)  # type: ignore[index]


def _district(org: OrgTrees, unit_id: str | None) -> str | None:
    if unit_id is None or unit_id not in org.legacy:
        return None
    unit = org.legacy.unit(unit_id)
    chain = (unit, *org.legacy.ancestors(unit_id))
    return next((u.id for u in chain if u.level == "district"), None)


def _target_row(target: Target) -> dict[str, Any]:
    return {
        "unit_id": target.key.unit_id,
        "tree": target.key.tree,
        "year": target.key.year,
        "metric": target.key.metric,
        "category": target.key.category,
        "kind": target.key.kind,
        "value": target.value,
        "time": target.time.astimezone(UTC),
        "event_id": target.event_id,
        "source_doc": target.source_doc,
    }


def _stored_target(row: Mapping[str, Any]) -> Target:
    return Target.from_dict({**row, "time": store.utc(row["time"]).isoformat()})  # type: ignore[union-attr]


async def _apply_targets(connection: AsyncConnection, incoming: list[Target]) -> None:
    if not incoming:
        return
    keys = sorted({_target_key(t) for t in incoming})
    stored = [_stored_target(r) for r in await store.stored_targets(connection, keys)]
    before = {t.key: t for t in stored}
    winners = latest_targets([*stored, *incoming])
    await store.save_targets(connection, [_target_row(t) for k, t in winners.items() if before.get(k) != t])


def _target_key(target: Target) -> tuple[str, str, int, str, str, str]:
    k = target.key
    return (k.unit_id, k.tree, k.year, k.metric, k.category, k.kind)


async def handle_reference(batch: Batch, org: OrgTrees) -> None:
    """One batch of ``ketnap.reference-events``: branch registrations and targets."""
    effects = _Effects(batch.now)
    registrations: list[wire.Decoded] = []
    incoming: list[Target] = []
    for record in batch.records:
        item = wire.decode(record, REFERENCE_TYPES)
        if isinstance(item, wire.Poison):
            effects.poison(item)
            continue
        kind = short_type(item.envelope.type)
        if wire.is_branch(item):
            registrations.append(item)
        else:
            try:
                incoming.append(target_from_cloudevent(item.raw))
            except ValueError as exc:
                effects.poison(wire.Poison(item.id, "invalid_schema", str(exc), item.raw), kind)
                continue
        effects.outcomes[(kind, "applied")] += 1
    branch_ids = sorted({r.data.branch_id for r in registrations})
    known = await store.stored_branches(batch.connection, branch_ids)
    changed: dict[str, dict[str, Any]] = {}
    for item in registrations:
        row = _merge_branch(known.get(item.data.branch_id), item, org)
        if row is not None:
            known[item.data.branch_id] = changed[item.data.branch_id] = row
    await store.save_branches(batch.connection, list(changed.values()))
    await _apply_targets(batch.connection, incoming)
    await effects.write(batch.connection, {})
    batch.after_commit(effects.report)


# -- held events -----------------------------------------------------------------------


async def expire_held_candidates(
    engine: AsyncEngine, now: datetime, ttl: timedelta, *, limit: int = 500
) -> int:
    """Reject ``unknown_candidate`` what has been held ``ttl`` or longer; the number rejected."""
    effects = _Effects(now)
    cutoff = now.astimezone(UTC) - ttl
    async with engine.begin() as connection:
        stored = await store.expiring_candidates(connection, cutoff, limit)
        if not stored:
            return 0
        rows: list[dict[str, Any]] = []
        expired: list[Rejection] = []
        for found in stored.values():
            state, rejections = expire_held(CandidateState.from_dict(orjson.loads(found.state)), now, ttl)
            rows.append(candidate_row(state, found.version + 1))
            expired.extend(rejections)
        ids = [r.event_id for r in expired]
        originals = await store.originals(connection, ids)
        for r in expired:
            original = originals.get(r.event_id) or wire.wire_event(r.event)
            effects.reject(r.event_id, str(r.code), r.detail, original, None)
        await store.save_candidates(connection, rows)
        await store.forget_processed(connection, ids)
        await effects.write(connection, {})
    effects.report()
    return len(expired)


async def held_events(engine: AsyncEngine) -> int:
    """How many events are held now (for the ``ketnap_held_events`` gauge)."""
    async with engine.connect() as connection:
        total = await connection.scalar(
            select(func.coalesce(func.sum(candidates.c.held_count), 0)).where(
                candidates.c.held_since.is_not(None)
            )
        )
    count = int(total or 0)
    HELD_EVENTS.labels(SERVICE).set(count)
    return count
