"""Where a void with a scope finds the event it names: that event's ``place``, stamped once.

A void carrying ``voidscope`` (a province's void of an event the intake had not seen)
counts only if its scope holds the province the voided event lies in
(``shared.scope.admits``, decided by the pure lifecycle). Before a candidate's events
are replayed, every event named by such a void that has no place yet gets one here,
from ``quota_branches``:

- its branch is its ``branch_id`` (a transfer's ``from_branch_id``: the intake
  authorises a transfer there); its tree is the one in force at its local date;
- its province is the branch's province in that tree; before the reform, a branch that
  named only a 2025 parent lies in its 2025 province (as the intake attributes it);
  a branch the quota does not know, or with no province in that tree, lies nowhere
  (``UNPLACED``), which no scope holds.

A place is stamped once and kept in the candidate's state, so the void's decision
does not change afterwards (not when the branch is registered again elsewhere).
The quota keeps a branch's latest parent per tree, not the intake's history of
placements: a branch moved between provinces places its events where it is now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.quota import store
from services.quota.domain import CandidateEvent, CandidateState, EventType
from shared.orgtree import local_date, tree_in_force
from shared.scope import UNPLACED, place

Work = tuple[CandidateState | None, list[CandidateEvent]]
"""A candidate's stored state (None: new) and its new events of the batch."""


def unplaced(events: Iterable[CandidateEvent]) -> list[CandidateEvent]:
    """The events named by a void with a scope that have no place yet."""
    events = list(events)
    named = {e.voids for e in events if e.scope is not None}
    if not named:
        return []
    return [e for e in events if e.id in named and e.place is None]


def branch_of(event: CandidateEvent) -> str | None:
    return event.from_branch_id if event.type is EventType.TRANSFERRED else event.branch_id


def place_of(row: Mapping[str, Any] | None, at: datetime) -> str:
    """Where an event of the branch ``row`` (None: not registered here) dated ``at`` lies."""
    if row is None:
        return UNPLACED
    if tree_in_force(local_date(at)) == "2025":
        return place("2025", row["province_2025"]) if row["province_2025"] else UNPLACED
    if row["province_legacy"]:
        return place("legacy", row["province_legacy"])
    if row["parent_legacy"] is None and row["province_2025"]:
        return place("2025", row["province_2025"])
    return UNPLACED


async def branches(
    connection: AsyncConnection,
    states: Mapping[str, tuple[int, CandidateState]],
    items: Sequence[tuple[Any, CandidateEvent]],
) -> dict[str, dict[str, Any]]:
    """The ``quota_branches`` rows a batch needs to place its events (``items``: its decoded
    events, ``states``: (version, state) of its candidates); no query when nothing is to place."""
    new: dict[str, list[CandidateEvent]] = {}
    for _, event in items:
        new.setdefault(event.candidate_id, []).append(event)
    wanted = {
        branch
        for cid, events in new.items()
        for e in unplaced((*(states[cid][1].events if cid in states else ()), *events))
        if (branch := branch_of(e)) is not None
    }
    return await store.stored_branches(connection, sorted(wanted)) if wanted else {}


def stamp(work: Mapping[str, Work], rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Work]:
    """The candidates of ``work`` with an event to place, with those events placed from ``rows``
    (:func:`branches`; a branch not among them lies nowhere). The others are left out, unchanged."""
    stamped: dict[str, Work] = {}
    for cid, (state, new) in work.items():
        found = unplaced((*(state.events if state else ()), *new))
        if not found:
            continue
        placed = {e.id: replace(e, place=place_of(rows.get(branch_of(e) or ""), e.time)) for e in found}
        if state is not None:
            state = replace(state, events=tuple(placed.get(e.id, e) for e in state.events))
        stamped[cid] = (state, [placed.get(e.id, e) for e in new])
    return stamped
