"""Scenario 12, read access: the quota and reporting query APIs closed with tokens.

With ``KETNAP_READ_AUTH=true`` every read needs a known token (401 without), a
province token reads its own provinces' subtrees and nothing else (403), and
what it reads is exactly what the national token reads there. Reads are open by
default (``ketnap up``, a cluster without read auth answers without a token) and
closed in the production settings (compose, Kubernetes, and the settings refuse
``KETNAP_ENV=production`` with open reads).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from ketnap.up import System
from shared.settings import Settings
from tests.reliability.harness import Client, Cluster, Figures, scaled, verify
from tests.reliability.model import NATIONAL_TOKEN, World, candidate_stories, make_world, province_token

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(scaled(600, 3600))]

ROOT = Path(__file__).resolve().parents[2]
YEAR = "2024"


def reads_of(world: World, province: str, candidate: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(service, path, params) of every kind of read that names something of legacy ``province``."""
    branch = world.of(province)[0]
    return [
        ("quota", f"/v1/provinces/{province}/tallies", {"year": YEAR, "tree": "legacy"}),
        ("quota", f"/v1/branches/{branch.id}/tallies", {"year": YEAR}),
        ("quota", f"/v1/candidates/{candidate}", {}),
        ("quota", "/v1/due", {"unit_id": province, "tree": "legacy"}),
        ("reporting", f"/v1/rollups/{province}", {"period": YEAR, "tree": "legacy"}),
        ("reporting", f"/v1/rollups/{branch.commune}", {"period": YEAR, "tree": "legacy"}),
        ("reporting", f"/v1/rollups/{branch.district}", {"period": "2023..2024", "tree": "legacy"}),
        ("reporting", "/v1/lagging", {"unit_id": province, "tree": "legacy"}),
        ("reporting", "/v1/export", {"unit_id": province, "period": YEAR, "format": "csv", "tree": "legacy"}),
    ]


NATIONAL_ONLY = [
    ("quota", "/v1/rejections", {}),
    ("quota", "/v1/due", {}),
    ("reporting", "/v1/rollups/VN", {"period": YEAR}),
    ("reporting", "/v1/lagging", {"unit_id": "VN"}),
]


def production_closes_reads() -> list[str]:
    """Where the production configuration leaves reads open (empty: nowhere)."""
    problems = []
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env_blocks = [v for k, v in compose.items() if k.startswith("x-") and isinstance(v, dict)]
    if not any(str(b.get("KETNAP_READ_AUTH", "")).lower() == "true" for b in env_blocks):
        problems.append("docker-compose.yml")
    k8s = yaml.safe_load((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())
    if str(k8s["data"].get("KETNAP_READ_AUTH")).lower() != "true":
        problems.append("deploy/k8s/configmap.yaml")
    try:
        Settings(env="production", read_auth=False)
        problems.append("Settings(env=production, read_auth=False) starts")
    except ValueError as refused:
        if "KETNAP_READ_AUTH" not in str(refused):
            problems.append(f"production refused for another reason: {refused}")
    return problems


async def test_read_access(
    read_auth_cluster: Cluster, shared_cluster: Cluster, tmp_path: Path, book: list[Figures]
) -> None:
    started, cluster = time.monotonic(), read_auth_cluster
    world = make_world(("P01", "P10", "P22"), communes_per_province=2, branches_per_commune=2, tag="a")
    figures = Figures("12 read access")
    book.append(figures)
    client = Client(cluster)
    stories = candidate_stories(world, scaled(300, 3_000), seed=12, prefix="a")
    await client.send_world(world, stories)
    verdict = await verify(
        cluster, world, client.accepted_events(), scope=set(client.sent), years=(2023, 2024)
    )
    candidate = {
        p: next(s[0]["subject"] for s in stories if s[0]["data"]["branch_id"] in {b.id for b in world.of(p)})
        for p in world.provinces
    }
    statuses: Counter[str] = Counter()
    wrong: list[Any] = []

    async def expect(token: str | None, service: str, path: str, params: dict[str, Any], status: int) -> Any:
        answer = await cluster.get(service, path, token, **params)
        statuses[str(answer.status_code)] += 1
        if answer.status_code != status:
            wrong.append(
                (token and token[:16], service, path, params, status, answer.status_code, answer.text[:200])
            )
        return answer.content

    for own in world.provinces:
        for service, path, params in reads_of(world, own, candidate[own]):
            national = await expect(NATIONAL_TOKEN, service, path, params, 200)
            mine = await expect(province_token(own), service, path, params, 200)
            if path != "/v1/export" and national != mine and b'"as_of"' not in national:
                wrong.append(("differs from national", service, path, params))
            await expect(None, service, path, params, 401)
            await expect("not-a-token-at-all-0123456789", service, path, params, 401)
            for other in world.provinces:
                if other != own:
                    await expect(province_token(other), service, path, params, 403)
        own_2025 = world.of(own)[0].province_2025
        await expect(
            province_token(own_2025, "2025"),
            "reporting",
            f"/v1/rollups/{own_2025}",
            {"period": YEAR, "tree": "2025"},
            200,
        )
        await expect(
            province_token(own_2025, "2025"),
            "reporting",
            f"/v1/rollups/{own}",
            {"period": YEAR, "tree": "legacy"},
            403,
        )
    for service, path, params in NATIONAL_ONLY:
        await expect(NATIONAL_TOKEN, service, path, params, 200)
        await expect(province_token(world.provinces[0]), service, path, params, 403)
        await expect(None, service, path, params, 401)
    open_answer = await shared_cluster.get("reporting", "/v1/rollups/VN", None, period=YEAR)
    up_env = System(tmp_path / "up", 0, {"intake": 1, "quota": 2, "reporting": 3}).child_env("quota")
    default_open = (
        open_answer.status_code == 200 and up_env["KETNAP_READ_AUTH"] == "false" and not Settings().read_auth
    )
    production = production_closes_reads()
    refused = statuses["401"] + statuses["403"]
    figures.sent, figures.accepted, figures.rejected = sum(statuses.values()), statuses["200"], refused
    figures.faults = refused
    figures.fill(cluster, verdict)
    figures.lost = figures.double_counted = None
    figures.seconds = time.monotonic() - started
    figures.passed = verdict.ok and not wrong and default_open and not production
    figures.notes = (
        f"reads by status {dict(statuses)} (sent/accepted/rejected count reads here); wrong answers: "
        f"{len(wrong)}; open by default (ketnap up, dev settings): {default_open}; production closes "
        f"reads: {not production}"
    )
    assert not wrong, wrong[:10]
    assert default_open, (open_answer.status_code, up_env["KETNAP_READ_AUTH"])
    assert not production, production
    assert verdict.ok, verdict.explain()
