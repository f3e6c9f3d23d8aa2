"""Outbox rows holding several messages: what the relay sends is what was enqueued.

The relay's side against a real broker and database is in
``tests/integration/test_outbox_relay.py``; here the row format alone, exhaustively.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.outbox import (
    MESSAGE_ID_HEADER,
    PACK_SIZE,
    OutboxMessage,
    claimed_messages,
    outbox_rows,
)

pytestmark = pytest.mark.unit

header_sets = st.lists(
    st.tuples(st.sampled_from(["content-type", "recordedtime", "correlation-id"]), st.text(max_size=12)),
    max_size=3,
).map(tuple)
messages = st.builds(
    OutboxMessage,
    topic=st.sampled_from(["ketnap.tally-changes", "ketnap.rejected"]),
    key=st.one_of(st.none(), st.binary(max_size=20)),
    value=st.binary(max_size=60),
    headers=header_sets,
)


def _as_claimed(rows: list[tuple[str, bytes | None, bytes, str | None, int]]) -> list[tuple[object, ...]]:
    """The rows as the relay claims them: ids from 1, in enqueue order."""
    return [(rid, *row) for rid, row in enumerate(rows, start=1)]


@given(st.lists(messages, max_size=40))
def test_the_relay_sends_every_message_once_in_enqueue_order(enqueued: list[OutboxMessage]) -> None:
    rows = outbox_rows(enqueued)
    sent = claimed_messages(_as_claimed(rows), "quota")
    assert [(m.topic, m.key, m.value) for m in sent] == [(m.topic, m.key, m.value) for m in enqueued]
    for original, out in zip(enqueued, sent, strict=True):
        *headers, (name, _) = out.headers
        assert name == MESSAGE_ID_HEADER
        assert headers == [(k, v.encode()) for k, v in original.headers]
    ids = [dict(m.headers)[MESSAGE_ID_HEADER] for m in sent]
    assert len(set(ids)) == len(ids)
    assert sum(row[4] for row in rows) == len(enqueued)


@given(st.lists(messages, max_size=40))
def test_a_row_holds_a_run_of_one_topic_and_a_run_of_one_is_plain(
    enqueued: list[OutboxMessage],
) -> None:
    runs: list[list[OutboxMessage]] = []
    for message in enqueued:
        if runs and runs[-1][0].topic == message.topic:
            runs[-1].append(message)
        else:
            runs.append([message])
    rows = outbox_rows(enqueued)
    assert [(row[0], row[4]) for row in rows] == [(run[0].topic, len(run)) for run in runs]
    for (_, key, value, _, count), run in zip(rows, runs, strict=True):
        if count == 1:
            assert (key, value) == (run[0].key, run[0].value)
        else:
            assert key is None
            assert value == b"".join(m.value for m in run)


def test_message_ids_name_the_row_and_the_place_in_it() -> None:
    one = OutboxMessage("t", b"k", b"v")
    rows = outbox_rows([one, OutboxMessage("u", b"a", b"1"), OutboxMessage("u", b"b", b"2")])
    sent = claimed_messages(_as_claimed(rows), "reporting")
    assert [dict(m.headers)[MESSAGE_ID_HEADER] for m in sent] == [
        b"reporting:1",
        b"reporting:2.0",
        b"reporting:2.1",
    ]


def test_a_long_run_is_split_into_rows_of_at_most_pack_size() -> None:
    enqueued = [OutboxMessage("t", str(i).encode(), b"x") for i in range(PACK_SIZE * 2 + 1)]
    rows = outbox_rows(enqueued)
    assert [row[4] for row in rows] == [PACK_SIZE, PACK_SIZE, 1]
    sent = claimed_messages(_as_claimed(rows), "quota")
    assert [m.key for m in sent] == [m.key for m in enqueued]


def test_keys_and_values_survive_any_bytes() -> None:
    awkward = [
        OutboxMessage("t", bytes(range(256)), bytes(range(255, -1, -1))),
        OutboxMessage("t", None, b""),
    ]
    sent = claimed_messages(_as_claimed(outbox_rows(awkward)), "quota")
    assert [(m.key, m.value) for m in sent] == [(m.key, m.value) for m in awkward]
