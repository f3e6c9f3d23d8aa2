"""The contract's seed scenarios on the real broker and database (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

from datetime import date

import pytest

from shared.embedded_broker import EmbeddedBroker
from shared.orgtree import load_org_trees
from tests.integration.reporting.conftest import running_reporting
from tests.integration.reporting.feed import Ledger, branch_registered, target_set

pytestmark = pytest.mark.integration


async def test_quang_an_2024_against_its_targets_at_every_level(
    broker: EmbeddedBroker, database_url: str
) -> None:
    ledger = Ledger()
    branches = ["B-C06901-01", "B-C06901-02", "B-C06901-03"]
    days = {
        "B-C06901-01": [date(2024, 2, 3), date(2024, 5, 12), date(2024, 9, 1)],
        "B-C06901-02": [date(2024, 3, 8), date(2024, 3, 9), date(2024, 11, 20), date(2024, 12, 31)],
        "B-C06901-03": [date(2024, 5, 12), date(2024, 7, 1)],
    }
    async with running_reporting(broker.bootstrap, database_url) as service:
        await service.reference(
            [branch_registered(b, "C06901") for b in branches]
            + [target_set("C06901", 2024, "resolution", 7), target_set("C06901", 2024, "assigned", 9)]
        )
        await service.tallies([c for b in branches for c in ledger.admissions(b, days[b])])
        body = await service.value_becomes("C06901", 9, period="2024")
        assert body["unit"] == {"id": "C06901", "name": "Xã Quảng An", "level": "commune", "tree": "legacy"}
        assert body["period"] == {"from": "2024-01-01", "to": "2024-12-31"}
        assert (body["metric"], body["category"], body["unmapped"]) == ("admitted", "all", 0)
        assert body["targets"] == {
            "resolution": {"value": 7, "attainment_pct": "128.57"},
            "assigned": {"value": 9, "attainment_pct": "100.00"},
        }
        assert [(c["id"], c["level"], c["value"]) for c in body["children"]] == [
            ("B-C06901-01", "branch", 3),
            ("B-C06901-02", "branch", 4),
            ("B-C06901-03", "branch", 2),
        ]
        assert body["reporting"] == {"branches": 3, "branches_with_events": 3}
        for unit_id, name in (("D200", "Huyện Đầm Hà"), ("P22", "Tỉnh Quảng Ninh"), ("VN", "Việt Nam")):
            above = await service.rollup(unit_id, period="2024")
            assert (above["unit"]["name"], above["value"]) == (name, 9)
        new_home = load_org_trees().to_2025("C06901")
        assert new_home is not None
        restated = await service.rollup(new_home, period="2024", tree="2025")
        assert (restated["unit"]["tree"], restated["value"]) == ("2025", 9)
        assert (await service.rollup("P22", period="2024", tree="2025"))["value"] == 9


async def test_hop_thanh_2021_and_2022(broker: EmbeddedBroker, database_url: str) -> None:
    ledger = Ledger()
    changes = ledger.admissions("B-C02680-01", [date(2021, m, 10) for m in (1, 3, 5, 7, 9, 11)])
    changes += ledger.admissions("B-C02680-02", [date(2022, 4, 1), date(2022, 10, 2)])
    async with running_reporting(broker.bootstrap, database_url) as service:
        await service.reference(
            [
                branch_registered("B-C02680-01", "C02680"),
                branch_registered("B-C02680-02", "C02680"),
                target_set("C02680", 2021, "resolution", 6),
                target_set("C02680", 2022, "resolution", 6),
            ]
        )
        await service.tallies(changes)
        body = await service.value_becomes("C02680", 2, period="2022")
        assert body["targets"] == {"resolution": {"value": 6, "attainment_pct": "33.33"}}
        body = await service.rollup("C02680", period="2021")
        assert (body["value"], body["targets"]) == (
            6,
            {"resolution": {"value": 6, "attainment_pct": "100.00"}},
        )
        term = await service.rollup("C02680", period="2021..2022")
        assert (term["value"], term["targets"]["resolution"]) == (8, {"value": 12, "attainment_pct": "66.67"})
