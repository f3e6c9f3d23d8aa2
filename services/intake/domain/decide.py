"""The per-event decision for one request: accepted, duplicate or rejected (with a code), in order.

Pure: the caller looks up what the intake already knows (:class:`Known`), passes
``now`` and the token's scope, and gets a :class:`Plan` back. Invariants:

- one result per item, in request order; a bad item never changes another's result
  except through the registry (a branch registered earlier in the request is known
  to the events after it) and ids (the second use of an id in a request is a
  ``duplicate`` or an ``id_conflict``);
- an id already published with the same content is ``duplicate`` whatever else is
  true now (it was judged when first accepted); with other content ``id_conflict``;
  an id left ``pending`` by a failed attempt with the same content is judged again
  and, if accepted, published again (consumers dedupe by id);
- the order of checks is: schema and type, id, ``future_time``, references
  (``unknown_branch``, ``unknown_unit``), scope (``out_of_scope``);
- voids are judged after every other event of the request, so a void may name an
  event sent later in the same request;
- a void of an event the intake has not seen is accepted from any token; unless the
  token is national it is published with the token's scope (``voidscope``), and the
  quota applies it only to an event that scope holds. A void of a known event is
  authorised through that event and carries no scope.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import cast

from services.intake.domain.model import (
    ACCEPTED,
    DUPLICATE,
    FUTURE_TOLERANCE,
    REGISTERED,
    REJECTED,
    TARGET_SET,
    TRANSFERRED,
    VOIDED,
    Accepted,
    Inspected,
    Known,
    Lookups,
    Plan,
    Result,
    StoredEvent,
)
from services.intake.domain.registry import Attribution, BranchHistory, Placement, tree_at
from services.intake.domain.validation import Refusal, content_hash, item_id, validate_item
from shared.events import (
    BranchRegistered,
    CandidateTransferred,
    CandidateVoided,
    Envelope,
    TargetSet,
    short_type,
)
from shared.orgtree import OrgTrees, TreeVersion
from shared.scope import TokenScope, province_of, void_scope
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS


def inspect(items: Sequence[object]) -> list[Inspected]:
    """Validate every item's shape; ids and hashes are computed even for refused items."""
    out = []
    for item in items:
        checked = validate_item(item)
        event, refusal = (None, checked) if isinstance(checked, Refusal) else (checked, None)
        out.append(Inspected(item, item_id(item), event, refusal, content_hash(item)))
    return out


def lookups(inspected: Sequence[Inspected]) -> Lookups:
    events, branches = set(), set()
    for each in inspected:
        if each.event is None:
            continue
        events.add(each.event.id)
        data, kind = each.event.data, each.event.type
        if kind == VOIDED:
            events.add(cast(CandidateVoided, data).voids)
        elif kind == TRANSFERRED:
            moved = cast(CandidateTransferred, data)
            branches |= {moved.from_branch_id, moved.to_branch_id}
        elif kind != TARGET_SET:
            branches.add(data.branch_id)  # type: ignore[attr-defined]  # every other type has one
    return Lookups(frozenset(events), frozenset(branches))


class _Rejection(Exception):
    def __init__(self, code: str, detail: str, attribution: Attribution | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.attribution = code, detail, attribution


def decide(
    inspected: Sequence[Inspected], known: Known, scope: TokenScope, trees: OrgTrees, now: datetime
) -> Plan:
    """Judge every item of a request; see the module invariants."""
    steps = judging(inspected, known, scope, trees, now, step=len(inspected) + 1)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            plan: Plan = done.value
            return plan


def judging(
    inspected: Sequence[Inspected],
    known: Known,
    scope: TokenScope,
    trees: OrgTrees,
    now: datetime,
    *,
    step: int,
) -> Generator[None, None, Plan]:
    """:func:`decide` in slices: pauses after every ``step`` items, returns the plan.

    A caller serving many clients resumes it between other work, so a big request does
    not hold the others up for its whole judgement."""
    judge = _Judge(known, scope, trees, now)
    results: list[Result | None] = [None] * len(inspected)
    voids = [i for i, x in enumerate(inspected) if x.event is not None and _is_void(x.event)]
    void_set = set(voids)
    order = [i for i in range(len(inspected)) if i not in void_set] + voids
    for start in range(0, len(order), step):
        for index in order[start : start + step]:
            results[index] = judge.judge(index, inspected[index])
        if start + step < len(order):
            yield
    return Plan([r for r in results if r is not None], judge.accepted)


def _is_void(event: Envelope) -> bool:
    return event.type == VOIDED


class _Judge:
    """Working state of one request: branches registered so far and ids seen so far."""

    def __init__(self, known: Known, scope: TokenScope, trees: OrgTrees, now: datetime) -> None:
        self.known, self.scope, self.trees, self.now = known, scope, trees, now
        self.branches: dict[str, BranchHistory] = dict(known.branches)
        self.seen: dict[str, bytes] = {}
        self.accepted_here: dict[str, tuple[str | None, Attribution]] = {}
        self.accepted: list[Accepted] = []
        self.latest = now + FUTURE_TOLERANCE
        # Memos for a request's many events of the same branches (a few µs per event saved):
        # the attribution of a branch with a single placement depends only on the tree in
        # force (not on the instant), so its in-scope attribution is kept per (branch, tree);
        # provinces per unit. Only successes are kept: a rejection is judged every time.
        self.in_scope: dict[tuple[str, TreeVersion], Attribution] = {}
        self.provinces: dict[tuple[str, TreeVersion], str] = {}
        self.instants: dict[str, tuple[bool, TreeVersion]] = {}

    def judge(self, index: int, each: Inspected) -> Result:
        if each.event is None:
            assert each.refusal is not None
            return Result(each.id, REJECTED, each.refusal.code, each.refusal.detail)
        event, kind = each.event, short_type(each.event.type)
        settled = self._by_id(event.id, each.hash, kind)
        if settled is not None:
            return settled
        stored = self.known.events.get(event.id)
        try:
            accepted = self._admit(index, each, event, was_pending=stored is not None)
        except _Rejection as no:
            return Result(event.id, REJECTED, no.code, no.detail, kind, self._province(no.attribution))
        self._remember(accepted)
        return Result(event.id, ACCEPTED, type=kind, province=self._province(accepted.attribution))

    def _by_id(self, event_id: str, digest: bytes, kind: str) -> Result | None:
        """``duplicate``/``id_conflict`` from this request or the store; None if it must be judged."""
        if event_id in self.seen:
            if self.seen[event_id] == digest:
                return Result(event_id, DUPLICATE, type=kind)
            return Result(
                event_id, REJECTED, "id_conflict", "id used earlier in this request with other content", kind
            )
        stored = self.known.events.get(event_id)
        if stored is None:
            return None
        if stored.hash != digest:
            return Result(event_id, REJECTED, "id_conflict", "id already used with other content", kind)
        if stored.published:
            self.seen[event_id] = digest
            return Result(event_id, DUPLICATE, type=kind, province=self._province(stored.attribution))
        return None

    def _admit(self, index: int, each: Inspected, event: Envelope, *, was_pending: bool) -> Accepted:
        future, tree = self._instant(each, event.time)
        if future:
            raise _Rejection("future_time", f"time {event.time.isoformat()} is more than 5 minutes ahead")
        data, kind = event.data, event.type  # dispatch on the type string: isinstance on models is slow
        placement: Placement | None = None
        void_scope: str | None = None
        if kind == REGISTERED:
            registered = cast(BranchRegistered, data)
            placement, attribution = self._registration(event, registered)
            topic, key, branch_id = REFERENCE_EVENTS, registered.branch_id, registered.branch_id
        elif kind == TARGET_SET:
            target = cast(TargetSet, data)
            attribution = self._target(event, target)
            topic, key, branch_id = REFERENCE_EVENTS, target.unit_id, None
        elif kind == VOIDED:
            branch_id, attribution, void_scope = self._void(cast(CandidateVoided, data))
            topic, key = CANDIDATE_EVENTS, _subject(event)
        else:
            branch_id, attribution = self._candidate(event, tree)
            topic, key = CANDIDATE_EVENTS, _subject(event)
        return Accepted(
            index,
            cast(dict[str, object], each.item),
            event,
            each.hash,
            topic,
            key,
            branch_id,
            attribution,
            placement,
            was_pending,
            void_scope,
        )

    def _remember(self, accepted: Accepted) -> None:
        self.seen[accepted.event.id] = accepted.hash
        self.accepted_here[accepted.event.id] = (accepted.branch_id, accepted.attribution)
        self.accepted.append(accepted)
        if accepted.placement is not None:
            branch_id = accepted.placement.branch_id
            self.in_scope.pop((branch_id, "legacy"), None)  # its history changes
            self.in_scope.pop((branch_id, "2025"), None)
            history = self.branches.get(branch_id)
            self.branches[branch_id] = (
                history.add(accepted.placement) if history else BranchHistory.of([accepted.placement])
            )

    # -- one method per kind of event -------------------------------------------------

    def _registration(self, event: Envelope, data: BranchRegistered) -> tuple[Placement, Attribution]:
        """Every named parent must be attachable in its tree and inside the scope; a known branch
        must also lie inside the scope where it is now (a token cannot take over another
        province's branch)."""
        named: list[tuple[TreeVersion, str]] = [
            (tree, unit) for tree in ("legacy", "2025") if (unit := data.parents.get(tree)) is not None
        ]
        for tree, unit in named:
            if not self.trees[tree].attachable(unit):
                detail = f"parents.{tree}: {unit} is not a commune of the {tree} tree"
                raise _Rejection("unknown_unit", detail)
        attribution = _registration_attribution(event.time, named)
        for tree, unit in named:
            self._require(Attribution(unit, tree), f"parents.{tree} {unit}")
        history = self.branches.get(data.branch_id)
        if history is not None:
            for tree in ("legacy", "2025"):
                unit = history.current.parent(tree)
                if unit is not None:
                    self._require(Attribution(unit, tree), f"branch {data.branch_id} (now under {unit})")
        placement = Placement(data.branch_id, event.time, event.id, data.parents.legacy, data.parents.v2025)
        return placement, attribution

    def _target(self, event: Envelope, data: TargetSet) -> Attribution:
        tree: TreeVersion = data.tree or tree_at(event.time)
        if data.unit_id not in self.trees[tree]:
            raise _Rejection("unknown_unit", f"unit_id: {data.unit_id} is not a unit of the {tree} tree")
        attribution = Attribution(data.unit_id, tree)
        self._require(attribution, f"unit {data.unit_id} ({tree})")
        return attribution

    def _instant(self, each: Inspected, at: datetime) -> tuple[bool, TreeVersion]:
        """Is ``at`` too far ahead, and which tree is in force then; memoised by the time as sent
        (equal strings, equal instants): comparing and hashing aware datetimes is slow."""
        sent = cast(dict[str, str], each.item)["time"]  # a string: validation refuses anything else
        known = self.instants.get(sent)
        if known is None:
            known = self.instants[sent] = (at > self.latest, tree_at(at))
        return known

    def _candidate(self, event: Envelope, tree: TreeVersion) -> tuple[str, Attribution]:
        data = event.data
        if event.type == TRANSFERRED:
            moved = cast(CandidateTransferred, data)
            self._history(moved.to_branch_id, "to_branch_id")
            branch_id = moved.from_branch_id
        else:
            branch_id = data.branch_id  # type: ignore[attr-defined]  # every other candidate type has one
        history = self._history(branch_id, "branch_id")
        if len(history.placements) > 1:
            return branch_id, self._attribute(branch_id, history, event.time)
        key = (branch_id, tree)
        attribution = self.in_scope.get(key)
        if attribution is None:
            attribution = self.in_scope[key] = self._attribute(branch_id, history, event.time)
        return branch_id, attribution

    def _attribute(self, branch_id: str, history: BranchHistory, at: datetime) -> Attribution:
        """Where a candidate event of ``branch_id`` dated ``at`` counts, if it is inside the scope."""
        attribution = history.attribution(at, self.trees)
        if attribution is None:
            raise _Rejection("unknown_unit", f"branch {branch_id} has no unit in the {tree_at(at)} tree")
        self._require(attribution, f"branch {branch_id} ({attribution.unit_id}, {attribution.tree})")
        return attribution

    def _void(self, data: CandidateVoided) -> tuple[str | None, Attribution, str | None]:
        """A void is authorised through the event it voids when the intake knows it.

        One the intake has not seen yet is accepted for any token: the contract holds a
        void that arrives before its event (late, out-of-order batches), and the quota
        applies a void only within the candidate its ``subject`` names, when the voided
        event of that same candidate arrives. Its third value is the ``voidscope`` to
        publish it with: the token's provinces, so that the quota applies it only to an
        event lying in them (a province must not void another province's event by
        guessing its id); None for a national token or a known target."""
        target = self.accepted_here.get(data.voids)
        stored = self.known.events.get(data.voids)
        if target is None and stored is not None and stored.attribution is not None:
            target = (stored.branch_id, stored.attribution)
        if target is None:
            scope = None if self.scope.national else void_scope(self.scope)
            return None, Attribution("VN", "2025"), scope
        self._require(target[1], f"voided event {data.voids}")
        return target[0], target[1], None

    # -- helpers ------------------------------------------------------------------------

    def _history(self, branch_id: str, field_name: str) -> BranchHistory:
        history = self.branches.get(branch_id)
        if history is None:
            raise _Rejection("unknown_branch", f"{field_name}: branch {branch_id} is not registered")
        return history

    def _require(self, attribution: Attribution, what: str) -> None:
        if not self.scope.covers(attribution.unit_id, attribution.tree, self.trees):
            raise _Rejection("out_of_scope", f"{what} is outside this token's provinces", attribution)

    def _province(self, attribution: Attribution | None) -> str:
        if attribution is None:
            return "unknown"
        key = (attribution.unit_id, attribution.tree)
        province = self.provinces.get(key)
        if province is None:
            province = self.provinces[key] = _province_of(self.trees, *key)
        return province


def _province_of(trees: OrgTrees, unit_id: str, tree: TreeVersion) -> str:
    if unit_id not in trees[tree]:
        return "unknown"
    return "VN" if unit_id == "VN" else province_of(trees[tree], unit_id)


def _registration_attribution(at: datetime, named: list[tuple[TreeVersion, str]]) -> Attribution:
    """A registration counts under its parent in the tree in force at its time, else the other one."""
    in_force = tree_at(at)
    tree, unit = next(((t, u) for t, u in named if t == in_force), named[0])
    return Attribution(unit, tree)


def _subject(event: Envelope) -> str:
    assert event.subject is not None  # the envelope requires it for candidate events
    return event.subject


__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "REJECTED",
    "Accepted",
    "Inspected",
    "Known",
    "Lookups",
    "Plan",
    "Result",
    "StoredEvent",
    "decide",
    "inspect",
    "judging",
    "lookups",
]
