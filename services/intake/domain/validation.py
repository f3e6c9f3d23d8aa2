"""Structural validation of one incoming item: envelope and ``data`` checked in a single pass.

Invariants:
- an item is either a :class:`TypedEvent` (envelope and data valid for its type) or
  a :class:`Refusal` with code ``invalid_schema`` or ``unknown_type``;
- ``unknown_type`` means the envelope names a ``type`` (a string) outside the closed
  set of CONTRACT §2; everything else that is malformed is ``invalid_schema``,
  including unknown fields (no names, birth dates or ID numbers can slip in) and a
  provider-set ``recordedtime`` or ``voidscope`` (the intake adds those extensions
  itself: a client-set ``voidscope`` could claim a scope its token does not have);
- the content hash is SHA-256 of the canonical JSON of the item as received
  (keys sorted, no whitespace): two items have the same content iff same hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError, create_model

from shared.events import EVENT_DATA, Envelope
from shared.scope import VOID_SCOPE

INVALID_SCHEMA: Final = "invalid_schema"
UNKNOWN_TYPE: Final = "unknown_type"
_MAX_DETAIL_ERRORS: Final = 5
INTAKE_EXTENSIONS: Final = ("recordedtime", VOID_SCOPE)
"""CloudEvents extensions only the intake sets; an event that carries one is refused."""


def _typed_envelope(event_type: str, data_model: type[Any]) -> type[Envelope]:
    """The envelope with ``type`` pinned and ``data`` typed, so one validation covers both."""
    name = "Event_" + event_type.rsplit(".", 1)[-1]
    return create_model(name, __base__=Envelope, type=(Literal[event_type], ...), data=(data_model, ...))


_TYPED: Final = tuple(_typed_envelope(t, m) for t, m in EVENT_DATA.items())
TypedEvent = Envelope
"""A valid event: an :class:`~shared.events.Envelope` whose ``data`` is its type's model."""

EVENT_ADAPTER: Final[TypeAdapter[Envelope]] = TypeAdapter(
    Annotated[Union[_TYPED], Field(discriminator="type")]  # noqa: UP007
)
"""Built once: validating through it costs a few microseconds per event."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An NDJSON line that is not JSON: refused on its own, the other lines still count."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one event is rejected: a stable ``code`` and a human ``detail``."""

    code: str
    detail: str


def validate_item(item: object) -> Envelope | Refusal:
    """The typed event, or why it is not one."""
    if isinstance(item, Unreadable):
        return Refusal(INVALID_SCHEMA, f"line {item.line} is not JSON: {item.reason}")
    if not isinstance(item, dict):
        return Refusal(INVALID_SCHEMA, f"an event must be a JSON object, not {_json_kind(item)}")
    for extension in INTAKE_EXTENSIONS:
        if extension in item:
            return Refusal(INVALID_SCHEMA, f"{extension}: set by the intake, must not be sent")
    try:
        return EVENT_ADAPTER.validate_python(item)
    except ValidationError as invalid:
        return _refusal(item, invalid)


def _refusal(item: dict[str, Any], invalid: ValidationError) -> Refusal:
    errors = invalid.errors(include_url=False, include_input=False)
    if errors[0]["type"] == "union_tag_invalid" and isinstance(item.get("type"), str):
        return Refusal(UNKNOWN_TYPE, f"type {item['type']!r} is not a ketnap event type")
    if errors[0]["type"] == "union_tag_not_found":
        return Refusal(INVALID_SCHEMA, "type: field required")
    parts = [f"{_location(e['loc'])}: {e['msg']}" for e in errors[:_MAX_DETAIL_ERRORS]]
    more = len(errors) - _MAX_DETAIL_ERRORS
    return Refusal(INVALID_SCHEMA, "; ".join(parts) + (f" (+{more} more)" if more > 0 else ""))


def _location(loc: tuple[int | str, ...]) -> str:
    # The first element is the union tag (the event type); callers know it already.
    path = [str(p) for p in loc[1:]] if loc and str(loc[0]) in EVENT_DATA else [str(p) for p in loc]
    return ".".join(path) or "event"


def _json_kind(item: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if item is None else kinds.get(type(item), type(item).__name__)


def item_id(item: object) -> str | None:
    """The ``id`` to echo in the result: the item's id if it is a string, else None."""
    if isinstance(item, dict):
        value = item.get("id")
        return value if isinstance(value, str) else None
    return None


def content_hash(item: object) -> bytes:
    """SHA-256 of the canonical JSON (sorted keys, compact) of the item as received (from orjson)."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).digest()
