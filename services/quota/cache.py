"""Candidate states kept in memory between batches, trusted only at the version they were read.

Decoding a stored state costs more than applying an event to it, so the handler keeps
the states it wrote. An entry is used only when its version equals the version
in the database (read, and locked, in the same transaction), so a write by the
expiry task or another replica is never missed; entries are stored only after
the transaction that wrote them committed.
"""

from __future__ import annotations

from collections import OrderedDict

from services.quota.domain import CandidateState


class StateCache:
    """Least-recently-used map candidate id -> (version, state), at most ``capacity`` entries."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, CandidateState]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, candidate_id: str, version: int) -> CandidateState | None:
        entry = self._entries.get(candidate_id)
        if entry is None or entry[0] != version:
            self.misses += 1
            return None
        self._entries.move_to_end(candidate_id)
        self.hits += 1
        return entry[1]

    def put(self, candidate_id: str, version: int, state: CandidateState) -> None:
        if self.capacity <= 0:
            return
        self._entries[candidate_id] = (version, state)
        self._entries.move_to_end(candidate_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
