"""Finding 9 end to end: a province may not void another province's event by guessing its id.

The intake accepts a void of an event it has not seen from any token (a late batch may
void an event still on its way) and, for a province token, publishes it with the
token's provinces in ``voidscope``. The quota applies such a void only to an event
lying in those provinces; otherwise it is rejected ``out_of_scope`` (``ketnap.rejected``
and ``GET /v1/rejections``) and the event keeps counting. Real intake over HTTP, real
quota, one private Tansu broker, fresh databases (SQLite or PostgreSQL).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.embedded_broker import EmbeddedBroker
from shared.messages import Rejection
from shared.topics import REJECTED
from tests.conftest import eventually, fresh_database_url
from tests.integration.intake.conftest import Served, intake_settings, serve
from tests.integration.quota.conftest import Quota, read_topic, running_quota
from tests.integration.quota.feed import VN, branch_registered, cloudevent

pytestmark = pytest.mark.integration

NATIONAL = "national-token-0123456789abcdef"
QUANG_NINH = "quang-ninh-token-0123456789abcdef"  # P22 in both trees
LAO_CAI = "lao-cai-token-0123456789abcdef"  # legacy P10
TOKENS = {NATIONAL: ["*"], QUANG_NINH: ["P22"], LAO_CAI: ["legacy:P10"]}
T = datetime(2024, 4, 1, 9, tzinfo=VN)  # the legacy tree is in force
PROFILE = {"birth_year": 1999, "sex": "female", "categories": ["youth_union"]}


@dataclass
class System:
    intake: Served
    quota: Quota
    tag: str

    async def post(self, token: str, events: list[dict[str, Any]]) -> list[str]:
        """Each event's answer (the status, or the rejection code)."""
        sent = [{k: v for k, v in e.items() if k != "recordedtime"} for e in events]
        async with self.intake.client(token) as client:
            response = await client.post(
                "/v1/events", content=orjson.dumps(sent), headers={"Content-Type": "application/json"}
            )
        assert response.status_code in (200, 202), response.text
        return [
            r["error"]["code"] if r["status"] == "rejected" else r["status"]
            for r in response.json()["results"]
        ]

    def branch(self, name: str) -> str:
        return f"B-VS-{name}-{self.tag}"

    def cand(self, name: str) -> str:
        return f"cand-vs-{name}-{self.tag}"

    async def register(self, *names: str) -> None:
        """Branches under Xã Quảng An C06901 (legacy Quảng Ninh P22), known to the quota before voids."""
        events = [branch_registered(self.branch(n), "C06901", None, T - timedelta(days=400)) for n in names]
        assert await self.post(NATIONAL, events) == ["accepted"] * len(names)
        for name in names:
            await eventually(lambda n=name: self.known(n))

    async def known(self, name: str) -> bool:
        status, _ = await self.quota.get(f"/v1/branches/{self.branch(name)}/tallies", year=2024)
        return status == 200

    async def tallies(self, name: str) -> dict[str, dict[str, int]]:
        status, body = await self.quota.get(f"/v1/branches/{self.branch(name)}/tallies", year=2024)
        assert status == 200
        tallies: dict[str, dict[str, int]] = body["tallies"]
        return tallies

    async def candidate(self, name: str) -> dict[str, Any]:
        status, body = await self.quota.get(f"/v1/candidates/{self.cand(name)}")
        assert status == 200, body
        return dict(body)

    async def rejections(self) -> dict[str, str]:
        status, body = await self.quota.get("/v1/rejections", limit=1000)
        assert status == 200
        return {i["id"]: i["code"] for i in body["items"]}


def sourced(system: System, name: str, branch: str) -> dict[str, Any]:
    data = {"branch_id": system.branch(branch), "profile": PROFILE}
    return cloudevent(
        "candidate.sourced", data, T, subject=system.cand(name), event_id=f"s-{name}-{system.tag}"
    )


def admitted(system: System, name: str, branch: str, event_id: str) -> dict[str, Any]:
    data = {"branch_id": system.branch(branch)}
    return cloudevent(
        "candidate.admitted", data, T + timedelta(days=60), subject=system.cand(name), event_id=event_id
    )


def void(system: System, name: str, target: str, **extension: str) -> dict[str, Any]:
    data = {"voids": target, "reason": "entered in error"}
    doc = cloudevent("candidate.voided", data, T + timedelta(days=90), subject=system.cand(name))
    return {**doc, **extension}


@pytest.fixture
async def system(broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[System]:
    intake_db = await fresh_database_url(tmp_path, "intake")
    settings = intake_settings(broker.bootstrap, intake_db, TOKENS)
    intake = await serve(settings)
    try:
        quota_db = await fresh_database_url(tmp_path, "quota")
        async with running_quota(broker.bootstrap, quota_db) as quota:
            yield System(intake, quota, uuid.uuid4().hex[:8])
    finally:
        await intake.stop()


async def on_rejected_topic(bootstrap: str, ids: set[str]) -> dict[str, Rejection]:
    async def found() -> dict[str, Rejection] | None:
        records = await read_topic(bootstrap, REJECTED, idle_ms=500)
        by_id = {r.key.decode(): Rejection.model_validate_json(r.value) for r in records}
        return by_id if ids <= set(by_id) else None

    return await eventually(found)


async def test_a_held_void_applies_only_inside_the_voiding_provinces(
    system: System, broker: EmbeddedBroker
) -> None:
    """(a) Lào Cai voids unseen X of a candidate; Quảng Ninh then sends X in its own branch:
    X counts there, the void is out_of_scope. (b) Quảng Ninh's own held void takes its X back."""
    await system.register("foreign", "own")
    foreign_x, own_x = f"x-foreign-{system.tag}", f"x-own-{system.tag}"
    foreign_void = void(system, "foreign", foreign_x)
    own_void = void(system, "own", own_x)
    assert await system.post(LAO_CAI, [foreign_void]) == ["accepted"]  # the intake has not seen X
    assert await system.post(QUANG_NINH, [own_void]) == ["accepted"]

    assert (
        await system.post(
            QUANG_NINH,
            [
                sourced(system, "foreign", "foreign"),
                admitted(system, "foreign", "foreign", foreign_x),
                sourced(system, "own", "own"),
                admitted(system, "own", "own", own_x),
            ],
        )
        == ["accepted"] * 4
    )

    async def decided() -> bool:
        found = [await system.quota.get(f"/v1/candidates/{system.cand(n)}") for n in ("foreign", "own")]
        if any(status != 200 for status, _ in found):
            return False  # not there yet
        (_, foreign), (_, own) = found
        return not foreign["held"] and not own["held"] and "sourced" in own["milestones"]

    await eventually(decided)
    assert (await system.rejections()).get(foreign_void["id"]) == "out_of_scope"
    assert own_void["id"] not in await system.rejections()
    counted = await system.tallies("foreign")
    assert (counted["admitted"]["all"], counted["admitted"]["youth_union"], counted["sourced"]["all"]) == (
        1,
        1,
        1,
    )
    assert (await system.candidate("foreign"))["stage"] == "admitted"
    voided = await system.tallies("own")
    assert {metric: by["all"] for metric, by in voided.items() if by["all"]} == {"sourced": 1}
    assert sum(voided["admitted"].values()) == 0  # every category taken back
    assert (await system.candidate("own"))["stage"] == "sourced"

    published = await on_rejected_topic(broker.bootstrap, {foreign_void["id"]})
    rejection = published[foreign_void["id"]]
    assert (rejection.code, rejection.service) == ("out_of_scope", "quota")
    assert isinstance(rejection.event, dict)
    assert rejection.event["voidscope"] == "legacy:P10"
    assert foreign_x in rejection.detail
    assert "legacy:P22" in rejection.detail  # where X lies
    assert own_void["id"] not in published


async def test_a_void_of_an_event_the_quota_already_counts_behaves_the_same(
    system: System, broker: EmbeddedBroker
) -> None:
    """(c) X reached the quota another way (a second intake deployment with its own database,
    here a direct publish), so this intake has not seen it when the void comes."""
    await system.register("late")
    x_foreign, x_own = f"x-foreign-{system.tag}", f"x-own-{system.tag}"
    await system.quota.send(
        [
            sourced(system, "late-foreign", "late"),
            admitted(system, "late-foreign", "late", x_foreign),
            sourced(system, "late-own", "late"),
            admitted(system, "late-own", "late", x_own),
        ]
    )

    async def counted() -> bool:
        return (await system.tallies("late"))["admitted"]["all"] == 2

    await eventually(counted)
    foreign_void = void(system, "late-foreign", x_foreign)
    own_void = void(system, "late-own", x_own)
    assert await system.post(LAO_CAI, [foreign_void]) == ["accepted"]
    assert await system.post(QUANG_NINH, [own_void]) == ["accepted"]
    # A scoped void published straight on the topic is judged the same way (2025 P15 does not
    # hold a 2024 event: that date is in the legacy tree, where the branch is in P22).
    forged = void(system, "late-foreign", x_foreign, voidscope="2025:P15 2025:P22")
    await system.quota.send([forged])

    async def decided() -> dict[str, str] | None:
        found = await system.rejections()
        return found if {foreign_void["id"], forged["id"]} <= set(found) else None

    rejections = await eventually(decided)
    assert (rejections[foreign_void["id"]], rejections[forged["id"]]) == ("out_of_scope", "out_of_scope")

    async def own_applied() -> bool:
        return (await system.tallies("late"))["admitted"]["all"] == 1

    await eventually(own_applied)
    assert (await system.candidate("late-foreign"))["stage"] == "admitted"
    assert (await system.candidate("late-own"))["stage"] == "sourced"
    assert own_void["id"] not in await system.rejections()
    published = await on_rejected_topic(broker.bootstrap, {foreign_void["id"], forged["id"]})
    assert {published[i].code for i in (foreign_void["id"], forged["id"])} == {"out_of_scope"}
