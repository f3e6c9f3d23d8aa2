"""Between Kafka records and the domain: decode once, reject poison, encode what goes out.

Every record is decoded exactly once (``orjson`` then the strict models of
``shared.events``, built once at import). A record that cannot be decoded or fails
its schema is *poison*: it becomes a :class:`Poison` (code ``invalid_schema`` or
``unknown_type``) that the handler rejects through the outbox; it never raises.

Outgoing messages are encoded here: ``ketnap.tally-changes`` (key ``branch_id``)
and ``ketnap.rejected`` (key the event id), both JSON.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from services.quota.domain import CandidateEvent, EventType, Profile
from services.quota.plain import CANDIDATE_PREFIX, Plain, plain_candidate
from shared.consumer import Record
from shared.events import (
    EVENT_DATA,
    BranchOnly,
    BranchRegistered,
    CandidateAdmitted,
    CandidateDropped,
    CandidateSourced,
    CandidateTransferred,
    CandidateVoided,
    Envelope,
    TargetSet,
    is_candidate_type,
)
from shared.outbox import OutboxMessage
from shared.scope import VOID_SCOPE, parse_void_scope
from shared.topics import CORRELATION_HEADER, REJECTED, TALLY_CHANGES

SERVICE = "quota"
BRANCH_REGISTERED = "vn.ketnap.org.branch_registered"
TARGET_SET = "vn.ketnap.target.set"


_EVENT_TYPES = {f"{CANDIDATE_PREFIX}{t}": t for t in EventType}  # an Enum call costs ~10 us
_SHORT_TYPES = frozenset(str(t) for t in EventType)


@dataclass(frozen=True, slots=True)
class Poison:
    """A record that is not a usable event; rejected with ``code``, never retried."""

    key: str
    code: str
    detail: str
    event: dict[str, Any] | str
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid event: envelope fields, typed data, raw JSON and content digest.

    ``data`` is the model of ``data`` (``shared.events``), or, when ``plain``, the
    domain fields :func:`services.quota.plain.plain_candidate` read from it. ``scope``:
    the canonical entries of a void's ``voidscope`` (never on the plain path, which
    leaves any extension but ``recordedtime`` to the models).
    """

    id: str
    type: str
    time: datetime
    subject: str | None
    data: Any
    raw: dict[str, Any]
    text: str
    digest: bytes
    recorded: datetime
    correlation_id: str | None
    plain: bool = False
    scope: tuple[str, ...] | None = None


def _header(record: Record, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


def _record_key(record: Record) -> str:
    if record.key:
        return record.key.decode(errors="replace")
    return f"{record.topic}/{record.partition}/{record.offset}"


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


def digest(raw: dict[str, Any]) -> bytes:
    """Content identity of an event: everything but the intake's ``recordedtime``, keys sorted."""
    recorded = raw.pop("recordedtime", None)  # left out without copying the event
    try:
        canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    finally:
        if recorded is not None:
            raw["recordedtime"] = recorded
    return hashlib.blake2b(canonical, digest_size=16).digest()


def decode(record: Record, accept: frozenset[str] | None) -> Decoded | Poison:
    """Decode and validate one record; ``accept`` limits the event types (None: candidate types)."""
    correlation = _header(record, CORRELATION_HEADER)
    try:
        raw = orjson.loads(record.value or b"")
    except (orjson.JSONDecodeError, RecursionError) as exc:
        text = (record.value or b"").decode(errors="replace")[:10_000]
        return Poison(_record_key(record), "invalid_schema", f"not JSON: {exc}", text, correlation)
    if not isinstance(raw, dict):
        return Poison(
            _record_key(record), "invalid_schema", "not a JSON object", str(raw)[:10_000], correlation
        )
    if accept is None and (plain := plain_candidate(raw, _SHORT_TYPES)) is not None:
        return _plain(record, raw, plain, correlation)
    key = str(raw.get("id") or _record_key(record))
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        return Poison(key, "invalid_schema", _errors(exc), raw, correlation)
    allowed = is_candidate_type(envelope.type) if accept is None else envelope.type in accept
    model = EVENT_DATA.get(envelope.type)
    if model is None or not allowed:
        return Poison(
            key, "unknown_type", f"{envelope.type!r} is not handled on {record.topic}", raw, correlation
        )
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as exc:
        return Poison(key, "invalid_schema", _errors(exc), raw, correlation)
    recorded = envelope.recordedtime or datetime.fromtimestamp(record.timestamp / 1000, UTC)
    text = (record.value or b"").decode(errors="replace")
    e = envelope
    scope = parse_void_scope(e.voidscope) if e.voidscope is not None else None
    return Decoded(
        e.id, e.type, e.time, e.subject, data, raw, text, digest(raw), recorded, correlation, scope=scope
    )


def _plain(record: Record, raw: dict[str, Any], plain: Plain, correlation: str | None) -> Decoded:
    event_id, subject, short, time, recorded, fields = plain
    when = recorded or datetime.fromtimestamp(record.timestamp / 1000, UTC)
    text = (record.value or b"").decode(errors="replace")
    kind = CANDIDATE_PREFIX + short
    return Decoded(event_id, kind, time, subject, fields, raw, text, digest(raw), when, correlation, True)


def candidate_event(decoded: Decoded) -> CandidateEvent:
    """The domain input of a decoded ``candidate.*`` event; the park clock starts at ``recordedtime``."""
    fields = decoded.data if decoded.plain else _fields(decoded.data)
    return CandidateEvent(
        id=decoded.id,
        candidate_id=str(decoded.subject),
        type=_EVENT_TYPES[decoded.type],
        time=decoded.time,
        arrived_at=decoded.recorded,
        scope=decoded.scope,
        **fields,
    )


def _fields(data: Any) -> dict[str, Any]:
    """The domain fields of a validated ``data`` model."""
    fields: dict[str, Any] = {}
    if isinstance(data, CandidateSourced):
        profile = data.profile
        fields["profile"] = Profile(
            profile.birth_year, profile.sex, tuple(str(c) for c in profile.categories)
        )
    if isinstance(data, CandidateSourced | BranchOnly | CandidateAdmitted | CandidateDropped):
        fields["branch_id"] = data.branch_id
    if isinstance(data, CandidateDropped):
        fields["reason"] = str(data.reason)
    if isinstance(data, CandidateTransferred):
        fields |= {"from_branch_id": data.from_branch_id, "to_branch_id": data.to_branch_id}
    if isinstance(data, CandidateVoided):
        fields["voids"] = data.voids
    return fields


def is_branch(decoded: Decoded) -> bool:
    return isinstance(decoded.data, BranchRegistered)


def is_target(decoded: Decoded) -> bool:
    return isinstance(decoded.data, TargetSet)


def tally_change(
    key: tuple[str, date, str, str],
    delta: int,
    value: int,
    version: int,
    source: str,
    recorded: str | None,
    correlation_id: str | None = None,
) -> OutboxMessage:
    """One ``ketnap.tally-changes`` message (``value`` absolute, ``version`` +1 per change of the key).

    Headers carry the source event's ``recordedtime`` (end-to-end freshness downstream)
    and its correlation id, when it had one.
    """
    return tally_change_from(key, delta, value, version, source, source_headers(recorded, correlation_id))


def source_headers(recorded: str | None, correlation_id: str | None) -> tuple[tuple[str, str], ...]:
    """The headers of every tally change a source event causes (built once per event)."""
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    if recorded:
        headers += (("recordedtime", recorded),)
    if correlation_id:
        headers += ((CORRELATION_HEADER, correlation_id),)
    return headers


def tally_change_from(
    key: tuple[str, date, str, str],
    delta: int,
    value: int,
    version: int,
    source: str,
    headers: tuple[tuple[str, str], ...],
) -> OutboxMessage:
    """:func:`tally_change` with the source's headers already built (~2.5 changes per event)."""
    branch_id, day, metric, category = key
    body = {
        "branch_id": branch_id,
        "date": day,  # orjson writes a date as YYYY-MM-DD, as isoformat() does
        "metric": metric,
        "category": category,
        "delta": delta,
        "value": value,
        "version": version,
        "source_event_id": source,
    }
    return OutboxMessage(TALLY_CHANGES, branch_id.encode(), orjson.dumps(body), headers)


def rejection(
    event_id: str,
    code: str,
    detail: str,
    event: dict[str, Any] | str,
    rejected_at: datetime,
    correlation_id: str | None = None,
) -> OutboxMessage:
    """One ``ketnap.rejected`` message: the original event, code, detail, service, rejected_at."""
    body = {
        "event": event,
        "code": code,
        "detail": detail,
        "service": SERVICE,
        "rejected_at": rejected_at.isoformat(),
    }
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    if correlation_id:
        headers += ((CORRELATION_HEADER, correlation_id),)
    return OutboxMessage(REJECTED, event_id.encode(), orjson.dumps(body), headers)


def wire_event(event: CandidateEvent) -> dict[str, Any]:
    """A CloudEvent rebuilt from a domain event, for the rare rejection whose original is not kept."""
    data: dict[str, Any] = {}
    for name in ("branch_id", "reason", "from_branch_id", "to_branch_id", "voids"):
        if getattr(event, name) is not None:
            data[name] = getattr(event, name)
    if event.profile is not None:
        data["profile"] = event.profile.to_dict()
    rebuilt = {
        "specversion": "1.0",
        "id": event.id,
        "source": "/ketnap/quota",
        "type": f"{CANDIDATE_PREFIX}{event.type}",
        "time": event.time.isoformat(),
        "subject": event.candidate_id,
        "datacontenttype": "application/json",
        "data": data,
        "recordedtime": event.arrived_at.isoformat(),
    }
    if event.scope is not None:
        rebuilt[VOID_SCOPE] = " ".join(event.scope)
    return rebuilt
