"""The consumer's batch handler: turn records into folds, registrations and targets; decide nothing else.

One batch may hold both topics. Reference events go first (registrations, then
targets), tally changes after, all in the consumer's one transaction; the result
does not depend on that order (a registration moves whatever counts exist).
A record that cannot be read is counted, logged and sent to ``ketnap.rejected``
through the outbox; it never fails the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Table

from services.reporting.domain import BranchRegistration, Target, target_tree
from services.reporting.fold import Change, Folder, FoldOutcome, Registration, set_targets
from services.reporting.metrics import BRANCHES_MOVED, CHANGES_APPLIED, CHANGES_SKIPPED
from services.reporting.series import series_of
from shared.consumer import Batch, Record
from shared.events import BranchRegistered, Envelope, TargetSet, parse_data
from shared.logging import get_logger
from shared.messages import Rejection
from shared.metrics import EVENTS_PROCESSED
from shared.orgtree import OrgTrees, TreeVersion
from shared.outbox import OutboxMessage, enqueue
from shared.topics import REFERENCE_EVENTS, REJECTED, TALLY_CHANGES

log = get_logger(__name__)
SERVICE = "reporting"
BRANCH_REGISTERED = "vn.ketnap.org.branch_registered"
TARGET_SET = "vn.ketnap.target.set"


class UnreadableRecord(ValueError):
    """A record the service cannot use; ``code`` goes on the rejection."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass
class Decoded:
    changes: list[Change] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    ignored: int = 0
    invalid_changes: int = 0
    rejected: list[OutboxMessage] = field(default_factory=list)


def decode_change(raw: bytes) -> Change:
    """A ``ketnap.tally-changes`` value; UnreadableRecord if it is not one (fast path, no pydantic)."""
    try:
        doc = orjson.loads(raw)
        branch_id, day, value, version = doc["branch_id"], doc["date"], doc["value"], doc["version"]
        series = series_of(doc["metric"], doc["category"])
        ordinal = date.fromisoformat(day).toordinal()
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UnreadableRecord("invalid_schema", f"not a tally change: {exc}") from None
    if series is None:
        raise UnreadableRecord("invalid_schema", f"unknown metric/category {doc['metric']}/{doc['category']}")
    if not (isinstance(branch_id, str) and branch_id and _is_int(value) and _is_int(version)):
        raise UnreadableRecord("invalid_schema", "branch_id, value and version must be a string and integers")
    if value < 0 or version < 1:
        raise UnreadableRecord("invalid_schema", "value must be >= 0 and version >= 1")
    return Change(branch_id, ordinal, series, value, version)


def decode_reference(raw: bytes, trees: OrgTrees | None = None) -> Registration | Target | None:
    """A registration or a target from ``ketnap.reference-events``; None for other types.

    With ``trees``, a unit the trees do not have is ``unknown_unit`` (as the intake says):
    such a record reached the topic some other way and is refused, not stored unplaced.
    """
    try:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict) or doc.get("type") not in (BRANCH_REGISTERED, TARGET_SET):
            return None  # other types are not this service's business: not even checked
        envelope = Envelope.model_validate(doc)
        data = parse_data(envelope.type, envelope.data)
    except (orjson.JSONDecodeError, ValidationError, KeyError) as exc:
        raise UnreadableRecord("invalid_schema", f"not a reference event: {exc}"[:500]) from None
    if isinstance(data, BranchRegistered):
        if trees is not None:
            _require_parents(data, trees)
        return _registration(envelope, data)
    if isinstance(data, TargetSet):
        target = _target(envelope, data)
        if trees is not None and target.unit_id not in trees[target.tree]:
            raise UnreadableRecord(
                "unknown_unit", f"unit_id: {target.unit_id} is not a unit of the {target.tree} tree"
            )
        return target
    return None


def _require_parents(data: BranchRegistered, trees: OrgTrees) -> None:
    named: tuple[tuple[TreeVersion, str | None], ...] = (
        ("legacy", data.parents.legacy),
        ("2025", data.parents.v2025),
    )
    for tree, parent in named:
        if parent is not None and not trees[tree].attachable(parent):
            raise UnreadableRecord(
                "unknown_unit", f"parents.{tree}: {parent} is not a commune of the {tree} tree"
            )


def _registration(envelope: Envelope, data: BranchRegistered) -> Registration:
    branch = BranchRegistration(
        data.branch_id, data.parents.legacy, data.parents.v2025, data.name, data.kind.value
    )
    return Registration(branch, envelope.time, envelope.id)


def _target(envelope: Envelope, data: TargetSet) -> Target:
    return Target(
        data.unit_id,
        target_tree(envelope.time, data.tree),
        data.year,
        data.kind,
        data.value,
        envelope.time,
        data.metric,
        data.category,
        envelope.id,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode(records: Sequence[Record], now: datetime, trees: OrgTrees | None = None) -> Decoded:
    decoded = Decoded()
    for record in records:
        try:
            if record.topic == TALLY_CHANGES:
                decoded.changes.append(decode_change(record.value or b""))
                continue
            found = decode_reference(record.value or b"", trees) if record.topic == REFERENCE_EVENTS else None
        except UnreadableRecord as exc:
            decoded.invalid_changes += record.topic == TALLY_CHANGES
            decoded.rejected.append(_rejection(record, exc, now))
            continue
        if isinstance(found, Registration):
            decoded.registrations.append(found)
        elif isinstance(found, Target):
            decoded.targets.append(found)
        else:
            decoded.ignored += 1
    return decoded


def _rejection(record: Record, exc: UnreadableRecord, now: datetime) -> OutboxMessage:
    raw = record.value or b""
    try:
        event: dict[str, Any] | str = orjson.loads(raw)
        if not isinstance(event, dict):
            event = raw.decode("utf-8", "replace")
    except orjson.JSONDecodeError:
        event = raw.decode("utf-8", "replace")
    log.warning("unreadable record", topic=record.topic, partition=record.partition, offset=record.offset)
    rejection = Rejection(event=event, code=exc.code, detail=exc.detail, service=SERVICE, rejected_at=now)
    key = record.key or f"{record.topic}:{record.partition}:{record.offset}".encode()
    return OutboxMessage(REJECTED, key, rejection.model_dump_json().encode())


class ReportingHandler:
    """``BatchHandler`` of the reporting consumer."""

    def __init__(self, folder: Folder, outbox: Table, on_commit: Callable[[], None] = lambda: None) -> None:
        self.folder, self.outbox, self.on_commit = folder, outbox, on_commit

    async def __call__(self, batch: Batch) -> None:
        decoded = decode(batch.records, batch.now, self.folder.placer.trees)
        connection = batch.connection
        registered = await self.folder.register(connection, decoded.registrations)
        targets_set = await set_targets(connection, decoded.targets)
        folded = await self.folder.fold(connection, decoded.changes)
        await enqueue(connection, self.outbox, decoded.rejected)
        batch.after_commit(lambda: self._observe(decoded, registered, folded, targets_set))

    def _observe(
        self, decoded: Decoded, registered: FoldOutcome, folded: FoldOutcome, targets_set: int
    ) -> None:
        CHANGES_APPLIED.inc(folded.applied)
        for reason, count in folded.skipped.items():
            CHANGES_SKIPPED.labels(reason).inc(count)
        if decoded.invalid_changes:
            CHANGES_SKIPPED.labels("invalid").inc(decoded.invalid_changes)
        BRANCHES_MOVED.inc(registered.moved_branches)
        _count_events(BRANCH_REGISTERED, len(decoded.registrations))
        _count_events(TARGET_SET, len(decoded.targets), applied=targets_set)
        EVENTS_PROCESSED.labels(SERVICE, "other", "ignored").inc(decoded.ignored)
        self.on_commit()


def _count_events(event_type: str, seen: int, applied: int | None = None) -> None:
    if not seen:
        return
    applied = seen if applied is None else applied
    EVENTS_PROCESSED.labels(SERVICE, event_type, "applied").inc(applied)
    if seen > applied:
        EVENTS_PROCESSED.labels(SERVICE, event_type, "superseded").inc(seen - applied)
