"""Reading a body: media types, the 16 MiB and 10,000-event caps, JSON vs NDJSON splitting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from services.intake.body import (
    MAX_BYTES,
    MAX_EVENTS,
    check_length,
    media_type,
    read_capped,
    split_items,
)
from services.intake.domain.validation import Unreadable
from shared.http import Problem

pytestmark = pytest.mark.unit


def code_of(call: object) -> tuple[int, str]:
    assert isinstance(call, Problem)
    return call.status, call.code


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        ("application/x-ndjson", "application/x-ndjson"),
        ("application/cloudevents+json", "application/cloudevents+json"),
        ("application/cloudevents-batch+json", "application/cloudevents-batch+json"),
    ],
)
def test_accepted_media_types(header: str, kind: str) -> None:
    assert media_type(header) == kind


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/xml", "multipart/form-data"])
def test_other_media_types_are_415(header: str | None) -> None:
    with pytest.raises(Problem) as refused:
        media_type(header)
    assert code_of(refused.value) == (415, "unsupported_media_type")


def test_one_object_or_an_array() -> None:
    assert split_items(b'{"id": "a"}', "application/json") == [{"id": "a"}]
    assert split_items(b'[{"id": "a"}, 3]', "application/json") == [{"id": "a"}, 3]
    assert split_items(b"[]", "application/json") == []


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'"a string"', "application/json"),
        (b"42", "application/json"),
        (b'{"id": "a"}', "application/cloudevents-batch+json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_malformed_bodies_are_400(body: bytes, kind: str) -> None:
    with pytest.raises(Problem) as refused:
        split_items(body, kind)
    assert code_of(refused.value) == (400, "malformed_body")


def test_ndjson_lines_are_items_and_a_bad_line_stands_alone() -> None:
    body = b'{"id": "a"}\r\n\n  \n{oops\n[1]\n{"id": "b"}'
    items = split_items(body, "application/x-ndjson")
    assert items[0] == {"id": "a"}
    assert isinstance(items[1], Unreadable)
    assert items[1].line == 4
    assert items[2:] == [[1], {"id": "b"}]


@pytest.mark.parametrize("kind", ["application/json", "application/x-ndjson"])
def test_more_than_10000_events_is_413(kind: str) -> None:
    events = [{"id": str(i)} for i in range(MAX_EVENTS + 1)]
    body = orjson.dumps(events) if kind == "application/json" else b"\n".join(orjson.dumps(e) for e in events)
    with pytest.raises(Problem) as refused:
        split_items(body, kind)
    assert code_of(refused.value) == (413, "payload_too_large")
    assert len(split_items(orjson.dumps(events[:MAX_EVENTS]), "application/json")) == MAX_EVENTS


def test_content_length_is_checked_before_reading() -> None:
    check_length(str(MAX_BYTES))
    check_length(None)
    with pytest.raises(Problem) as refused:
        check_length(str(MAX_BYTES + 1))
    assert code_of(refused.value) == (413, "payload_too_large")


async def chunks(total: int, size: int = 1 << 20) -> AsyncIterator[bytes]:
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


async def test_the_stream_is_capped_whatever_content_length_said() -> None:
    assert len(await read_capped(chunks(MAX_BYTES))) == MAX_BYTES
    with pytest.raises(Problem) as refused:
        await read_capped(chunks(MAX_BYTES + 1))
    assert code_of(refused.value) == (413, "payload_too_large")
