"""The ``ketnap.rollups`` feed against the running service, read by the documented example consumer."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from services.reporting.bulk import upsert
from services.reporting.feed import RollupPublisher
from services.reporting.fold import DIRTY
from services.reporting.placing import Placer
from services.reporting.tables import outbox
from shared.db import make_engine, migrate
from shared.embedded_broker import EmbeddedBroker
from shared.messages import RollupDocument
from shared.orgtree import load_org_trees
from shared.topics import ROLLUPS
from tests.conftest import eventually
from tests.integration.reporting.conftest import running_reporting
from tests.integration.reporting.feed import Ledger, branch_registered

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "rollups_consumer.py"


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rollups_consumer", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollups_consumer"] = module
    spec.loader.exec_module(module)
    return module


async def all_records(bootstrap: str, since_ms: int = 0) -> list[Any]:
    """The topic's records produced at or after ``since_ms`` (the broker outlives one test)."""
    consumer = AIOKafkaConsumer(ROLLUPS, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        while batch := await consumer.getmany(timeout_ms=1500, max_records=10_000):
            for part in batch.values():
                records.extend(r for r in part if r.timestamp >= since_ms)
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def test_the_example_consumer_rebuilds_the_year_the_api_reports(
    broker: EmbeddedBroker, database_url: str
) -> None:
    consumer = example()
    ledger = Ledger()
    days = [date(2024, 1, 1) + timedelta(days=d) for d in range(0, 366, 9)]
    changes = [
        *ledger.admissions("B-C06901-41", days[::2], ["female", "ethnic_minority"]),
        *ledger.admissions("B-C02680-41", days[1::3], ["female"]),
        *ledger.admissions("B-C06901-42", days[::5]),  # registered late: unmapped first
        *ledger.admissions("B-C06895-41", [date(2025, 6, 30), date(2025, 7, 1)]),
        # known in the 2025 tree only: unmapped at P22 in the legacy tree, P22's own monthly rows
        *ledger.admissions("B-C06913-41", days[3::4]),
    ]
    units = [("legacy", "C06901"), ("legacy", "D200"), ("legacy", "P22"), ("legacy", "P10"), ("legacy", "VN"),
             ("2025", "C06913"), ("2025", "P22"), ("2025", "VN")]  # fmt: skip
    async with running_reporting(broker.bootstrap, database_url, rollup_coalesce_s=0.3) as service:
        await service.reference(
            [branch_registered(b, b[2:8]) for b in ("B-C06901-41", "B-C02680-41", "B-C06895-41")]
        )
        await service.reference([branch_registered("B-C06913-41", None, "C06913")])
        await service.tallies(changes)
        in_2024 = len(days[::2]) + len(days[1::3]) + len(days[::5]) + len(days[3::4])
        await service.value_becomes("VN", in_2024, period="2024")
        await service.reference([branch_registered("B-C06901-42", "C06901")])
        await service.value_becomes("C06901", len(days[::2]) + len(days[::5]), period="2024")
        expected = {
            (tree, unit, category): await service.rollup(unit, period="2024", tree=tree, category=category)
            for tree, unit in units
            for category in ("all", "female")
        }

        async def rebuilt() -> dict[str, Any] | None:
            documents: dict[str, Any] = await consumer.read_documents(broker.bootstrap, idle_ms=800)
            for (tree, unit, category), answer in expected.items():
                figures = consumer.year_figures(documents, tree, unit, 2024, "admitted", category)
                if (figures["value"], figures["unmapped"]) != (answer["value"], answer["unmapped"]):
                    return None
            return documents

        documents = await eventually(rebuilt)
    assert len(documents) > 0
    for key, document in documents.items():
        parsed = RollupDocument.model_validate(document)
        assert key == f"{parsed.tree}|{parsed.unit.id}|{parsed.month}"
    assert consumer.year_figures(documents, "legacy", "C06895", 2025)["value"] == 2
    province = consumer.year_figures(documents, "legacy", "P22", 2024)
    in_p22 = len(days[::2]) + len(days[::5]) + len(days[3::4])
    assert (province["value"], province["unmapped"]) == (in_p22, len(days[3::4]))
    assert consumer.year_figures(documents, "legacy", "VN", 2024)["value"] == in_2024
    assert documents["legacy|P22|2024-01"]["unit"] == {
        "id": "P22",
        "name": "Tỉnh Quảng Ninh",
        "level": "province",
    }


async def test_versions_only_rise_and_each_key_is_sent_at_most_once_per_coalescing_period(
    broker: EmbeddedBroker, database_url: str
) -> None:
    ledger = Ledger()
    since_ms = int(time.time() * 1000)
    async with running_reporting(broker.bootstrap, database_url, rollup_coalesce_s=0.5) as service:
        await service.reference([branch_registered("B-C06898-51", "C06898")])
        for round_ in range(6):
            await service.tallies(ledger.admissions("B-C06898-51", [date(2024, 3, 1 + round_)]))
            await service.value_becomes("C06898", round_ + 1, period="2024-03")
        records = await eventually(lambda: _settled(broker.bootstrap, since_ms, "legacy|C06898|2024-03", 6))
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_key[record.key.decode()].append(orjson.loads(record.value))
    for key, documents in by_key.items():
        versions = [d["version"] for d in documents]
        assert versions == sorted(set(versions)), key
        sent = [datetime.fromisoformat(d["as_of"]) for d in documents]
        assert all(later - earlier >= timedelta(seconds=0.5) for earlier, later in pairwise(sent)), key
    assert by_key["legacy|VN|2024-03"][-1]["metrics"]["admitted"]["all"] == 6


async def _settled(bootstrap: str, since_ms: int, key: str, value: int) -> list[Any] | None:
    records = await all_records(bootstrap, since_ms)
    last = [orjson.loads(r.value) for r in records if r.key.decode() == key]
    return records if last and last[-1]["metrics"]["admitted"]["all"] == value else None


async def test_the_backlog_gauge_counts_the_marks_waiting(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        await migrate(engine, "reporting")
        async with engine.begin() as connection:
            marks = [("legacy", "P22", 24288), ("legacy", "P22", 24289), ("2025", "VN", 24288)]
            await upsert(connection, DIRTY, marks)
        publisher = RollupPublisher(engine, Placer(load_org_trees()), outbox, coalesce_s=1.0)
        await publisher.observe_backlog()
        assert REGISTRY.get_sample_value("ketnap_rollups_dirty") == 3
        while await publisher.publish_once():
            pass
        await publisher.observe_backlog()
        assert REGISTRY.get_sample_value("ketnap_rollups_dirty") == 0
    finally:
        await engine.dispose()
