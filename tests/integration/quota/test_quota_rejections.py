"""Every rejection code reaches ``ketnap.rejected`` and ``GET /v1/rejections``; poison never blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from shared.embedded_broker import EmbeddedBroker
from shared.messages import Rejection
from shared.topics import CANDIDATE_EVENTS, REJECTED
from tests.conftest import eventually, fresh_database_url
from tests.integration.quota.conftest import publish_raw, read_topic, running_quota
from tests.integration.quota.feed import VN, cloudevent

pytestmark = pytest.mark.integration

T = datetime(2024, 4, 1, 9, tzinfo=VN)
PROFILE = {"birth_year": 1999, "sex": "male", "categories": []}
B = {"branch_id": "B-C06901-01"}


def ev(kind: str, cid: str, days: float, event_id: str, **data: object) -> dict:
    body = {**B, **data}
    if kind == "sourced":
        body["profile"] = PROFILE
    return cloudevent(f"candidate.{kind}", body, T + timedelta(days=days), subject=cid, event_id=event_id)


async def test_every_code_reaches_the_topic_and_the_api(broker: EmbeddedBroker, tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    orphan = ev("admitted", "cand-rj-orphan", 40, "rj-orphan")
    orphan["recordedtime"] = old.isoformat()  # held since an hour ago: past a 1 s park TTL
    conflict_a = ev("sourced", "cand-rj-c", 0, "rj-conflict")
    conflict_b = ev("sourced", "cand-rj-c", 1, "rj-conflict")
    events = [
        ev("sourced", "cand-rj-1", 0, "rj-1s"),
        ev("admitted", "cand-rj-1", 30, "rj-1a"),
        ev("admitted", "cand-rj-1", 31, "rj-dup-milestone"),
        ev("dropped", "cand-rj-1", 40, "rj-1d", reason="moved_away"),
        ev("confirmed", "cand-rj-1", 400, "rj-after-drop"),
        ev("sourced", "cand-rj-2", 0, "rj-2s"),
        ev("dropped", "cand-rj-2", 5, "rj-not-recognised", reason="not_recognised"),
        conflict_a,
        {
            **ev("class_completed", "cand-rj-3", 1, "rj-bad-schema"),
            "data": {**B, "full_name": "Nguyễn Văn A"},
        },
        {**ev("class_completed", "cand-rj-3", 1, "rj-unknown-type"), "type": "vn.ketnap.candidate.promoted"},
        orphan,
    ]
    url = await fresh_database_url(tmp_path)
    async with running_quota(broker.bootstrap, url, park_ttl=1) as quota:
        await quota.send(events)
        await quota.send([conflict_b])
        await publish_raw(broker.bootstrap, CANDIDATE_EVENTS, b"cand-rj-x", b"{not json")
        await quota.send([ev("sourced", "cand-rj-after-poison", 0, "rj-after-poison")])
        expected = {
            "rj-dup-milestone": "duplicate_milestone",
            "rj-after-drop": "candidate_dropped",
            "rj-not-recognised": "invalid_transition",
            "rj-conflict": "id_conflict",
            "rj-bad-schema": "invalid_schema",
            "rj-unknown-type": "unknown_type",
            "rj-orphan": "unknown_candidate",
            "cand-rj-x": "invalid_schema",
        }

        async def all_listed() -> dict | None:
            status, body = await quota.get("/v1/rejections", limit=1000)
            found = {i["id"]: i["code"] for i in body["items"]}
            return found if status == 200 and set(expected) <= set(found) else None

        listed = await eventually(all_listed)
        assert {k: listed[k] for k in expected} == expected
        status, _ = await quota.get("/v1/candidates/cand-rj-after-poison")
        assert status == 200  # the poison record did not stop its partition

        status, page = await quota.get("/v1/rejections", code="invalid_schema", limit=1)
        assert status == 200
        assert len(page["items"]) == 1
        assert page["next"]
        status, rest = await quota.get("/v1/rejections", code="invalid_schema", after=page["next"])
        assert {i["id"] for i in page["items"] + rest["items"]} >= {"rj-bad-schema", "cand-rj-x"}
        assert all(i["code"] == "invalid_schema" for i in rest["items"])
        assert rest["next"] is None
        twice = await quota.client.get(
            "/v1/rejections", params=[("code", "invalid_schema"), ("code", "id_conflict")]
        )
        assert (twice.status_code, twice.json()["code"]) == (
            400,
            "invalid_request",
        )  # not silently one of them

        # an expired event is forgotten: sent again after its sourced it counts
        replayed = {k: v for k, v in orphan.items() if k != "recordedtime"}
        await quota.send([ev("sourced", "cand-rj-orphan", 0, "rj-orphan-s"), replayed])

        async def revived() -> dict | None:
            status, body = await quota.get("/v1/candidates/cand-rj-orphan")
            return body if status == 200 and body["stage"] == "admitted" else None

        await eventually(revived)

    async def on_topic() -> dict | None:
        records = await read_topic(broker.bootstrap, REJECTED, idle_ms=500)
        found = {r.key.decode(): orjson.loads(r.value) for r in records}
        return found if set(expected) <= set(found) else None

    published = await eventually(on_topic)
    for event_id, code in expected.items():
        message = Rejection.model_validate(published[event_id])
        assert (message.code, message.service) == (code, "quota")
        if event_id != "cand-rj-x":
            assert isinstance(message.event, dict)
            assert message.event["id"] == event_id
    assert published["cand-rj-x"]["event"] == "{not json"


async def test_nul_characters_in_poison_are_rejected_not_stuck(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """PostgreSQL text cannot hold NUL: a poison id, key or body with one is still rejected, and its
    partition goes on."""
    bad_id = {**ev("sourced", "cand-nul-1", 0, "nul-\u0000-id")}
    bad_reason = ev("voided", "cand-nul-1", 1, "nul-reason", voids="x", reason="typo\u0000")
    url = await fresh_database_url(tmp_path)
    async with running_quota(broker.bootstrap, url) as quota:
        await publish_raw(broker.bootstrap, CANDIDATE_EVENTS, b"cand-nul-1", orjson.dumps(bad_id))
        await publish_raw(broker.bootstrap, CANDIDATE_EVENTS, b"cand-nul-1", orjson.dumps(bad_reason))
        await publish_raw(broker.bootstrap, CANDIDATE_EVENTS, b"cand-\x00-key", b"{not json\x00")
        await quota.send([ev("sourced", "cand-nul-1", 0, "nul-after")])

        async def processed_after() -> dict | None:
            status, body = await quota.get("/v1/candidates/cand-nul-1")
            return body if status == 200 else None

        await eventually(processed_after)

        async def listed() -> list | None:
            status, body = await quota.get("/v1/rejections", code="invalid_schema", limit=100)
            return body["items"] if status == 200 and len(body["items"]) >= 3 else None

        assert len(await eventually(listed)) == 3
