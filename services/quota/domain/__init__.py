"""The pure core of the quota service: candidate lifecycle, tallies, targets.

No I/O, clock or logging here: the edge passes `now` and persists the frozen results
(each has `to_dict()` / `from_dict()` over plain JSON-able values).

Typical use by a handler, inside one database transaction::

    event = from_cloudevent(envelope, arrived_at=now)          # events.py
    outcome = apply(load_state(event.candidate_id), event)     # lifecycle.py
    save_state(outcome.state)                                  # CandidateState.to_dict()
    for delta in outcome.deltas: add_to_tally(delta)           # tally.py: TallyKey, TallyDelta
    for rejection in outcome.rejections: publish_rejected(rejection)

and periodically ``state, rejections = expire_held(state, now, ttl)``.

Notes for the edge:
- `outcome.rejections` may name events other than the incoming one (an earlier-dated
  duplicate or a late drop displaces events already counted); each `Rejection` carries
  its domain event so the original can be looked up and published.
- `TallyDelta.event_id` names the counted event whose contribution moved (for a void:
  the voided event); the incoming event is the cause of the whole outcome.
- An event rejected earlier can count later (the drop that rejected it was voided, or
  the duplicate that beat it was voided): it appears in `outcome.applied`.
- The state keeps every event of the candidate: about 4.4 KB of JSON for a typical one.

Module map: `vocabulary` (types, codes), `events` (inputs), `tally` (keys,
contributions, sums), `records` + `state` (CandidateState and its parts), `timeline`
(flags, probation), `history` (the rules: `replay`), `lifecycle` (`apply`,
`expire_held`, `Outcome`), `targets` (latest wins, attainment).
"""

from services.quota.domain.events import CandidateEvent, Profile, from_cloudevent
from services.quota.domain.history import replay
from services.quota.domain.lifecycle import DEFAULT_PARK_TTL, Outcome, Rejection, apply, expire_held
from services.quota.domain.records import Contribution, Decision, Flag, Milestone
from services.quota.domain.state import CandidateState
from services.quota.domain.tally import (
    CATEGORIES,
    METRICS,
    TallyDelta,
    TallyKey,
    categories_of,
    contribution,
    diff_contributions,
    fold_deltas,
)
from services.quota.domain.targets import (
    Target,
    TargetKey,
    attainment_pct,
    latest,
    latest_targets,
    target_from_cloudevent,
)
from services.quota.domain.timeline import probation_due, timeline_flags
from services.quota.domain.vocabulary import (
    DROP_REASONS,
    MILESTONES,
    PROFILE_CATEGORIES,
    EventType,
    FlagCode,
    RejectionCode,
    Status,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_PARK_TTL",
    "DROP_REASONS",
    "METRICS",
    "MILESTONES",
    "PROFILE_CATEGORIES",
    "CandidateEvent",
    "CandidateState",
    "Contribution",
    "Decision",
    "EventType",
    "Flag",
    "FlagCode",
    "Milestone",
    "Outcome",
    "Profile",
    "Rejection",
    "RejectionCode",
    "Status",
    "TallyDelta",
    "TallyKey",
    "Target",
    "TargetKey",
    "apply",
    "attainment_pct",
    "categories_of",
    "contribution",
    "diff_contributions",
    "expire_held",
    "fold_deltas",
    "from_cloudevent",
    "latest",
    "latest_targets",
    "probation_due",
    "replay",
    "target_from_cloudevent",
    "timeline_flags",
]
