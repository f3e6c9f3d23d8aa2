"""The ceilings the services are compared with, measured in the same run.

- raw aiokafka produce (acks=all) and consume throughput against the embedded broker,
  with the size of a real candidate event;
- decode cost of our wire schemas (pydantic) next to a plain ``orjson.loads``;
- batched upsert throughput of PostgreSQL (asyncpg ``unnest``) on the tally table shape.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.common import broker, fresh_database, postgres_available
from shared.db import asyncpg_dsn
from shared.events import Envelope, parse_data

SAMPLE_EVENT = {
    "specversion": "1.0",
    "id": "0b6f4a52-5f0e-4c1e-9a43-2f7d3b8f1a10",
    "source": "/deployments/quang-ninh",
    "type": "vn.ketnap.candidate.sourced",
    "time": "2024-05-12T09:00:00+07:00",
    "subject": "cand-22-000123",
    "datacontenttype": "application/json",
    "data": {
        "branch_id": "B-C06901-03",
        "profile": {"birth_year": 2001, "sex": "female", "categories": ["ethnic_minority", "youth_union"]},
    },
    "recordedtime": "2024-05-12T02:00:01.123456Z",
}


def sample_messages(n: int) -> list[bytes]:
    return [
        orjson.dumps({**SAMPLE_EVENT, "id": f"evt-{i}", "subject": f"cand-22-{i % 50_000}"}) for i in range(n)
    ]


async def kafka_throughput(n: int) -> dict[str, float]:
    messages = sample_messages(n)
    with broker() as running:
        producer = AIOKafkaProducer(
            bootstrap_servers=running.bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
        )
        await producer.start()
        started = time.perf_counter()
        futures = [await producer.send("bench.raw", m, key=m[60:80]) for m in messages]
        await asyncio.gather(*futures)
        produce_s = time.perf_counter() - started
        partitions = await producer.partitions_for("bench.raw")
        await producer.stop()
        # Partitions assigned, no group: Tansu answers a JoinGroup after half the session
        # timeout (5 s with aiokafka's default), a wait that is no part of consuming.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=running.bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        consumer.assign([TopicPartition("bench.raw", p) for p in partitions])
        seen, started = 0, 0.0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            started = started or time.perf_counter()
            seen += sum(len(records) for records in batch.values())
        consume_s = time.perf_counter() - started
        await consumer.stop()
    return {
        "raw_produce_msgs_per_s": n / produce_s,
        "raw_consume_msgs_per_s": n / consume_s,
        "message_bytes": float(len(messages[0])),
    }


def decode_cost(n: int) -> dict[str, float]:
    messages = sample_messages(n)
    started = time.perf_counter()
    for m in messages:
        orjson.loads(m)
    raw_s = time.perf_counter() - started
    started = time.perf_counter()
    for m in messages:
        envelope = Envelope.model_validate_json(m)
        parse_data(envelope.type, envelope.data)
    pydantic_s = time.perf_counter() - started
    return {"decode_orjson_per_s": n / raw_s, "decode_pydantic_per_s": n / pydantic_s}


async def upsert_throughput(url: str, rows: int) -> float:
    """Tally-shaped upserts, 5,000 rows per statement, through asyncpg arrays (``unnest``)."""
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(
            "CREATE TABLE bench_tally (branch_id text, day date, metric text, category text, value bigint, "
            "version bigint, PRIMARY KEY (branch_id, day, metric, category))"
        )
        start_day = date(2024, 1, 1)
        keys = [
            (f"B-{i % 20_000:05d}", start_day + timedelta(days=i % 366), "admitted", "all")
            for i in range(rows)
        ]
        started = time.perf_counter()
        for offset in range(0, rows, 5000):
            chunk = keys[offset : offset + 5000]
            await connection.execute(
                """INSERT INTO bench_tally AS t (branch_id, day, metric, category, value, version)
                   SELECT b, d, m, c, 1, 1
                   FROM unnest($1::text[], $2::date[], $3::text[], $4::text[]) AS u(b, d, m, c)
                   ON CONFLICT (branch_id, day, metric, category)
                   DO UPDATE SET value = t.value + 1, version = t.version + 1""",
                [k[0] for k in chunk],
                [k[1] for k in chunk],
                [k[2] for k in chunk],
                [k[3] for k in chunk],
            )
        return rows / (time.perf_counter() - started)
    finally:
        await connection.close()


def run(quick: bool) -> dict[str, float]:
    n = 20_000 if quick else 200_000  # quick: ~0.3 s of producing, still thousands of batches
    figures = asyncio.run(kafka_throughput(n))
    figures |= decode_cost(n)
    if postgres_available():
        with tempfile.TemporaryDirectory() as tmp, fresh_database(Path(tmp), "limits") as url:
            figures["pg_upsert_rows_per_s"] = asyncio.run(upsert_throughput(url, n))
    return figures


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
