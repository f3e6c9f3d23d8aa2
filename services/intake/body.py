"""Reading a ``POST /v1/events`` body: media type, size cap, and the split into items.

Invariants: nothing beyond ``MAX_BYTES`` is ever buffered (``Content-Length`` is
checked first, then the stream is read with a cap); more than ``MAX_EVENTS`` items
is ``413`` before any item is validated; a body that is not JSON at all is
``400 malformed_body``, but in NDJSON a single line that is not JSON is refused
on its own (``invalid_schema``) and the other lines still count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import orjson

from services.intake.domain.validation import Unreadable
from shared.http import Problem

MAX_EVENTS: Final = 10_000
MAX_BYTES: Final = 16 * 1024 * 1024
NDJSON: Final = "application/x-ndjson"
JSON_TYPES: Final = frozenset({"application/json", "application/cloudevents+json"})
BATCH_TYPES: Final = frozenset({"application/cloudevents-batch+json"})
NDJSON_TYPES: Final = frozenset({NDJSON, "application/ndjson", "application/jsonl"})
ACCEPTED_TYPES: Final = JSON_TYPES | BATCH_TYPES | NDJSON_TYPES


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``; 415 for anything not accepted."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in ACCEPTED_TYPES:
        raise Problem(
            415,
            "unsupported_media_type",
            f"Content-Type {kind or '(none)'!r} not accepted; send application/json or {NDJSON}",
        )
    return kind


def too_large(detail: str) -> Problem:
    return Problem(413, "payload_too_large", detail)


def check_length(content_length: str | None) -> None:
    if content_length is not None and content_length.strip().isdigit() and int(content_length) > MAX_BYTES:
        raise too_large(f"body of {int(content_length)} bytes; at most {MAX_BYTES} (16 MiB) per request")


async def read_capped(stream: AsyncIterator[bytes]) -> bytes:
    """The whole body, or 413 as soon as it passes ``MAX_BYTES`` (whatever Content-Length said)."""
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > MAX_BYTES:
            raise too_large(f"body larger than {MAX_BYTES} bytes (16 MiB)")
        chunks.append(chunk)
    return b"".join(chunks)


def split_items(body: bytes, kind: str) -> list[object]:
    """The request's items in order: an object, an array of objects, or one object per NDJSON line."""
    items = _ndjson(body) if kind in NDJSON_TYPES else _json(body, batch_only=kind in BATCH_TYPES)
    if len(items) > MAX_EVENTS:
        raise too_large(f"{len(items)} events; at most {MAX_EVENTS} per request")
    return items


def _json(body: bytes, *, batch_only: bool) -> list[object]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as bad:
        raise Problem(400, "malformed_body", f"body is not JSON: {bad}") from None
    if isinstance(parsed, list):
        return parsed
    if isinstance(parsed, dict) and not batch_only:
        return [parsed]
    raise Problem(400, "malformed_body", "body must be one event (an object) or an array of events")


def _ndjson(body: bytes) -> list[object]:
    lines = [(n, line) for n, line in enumerate(body.split(b"\n"), start=1) if line.strip()]
    if len(lines) > MAX_EVENTS:
        raise too_large(f"{len(lines)} events; at most {MAX_EVENTS} per request")
    return [_line(n, line) for n, line in lines]


def _line(number: int, line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as bad:
        return Unreadable(number, str(bad))
