"""Kafka client settings in one place: ``acks=all`` producers, no idempotence (Tansu lacks it), topics."""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import Settings
from shared.topics import TOPICS


def security_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka connection kwargs for SASL/SCRAM and TLS (production) or plaintext (embedded)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism or "SCRAM-SHA-512",
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.sasl_password(),
        }
    return kwargs


def producer_kwargs(settings: Settings) -> dict[str, Any]:
    """Durable writes: wait for every in-sync replica; retries may reorder nothing we depend on."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": 2,
        "max_batch_size": 1024 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "request_timeout_ms": 10_000,
        "client_id": settings.kafka_client_id or settings.service,
        **security_kwargs(settings),
    }


def make_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(**producer_kwargs(settings))


async def create_topics(bootstrap: str, settings: Settings | None = None) -> None:
    """Create every ketnap topic with explicit configs; topics that exist are left as they are."""
    extra = security_kwargs(settings) if settings else {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **extra)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t.name, t.partitions, 1, topic_configs=t.configs)
            for t in TOPICS
            if t.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a replica created them first
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def broker_ping(producer: AIOKafkaProducer) -> None:
    """A real metadata round trip: a frozen broker still accepts TCP connections."""
    await producer.client.fetch_all_metadata()
