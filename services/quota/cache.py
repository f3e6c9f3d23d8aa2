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
from shared.metrics import counter

LOOKUPS = counter(
    "ketnap_quota_state_cache_lookups_total",
    "Stored candidates looked up in the state cache, by result (a miss reads and decodes the stored state).",
    ("result",),
)
_HIT, _MISS = LOOKUPS.labels("hit"), LOOKUPS.labels("miss")


class StateCache:
    """Least-recently-used map candidate id -> (version, state), at most ``capacity`` entries
    (the service gives it ``KETNAP_QUOTA_STATE_CACHE``)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, CandidateState]] = OrderedDict()

    def get(self, candidate_id: str, version: int) -> CandidateState | None:
        entry = self._entries.get(candidate_id)
        if entry is None or entry[0] != version:
            _MISS.inc()
            return None
        self._entries.move_to_end(candidate_id)
        _HIT.inc()
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
