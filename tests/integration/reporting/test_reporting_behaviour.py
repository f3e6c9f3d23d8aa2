"""Idempotent folding, late registrations, refusals, lagging branches, exports and read scopes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import openpyxl
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.reporting.unitkeys import unit_key
from shared.embedded_broker import EmbeddedBroker
from shared.orgtree import load_org_trees
from tests.conftest import eventually
from tests.integration.reporting.conftest import running_reporting
from tests.integration.reporting.feed import Ledger, Tally, branch_registered, target_set

pytestmark = pytest.mark.integration


async def test_a_late_registration_moves_counts_out_of_unmapped(
    broker: EmbeddedBroker, database_url: str
) -> None:
    ledger = Ledger()
    early = ledger.admissions("B-C06901-77", [date(2024, 4, 1), date(2024, 4, 2)], ["female"])
    async with running_reporting(broker.bootstrap, database_url) as service:
        await service.tallies(early)
        national = await service.value_becomes("VN", 2, period="2024")
        assert (national["unmapped"], sum(c["value"] for c in national["children"])) == (2, 0)
        assert (await service.rollup("C06901", period="2024"))["value"] == 0
        await service.reference([branch_registered("B-C06901-77", "C06901", "C06913")])
        commune = await service.value_becomes("C06901", 2, period="2024")
        assert [(c["id"], c["value"]) for c in commune["children"]] == [("B-C06901-77", 2)]
        national = await service.rollup("VN", period="2024")
        assert (national["value"], national["unmapped"]) == (2, 0)
        restated = await service.rollup("C06913", period="2024", tree="2025")
        assert (restated["value"], restated["unmapped"], restated["children"][0]["id"]) == (
            2,
            0,
            "B-C06901-77",
        )
        female = await service.rollup("D200", period="2024-04", category="female")
        assert female["value"] == 2


async def test_repeated_and_stale_versions_change_nothing(broker: EmbeddedBroker, database_url: str) -> None:
    day = date(2024, 6, 1)
    third = Tally("B-C06901-88", day, "admitted", "all", 3, 3, 1)
    before = {reason: _skipped(reason) for reason in ("stale", "repeated")}
    async with running_reporting(broker.bootstrap, database_url) as service:
        await service.reference([branch_registered("B-C06901-88", "C06901")])
        await service.tallies([Tally("B-C06901-88", day, "admitted", "all", 1, 1, 1), third])
        await service.value_becomes("C06901", 3, period="2024-06-01")
        stale = Tally("B-C06901-88", day, "admitted", "all", 2, 2, 1)
        await service.tallies([stale, third, Tally("B-C06901-88", day, "admitted", "all", 0, 1, -1)])
        marker = Tally("B-C06901-88", date(2024, 6, 2), "admitted", "all", 1, 1, 1)
        await service.tallies([marker])
        await service.value_becomes("C06901", 4, period="2024-06")
        assert (await service.rollup("C06901", period="2024-06-01"))["value"] == 3
        assert (await service.rollup("VN", period="2024"))["value"] == 4
        order = service.app.state.reporting_consumers[0].fetch_order
        assert order is not None  # the batches after the first: oldest partition first
        assert order.served >= 1
    assert _skipped("stale") - before["stale"] == 2
    assert _skipped("repeated") - before["repeated"] == 1


def _skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("ketnap_reporting_changes_skipped_total", {"reason": reason}) or 0.0


async def test_refusals_are_problems_with_stable_codes(broker: EmbeddedBroker, database_url: str) -> None:
    async with running_reporting(broker.bootstrap, database_url) as service:
        cases: list[tuple[str, dict[str, str | int], int, str]] = [
            ("/v1/rollups/C99999", {"period": "2024"}, 404, "unknown_unit"),
            ("/v1/rollups/C06901", {"period": "2024-13"}, 400, "invalid_period"),
            ("/v1/rollups/C06901", {}, 400, "invalid_period"),
            ("/v1/rollups/C06901", {"period": "2024", "tree": "1999"}, 400, "invalid_tree"),
            ("/v1/rollups/C06901", {"period": "2024", "metric": "elected"}, 400, "invalid_metric"),
            ("/v1/rollups/C06901", {"period": "2024", "category": "male"}, 400, "invalid_category"),
            ("/v1/rollups/C06901", {"period": "2024", "tree": "2025"}, 404, "unknown_unit"),
            ("/v1/lagging", {"unit_id": "P10", "years": 0}, 400, "invalid_years"),
            ("/v1/lagging", {"unit_id": "X1"}, 404, "unknown_unit"),
            ("/v1/export", {"unit_id": "P10", "period": "2024", "format": "pdf"}, 400, "invalid_format"),
        ]
        for path, params, status, code in cases:
            response = await service.client.get(path, params=params)
            assert (response.status_code, response.headers["content-type"]) == (
                status,
                "application/problem+json",
            ), (path, params)
            assert response.json()["code"] == code, (path, params)
        twice_asked = [("period", "2024"), ("period", "2025")]
        twice = await service.client.get("/v1/rollups/C06901", params=twice_asked)
        assert (twice.status_code, twice.json()["code"]) == (400, "invalid_request")


async def test_a_unit_unknown_in_the_default_tree_is_read_in_the_other(
    broker: EmbeddedBroker, database_url: str
) -> None:
    async with running_reporting(broker.bootstrap, database_url) as service:
        body = await service.rollup("C06901", period="2026")
        assert body["unit"]["tree"] == "legacy"
        body = await service.rollup("P15", period="2024")
        assert (body["unit"]["tree"], body["unit"]["name"]) == ("legacy", "Tỉnh Yên Bái")


async def test_lagging_branches_of_a_province(broker: EmbeddedBroker, database_url: str) -> None:
    ledger = Ledger()
    registrations = [
        branch_registered("B-C02680-10", "C02680", name="Chi bộ thôn Cóc"),
        branch_registered("B-C02680-11", "C02680", kind="school"),
        branch_registered("B-C02680-12", "C02680"),
        branch_registered("B-C06901-10", "C06901"),
    ]
    changes = [
        *ledger.admissions("B-C02680-10", [date(2021, 3, 1)]),
        *ledger.admissions("B-C02680-11", [date(2024, 8, 9)]),
        *ledger.admissions("B-C02680-12", [date(2026, 1, 5)]),
    ]
    clock = lambda: datetime(2026, 11, 22, 1, 0, tzinfo=UTC)  # noqa: E731
    async with running_reporting(broker.bootstrap, database_url, clock=clock) as service:
        await service.reference(registrations)
        await service.tallies(changes)
        await service.value_becomes("P10", 3, period="2021..2026")
        status, body = await service.get("/v1/lagging", unit_id="P10", years=3)
        assert status == 200, body
        assert body["unit"] == {"id": "P10", "name": "Tỉnh Lào Cai", "level": "province", "tree": "legacy"}
        assert body["years"] == [2023, 2024, 2025]
        assert body["branches"] == [
            {
                "id": "B-C02680-12",
                "name": "Chi bộ B-C02680-12",
                "kind": "residential",
                "commune_id": "C02680",
                "last_admission": None,
            },
            {
                "id": "B-C02680-10",
                "name": "Chi bộ thôn Cóc",
                "kind": "residential",
                "commune_id": "C02680",
                "last_admission": "2021-03-01",
            },
        ]


async def test_exports_in_csv_and_xlsx(broker: EmbeddedBroker, database_url: str) -> None:
    ledger = Ledger()
    changes = [
        *ledger.admissions("B-C06901-21", [date(2024, 1, 9)] * 5),
        *ledger.admissions("B-C06904-21", [date(2024, 2, 2)]),
    ]
    async with running_reporting(broker.bootstrap, database_url) as service:
        await service.reference(
            [
                branch_registered("B-C06901-21", "C06901"),
                branch_registered("B-C06904-21", "C06904"),
                target_set("C06901", 2024, "resolution", 7),
                target_set("C06901", 2024, "assigned", 0),
                target_set("D200", 2024, "assigned", 12),
            ]
        )
        await service.tallies(changes)
        await service.value_becomes("D200", 6, period="2024")
        response = await service.client.get("/v1/export", params={"unit_id": "D200", "period": "2024"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"].startswith('attachment; filename="ketnap_D200_2024')
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
        assert rows[0] == [
            "Mã đơn vị",
            "Tên đơn vị",
            "Cấp",
            "Số lượng",
            "Chỉ tiêu Nghị quyết",
            "Tỷ lệ đạt NQ (%)",
            "Chỉ tiêu cấp trên giao",
            "Tỷ lệ đạt chỉ tiêu giao (%)",
        ]
        assert rows[1] == ["D200", "Huyện Đầm Hà", "Huyện", "6", "", "", "12", "50.00"]
        by_id = {row[0]: row for row in rows[2:]}
        assert by_id["C06901"] == ["C06901", "Xã Quảng An", "Xã", "5", "7", "71.43", "0", ""]
        assert len(rows) - 2 == len(load_org_trees().legacy.children("D200"))
        response = await service.client.get(
            "/v1/export", params={"unit_id": "D200", "period": "2024", "format": "xlsx"}
        )
        assert response.headers["content-type"] == (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        assert response.headers["content-disposition"].endswith('.xlsx"')
        sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
        assert sheet is not None
        cells = list(sheet.iter_rows(values_only=True))
        assert cells[0][0] == "Mã đơn vị"
        assert cells[1] == ("D200", "Huyện Đầm Hà", "Huyện", 6, None, None, 12, 50.0)
        quang_an = next(row for row in cells if row[0] == "C06901")
        assert quang_an == ("C06901", "Xã Quảng An", "Xã", 5, 7, 71.43, 0, None)
        assert all(isinstance(row[3], int) for row in cells[1:])


async def test_read_scopes(broker: EmbeddedBroker, database_url: str) -> None:
    tokens = '{"lao-cai-token-0123456789": ["legacy:P10", "2025:P15"], "national-token-0123456789": ["*"]}'
    async with running_reporting(broker.bootstrap, database_url, read_auth=True, tokens=tokens) as service:

        async def status(path: str, token: str | None, **params: str) -> tuple[int, str | None]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await service.client.get(path, params=params, headers=headers)
            return response.status_code, response.json().get("code") if response.status_code != 200 else None

        assert await status("/v1/rollups/P10", None, period="2024") == (401, "unauthorized")
        assert await status("/v1/rollups/P10", "wrong", period="2024") == (401, "unauthorized")
        assert await status("/v1/rollups/P10", "lao-cai-token-0123456789", period="2024") == (200, None)
        assert await status("/v1/rollups/C02680", "lao-cai-token-0123456789", period="2024") == (200, None)
        assert await status("/v1/rollups/P22", "lao-cai-token-0123456789", period="2024") == (
            403,
            "out_of_scope",
        )
        assert await status("/v1/rollups/VN", "lao-cai-token-0123456789", period="2024") == (
            403,
            "out_of_scope",
        )
        assert await status("/v1/lagging", "lao-cai-token-0123456789", unit_id="P22") == (403, "out_of_scope")
        assert await status("/v1/rollups/VN", "national-token-0123456789", period="2024") == (200, None)


async def test_the_self_check_finds_no_violation(broker: EmbeddedBroker, database_url: str) -> None:
    ledger = Ledger()
    changes = ledger.admissions("B-C06901-31", [date(2024, 1, 1), date(2024, 12, 31), date(2025, 7, 1)])
    async with running_reporting(broker.bootstrap, database_url) as service:
        await service.reference([branch_registered("B-C06901-31", "C06901")])
        await service.tallies(changes + ledger.admissions("B-UNKNOWN-1", [date(2025, 3, 3)]))
        await service.value_becomes("VN", 4, period="2024..2025")
        checker = service.app.state.selfcheck
        assert await eventually(lambda: _no_violations(checker)) is True
        engine = create_async_engine(database_url)
        async with engine.begin() as connection:  # break VN's months: the check must notice
            await connection.execute(
                text(
                    "UPDATE reporting_unit_months SET value = value + 5 WHERE unit IN (:a, :b) AND part = 0"
                ),
                {"a": unit_key("legacy", "VN"), "b": unit_key("2025", "VN")},
            )
        await engine.dispose()
        assert await checker.check_invariant() > 0


async def _no_violations(checker: object) -> bool | None:
    found = await checker.check_invariant()  # type: ignore[attr-defined]
    return True if found == 0 else None
