"""Example downstream consumer of ``ketnap.rollups``: a year's figures from the monthly documents.

The topic is compacted and keyed ``tree|unit_id|YYYY-MM``; each value is one unit's
month with every metric and category, and a ``version`` that only rises for its
key. A consumer reads the topic from the beginning, keeps per key the document
with the highest version (a compacted topic may still hold older copies, and a
redelivery may repeat one), and sums the months it needs: any calendar period is a
sum of months.

    python docs/examples/rollups_consumer.py --bootstrap 127.0.0.1:9092 \\
        --tree legacy --unit C06901 --year 2024 [--metric admitted] [--category all]

Needs only ``aiokafka`` (any Kafka client would do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer

TOPIC = "ketnap.rollups"


async def read_documents(bootstrap: str, *, idle_ms: int = 2000) -> dict[str, dict[str, Any]]:
    """Every key's latest document (highest version), reading until ``idle_ms`` bring nothing new."""
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms, max_records=10_000):
            for records in batch.values():
                for record in records:
                    keep_highest(latest, record.key.decode(), json.loads(record.value))
    finally:
        await consumer.stop()
    return latest


def keep_highest(latest: dict[str, dict[str, Any]], key: str, document: dict[str, Any]) -> None:
    """Keep ``document`` unless the one held for ``key`` has a higher or equal version."""
    held = latest.get(key)
    if held is None or document["version"] > held["version"]:
        latest[key] = document


def year_figures(
    documents: dict[str, dict[str, Any]],
    tree: str,
    unit_id: str,
    year: int,
    metric: str = "admitted",
    category: str = "all",
) -> dict[str, Any]:
    """The year's total, unmapped and per-month values of one unit, metric and category."""
    months: dict[str, int] = {}
    unmapped = 0
    for month in range(1, 13):
        label = f"{year:04d}-{month:02d}"
        document = documents.get(f"{tree}|{unit_id}|{label}")
        if document is None:
            continue
        months[label] = document["metrics"].get(metric, {}).get(category, 0)
        unmapped += document["unmapped"].get(metric, {}).get(category, 0)
    return {"tree": tree, "unit_id": unit_id, "year": year, "value": sum(months.values()),
            "unmapped": unmapped, "months": months}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--tree", default="legacy", choices=("legacy", "2025"))
    parser.add_argument("--unit", default="VN")
    parser.add_argument("--year", type=int, required=True)
    parser.add_argument("--metric", default="admitted")
    parser.add_argument("--category", default="all")
    args = parser.parse_args()
    documents = asyncio.run(read_documents(args.bootstrap))
    figures = year_figures(documents, args.tree, args.unit, args.year, args.metric, args.category)
    print(json.dumps(figures, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
