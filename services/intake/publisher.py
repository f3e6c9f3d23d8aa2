"""Publishing accepted events to Kafka in CloudEvents structured mode (CONTRACT §4).

Invariants: the value is the event exactly as received plus the ``recordedtime``
extension; the key is the candidate id (``subject``) for candidate events, the
``branch_id`` or ``unit_id`` for reference events; headers carry
``content-type: application/cloudevents+json`` and the ``correlation-id``. All
of a request's messages are handed to the producer first and their acks awaited
together; :class:`BrokerUnavailable` if they are not all acknowledged in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.intake.domain.decide import Accepted
from shared.topics import CLOUDEVENTS_CONTENT_TYPE, CORRELATION_HEADER


class BrokerUnavailable(Exception):
    """The broker did not acknowledge every message of the request in time."""


def rfc3339_utc(instant: datetime) -> str:
    """``2026-01-02T03:04:05.123456Z``."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def cloudevent_value(accepted: Accepted, recorded: str) -> bytes:
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

    async def send_all() -> None:
        pending = [
            await producer.send(a.topic, cloudevent_value(a, stamp), key=a.key.encode(), headers=headers)
            for a in accepted
        ]
        await asyncio.gather(*pending)

    try:
        async with asyncio.timeout(within_s):
            await send_all()
    except (TimeoutError, KafkaError) as failed:
        raise BrokerUnavailable(f"{type(failed).__name__}: no ack from the broker in time") from failed
