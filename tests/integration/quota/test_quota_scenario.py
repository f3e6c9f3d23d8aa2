"""A scenario through the real broker and database: tallies, provinces, targets, candidates, due list."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.orgtree import load_org_trees, local_date
from tests.conftest import eventually
from tests.integration.quota.conftest import Quota
from tests.integration.quota.feed import VN, branch_registered, cloudevent, target_set

pytestmark = pytest.mark.integration

T = datetime(2024, 3, 1, 9, tzinfo=VN)
PROFILE = {"birth_year": 2000, "sex": "female", "categories": ["ethnic_minority", "student"]}


def sourced(cid: str, branch: str, when: datetime, profile: dict | None = None) -> dict:
    return cloudevent(
        "candidate.sourced", {"branch_id": branch, "profile": profile or PROFILE}, when, subject=cid
    )


def step(kind: str, cid: str, branch: str, when: datetime, **data: str) -> dict:
    return cloudevent(f"candidate.{kind}", {"branch_id": branch, **data}, when, subject=cid)


async def test_tallies_provinces_targets_and_candidates(quota: Quota) -> None:
    org = load_org_trees()
    commune = "C06901"  # Xã Quảng An < Huyện Đầm Hà D200 < Tỉnh Quảng Ninh P22 (legacy)
    new_commune = org.to_2025(commune)
    assert new_commune is not None
    province_2025 = org.v2025.province_of(new_commune)
    await quota.reference(
        [
            branch_registered("B-C06901-03", commune, new_commune, T - timedelta(days=90)),
            branch_registered("B-C06901-04", commune, None, T - timedelta(days=90)),
            target_set("P22", 2024, "resolution", 7, T - timedelta(days=60)),
            target_set("P22", 2024, "assigned", 9, T - timedelta(days=60)),
            target_set("P22", 2024, "assigned", 12, T - timedelta(days=70)),  # older: loses
        ]
    )
    events = []
    for n in range(9):
        cid, branch = f"cand-sc-{n}", "B-C06901-03" if n < 6 else "B-C06901-04"
        events += [sourced(cid, branch, T), step("admitted", cid, branch, T + timedelta(days=30 + n))]
    # arrives before its sourced: held, then applied when the sourced arrives (last)
    events.append(step("class_completed", "cand-sc-late", "B-C06901-03", T + timedelta(days=5)))
    events.append(sourced("cand-sc-late", "B-C06901-03", T))
    await quota.send(events)

    async def branch_done() -> dict | None:
        status, body = await quota.get("/v1/branches/B-C06901-03/tallies", year=2024)
        return body if status == 200 and body["tallies"]["sourced"]["all"] == 7 else None

    body = await eventually(branch_done)
    assert body["tallies"]["admitted"] == {**body["tallies"]["admitted"], "all": 6, "female": 6, "student": 6}
    assert body["tallies"]["class_completed"]["all"] == 1
    assert body["targets"] == {}

    async def province() -> dict | None:
        status, body = await quota.get("/v1/provinces/P22/tallies", year=2024)
        return body if status == 200 and body["tallies"]["admitted"]["all"] == 9 else None

    body = await eventually(province)
    assert body["tree"] == "legacy"
    assert body["targets"] == {
        "resolution": {"value": 7, "attainment_pct": "128.57"},
        "assigned": {"value": 9, "attainment_pct": "100.00"},
    }
    # 2025 tree: the branch that declared only a legacy parent is placed through the crosswalk
    status, body = await quota.get(f"/v1/provinces/{province_2025}/tallies", year=2024, tree="2025")
    assert (status, body["tallies"]["admitted"]["all"], body["targets"]) == (200, 9, {})

    status, cand = await quota.get("/v1/candidates/cand-sc-late")
    assert status == 200
    assert (cand["stage"], cand["branch_id"], cand["held"]) == ("class_completed", "B-C06901-03", [])
    assert set(cand["milestones"]) == {"sourced", "class_completed"}

    status, cand = await quota.get("/v1/candidates/cand-sc-0")
    assert cand["stage"] == "admitted"
    assert {f["code"] for f in cand["flags"]} == {"inconsistent_timeline"}  # admitted without class


async def test_unknown_ids_and_bad_parameters_are_problems(quota: Quota) -> None:
    for path, params in (
        ("/v1/branches/B-NOPE/tallies", {"year": 2024}),
        ("/v1/provinces/P99/tallies", {"year": 2024}),
        ("/v1/provinces/C06901/tallies", {"year": 2024}),
        ("/v1/candidates/cand-nope", {}),
        ("/v1/due", {"unit_id": "NOPE"}),
    ):
        response = await quota.client.get(path, params=params)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "not_found"
    for path, params in (
        ("/v1/provinces/P22/tallies", {"year": "twenty"}),
        ("/v1/provinces/P22/tallies", {"year": 2024, "tree": "1975"}),
        ("/v1/branches/B-1/tallies", {}),
        ("/v1/rejections", {"after": "x"}),
        ("/v1/rejections", {"limit": 0}),
        ("/v1/due", {"within_days": -1}),
    ):
        response = await quota.client.get(path, params=params)
        assert response.status_code == 400, (path, params)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_due_lists_probationary_members(quota: Quota) -> None:
    today = local_date(datetime.now(UTC))
    admitted_long_ago = datetime.combine(today - timedelta(days=400), datetime.min.time(), VN)
    admitted_soon_due = datetime.combine(today - timedelta(days=350), datetime.min.time(), VN)
    admitted_recently = datetime.combine(today - timedelta(days=30), datetime.min.time(), VN)
    await quota.reference([branch_registered("B-C02680-01", "C02680", None, T)])
    events = []
    for cid, when in (
        ("cand-due-over", admitted_long_ago),
        ("cand-due-soon", admitted_soon_due),
        ("cand-due-later", admitted_recently),
        ("cand-due-done", admitted_long_ago),
    ):
        events += [
            sourced(cid, "B-C02680-01", when - timedelta(days=200)),
            step("admitted", cid, "B-C02680-01", when),
        ]
    events.append(step("confirmed", "cand-due-done", "B-C02680-01", admitted_long_ago + timedelta(days=380)))
    await quota.send(events)

    async def listed() -> dict | None:
        status, body = await quota.get("/v1/due", unit_id="P10", tree="legacy", within_days=30)
        return body if status == 200 and len(body["items"]) == 2 else None

    body = await eventually(listed)
    over, soon = body["items"]
    assert over["id"] == "cand-due-over"
    assert over["overdue_days"] == (today - date.fromisoformat(over["due"])).days
    assert over["admitted"] == admitted_long_ago.date().isoformat()
    assert soon["id"] == "cand-due-soon"
    assert soon["overdue_days"] == 0
    _status, body = await quota.get("/v1/due", unit_id="B-C02680-01", within_days=400)
    assert [i["id"] for i in body["items"]] == ["cand-due-over", "cand-due-soon", "cand-due-later"]


async def test_metrics_name_what_the_service_did(quota: Quota) -> None:
    await quota.send([sourced("cand-metrics-1", "B-C06901-07", T)])

    async def counted() -> str | None:
        text = (await quota.client.get("/metrics")).text
        wanted = 'ketnap_events_processed_total{outcome="applied",service="quota",type="candidate.sourced"}'
        return text if wanted in text else None

    text = await eventually(counted)
    for name in (
        "ketnap_held_events",
        "ketnap_batch_seconds_bucket",
        "ketnap_freshness_seconds_bucket",
        'ketnap_consumer_lag{partition="',
        "ketnap_outbox_backlog",
    ):
        assert name in text, name
