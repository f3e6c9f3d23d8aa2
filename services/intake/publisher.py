"""Publishing accepted events to Kafka in CloudEvents structured mode (CONTRACT §4).

Invariants: the value is the event exactly as received plus the ``recordedtime``
extension (and ``voidscope`` on a province's void of an event the intake has not
seen, :mod:`shared.scope`); the key is the candidate id (``subject``) for candidate events, the
``branch_id`` or ``unit_id`` for reference events; headers carry
``content-type: application/cloudevents+json`` and the ``correlation-id``. All
of a request's messages are handed to the producer first and their acks awaited
together; :class:`BrokerUnavailable` if they are not all acknowledged in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.intake.domain.decide import Accepted
from services.intake.partition import murmur2_many, partition_of
from shared.scope import VOID_SCOPE
from shared.topics import CLOUDEVENTS_CONTENT_TYPE, CORRELATION_HEADER

_SLICE: Final = 1000


class BrokerUnavailable(Exception):
    """The broker did not acknowledge every message of the request in time."""


def rfc3339_utc(instant: datetime) -> str:
    """``2026-01-02T03:04:05.123456Z``."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def cloudevent_value(accepted: Accepted, recorded: str) -> bytes:
    if accepted.void_scope is not None:
        return orjson.dumps({**accepted.item, "recordedtime": recorded, VOID_SCOPE: accepted.void_scope})
    return orjson.dumps({**accepted.item, "recordedtime": recorded})


async def publish(
    producer: AIOKafkaProducer,
    accepted: Sequence[Accepted],
    *,
    recorded: datetime,
    correlation_id: str,
    within_s: float,
) -> None:
    """Send every accepted event and wait for all acks (``acks=all``) within ``within_s`` seconds."""
    headers = [
        ("content-type", CLOUDEVENTS_CONTENT_TYPE.encode()),
        (CORRELATION_HEADER, correlation_id.encode()),
    ]
    stamp = rfc3339_utc(recorded)
    try:
        async with asyncio.timeout(within_s):
            pending = await _send_batches(producer, accepted, stamp, headers)
            await asyncio.gather(*pending)
    except (TimeoutError, KafkaError) as failed:
        raise BrokerUnavailable(f"{type(failed).__name__}: no ack from the broker in time") from failed


async def _send_batches(
    producer: AIOKafkaProducer, accepted: Sequence[Accepted], stamp: str, headers: list[tuple[str, bytes]]
) -> list[asyncio.Future[object]]:
    """Fill one record batch per partition (a new one when full) and hand each to the producer.

    Batching here rather than calling ``send`` per event saves most of the per-message cost;
    the partition is the Java client's murmur2 of the key, as ``send`` would choose it
    (:mod:`partition`).
    """
    partitions = {t: sorted(await producer.partitions_for(t)) for t in {a.topic for a in accepted}}
    open_batches: dict[tuple[str, int], Any] = {}
    pending: list[asyncio.Future[object]] = []
    keys = [a.key.encode() for a in accepted]
    hashes = murmur2_many(keys)  # all at once: vectorised for a big request
    for n, (each, key, hashed) in enumerate(zip(accepted, keys, hashes, strict=True), start=1):
        if n % _SLICE == 0:
            await asyncio.sleep(0)  # let other requests run while a big one is encoded
        value, where = (
            cloudevent_value(each, stamp),
            (each.topic, partition_of(hashed, partitions[each.topic])),
        )
        batch = open_batches.get(where)
        if batch is None or batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if batch is not None:
                pending.append(await _submit(producer, batch, *where))
            batch = open_batches[where] = producer.create_batch()
            batch.append(timestamp=None, key=key, value=value, headers=headers)
    for (topic, partition), batch in open_batches.items():
        pending.append(await _submit(producer, batch, topic, partition))
    return pending


async def _submit(
    producer: AIOKafkaProducer, batch: Any, topic: str, partition: int
) -> asyncio.Future[object]:
    batch.close()  # a closed batch is sent at once: no linger for a request that is waiting on it
    future: asyncio.Future[object] = await producer.send_batch(batch, topic, partition=partition)
    return future
