"""For the outbox tests: each service's migrated outbox table, and what reached a topic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy import Table


def service_outbox(service: str) -> Table:
    if service == "quota":
        from services.quota.tables import outbox as quota_outbox

        return quota_outbox
    from services.reporting.tables import outbox as reporting_outbox

    return reporting_outbox


async def records_on_topic(bootstrap: str, topic: str, keep: Callable[[Any], bool]) -> list[Any]:
    """Every record of ``topic`` that ``keep`` accepts, partition by partition in offset order."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[Any] = []
    try:
        while batch := await consumer.getmany(timeout_ms=1500, max_records=10_000):
            for partition in sorted(batch, key=lambda tp: tp.partition):
                found.extend(r for r in batch[partition] if keep(r))
    finally:
        await consumer.stop()
    return found
