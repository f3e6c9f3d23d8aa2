"""POST /v1/events over real HTTP, on the real broker and database: answers, topics, errors, dry runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from shared.embedded_broker import EmbeddedBroker
from shared.topics import CANDIDATE_EVENTS, REFERENCE_EVENTS
from tests.integration.intake.conftest import (
    LAO_CAI_LEGACY,
    NATIONAL,
    QUANG_NINH,
    Served,
    branch,
    candidate,
    event,
    ndjson,
    post,
    read_topic,
)

pytestmark = pytest.mark.integration


def statuses(response: httpx.Response) -> list[str]:
    return [
        r["error"]["code"] if r["status"] == "rejected" else r["status"] for r in response.json()["results"]
    ]


async def registered(client: httpx.AsyncClient, **parents: Any) -> str:
    """A freshly registered branch (by default under Xã Quảng An C06901 / C06913, Quảng Ninh)."""
    doc = branch(**parents)
    response = await post(client, doc)
    assert response.status_code == 202, response.text
    return str(doc["data"]["branch_id"])


async def test_events_land_on_the_topics_as_the_contract_says(intake: Served, kafka: EmbeddedBroker) -> None:
    reg = branch()
    cand = candidate("admitted", reg["data"]["branch_id"], subject="cand-22-000123")
    target = event("target.set", {"unit_id": "P22", "year": 2024, "kind": "resolution", "value": 7})
    async with intake.client(QUANG_NINH, **{"X-Correlation-ID": "corr-42"}) as client:
        before = datetime.now(UTC)
        response = await post(client, [reg, cand, target])
        after = datetime.now(UTC)
    assert response.status_code == 202
    assert response.headers["x-correlation-id"] == "corr-42"
    assert response.json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": 0,
        "results": [{"id": e["id"], "status": "accepted"} for e in (reg, cand, target)],
    }
    (on_candidates,) = await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {cand["id"]})
    references = await read_topic(kafka.bootstrap, REFERENCE_EVENTS, {reg["id"], target["id"]})
    by_id = {orjson.loads(r.value)["id"]: r for r in [on_candidates, *references]}
    for doc, key in ((reg, reg["data"]["branch_id"]), (cand, "cand-22-000123"), (target, "P22")):
        record = by_id[doc["id"]]
        assert record.key == key.encode()
        assert dict(record.headers) == {
            "content-type": b"application/cloudevents+json",
            "correlation-id": b"corr-42",
        }
        value = orjson.loads(record.value)
        recorded = value.pop("recordedtime")
        assert value == doc
        assert list(value) == list(doc)  # the event as received, keys in the sender's order
        assert recorded.endswith("Z")
        assert before - timedelta(seconds=1) <= datetime.fromisoformat(recorded) <= after


async def test_a_correlation_id_is_generated_when_none_is_sent(intake: Served) -> None:
    async with intake.client() as client:
        response = await post(client, [])
    assert response.status_code == 200
    assert len(response.headers["x-correlation-id"]) >= 16


async def test_same_events_again_are_duplicates_answered_200(intake: Served, kafka: EmbeddedBroker) -> None:
    async with intake.client() as client:
        bid = await registered(client)
        events = [candidate("sourced", bid), candidate("admitted", bid)]
        first, again = await post(client, events), await post(client, events)
    assert (first.status_code, statuses(first)) == (202, ["accepted", "accepted"])
    assert (again.status_code, statuses(again)) == (200, ["duplicate", "duplicate"])
    assert again.json()["duplicates"] == 2
    assert len(await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {e["id"] for e in events})) == 2


async def test_a_provincial_void_of_an_unseen_event_is_published_with_the_tokens_scope(
    intake: Served, kafka: EmbeddedBroker
) -> None:
    """Finding 9: the quota applies it only to an event lying in those provinces."""
    async with intake.client() as client:
        bid = await registered(client)
        seen = candidate("admitted", bid)
        assert (await post(client, seen)).status_code == 202

    def void(target: str) -> dict[str, Any]:
        return event("candidate.voided", {"voids": target, "reason": "typo"}, subject="cand-void-1")

    sent = {
        "unseen, Lào Cai": (void("never-seen-1"), LAO_CAI_LEGACY, "legacy:P10"),
        "unseen, Quảng Ninh": (void("never-seen-2"), QUANG_NINH, "legacy:P22 2025:P22"),
        "unseen, national": (void("never-seen-3"), NATIONAL, None),
        "seen, Quảng Ninh": (void(seen["id"]), QUANG_NINH, None),  # authorised through the event
    }
    for doc, token, _ in sent.values():
        async with intake.client(token) as client:
            response = await post(client, doc)
        assert (response.status_code, statuses(response)) == (202, ["accepted"])
    records = await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {d["id"] for d, _, _ in sent.values()})
    published = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in records}
    for name, (doc, _, scope) in sent.items():
        value = published[doc["id"]]
        assert value.get("voidscope") == scope, name
        assert {k: v for k, v in value.items() if k not in ("recordedtime", "voidscope")} == doc


@pytest.mark.parametrize("token", [LAO_CAI_LEGACY, NATIONAL])
async def test_a_client_sent_voidscope_is_refused_and_published_nowhere(
    intake: Served, kafka: EmbeddedBroker, token: str
) -> None:
    """Only the intake sets it: a client could otherwise claim any province's scope."""
    forged = event(
        "candidate.voided", {"voids": "x-1", "reason": "typo"}, subject="cand-void-2", voidscope="P22"
    )
    async with intake.client(token) as client:
        response = await post(client, forged)
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["error"] == {
        "code": "invalid_schema",
        "detail": "voidscope: set by the intake, must not be sent",
    }
    assert await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {forged["id"]}, settle_s=0.5) == []


def _future() -> str:
    return (datetime.now(UTC) + timedelta(minutes=30)).isoformat()


REJECTIONS: dict[str, Any] = {
    "invalid_schema": lambda bid: {
        **candidate("admitted", bid),
        "data": {"branch_id": bid, "full_name": "Nguyễn Văn A"},
    },
    "unknown_type": lambda bid: {**candidate("admitted", bid), "type": "vn.ketnap.candidate.hired"},
    "unknown_branch": lambda bid: candidate("admitted", "B-never-registered"),
    "unknown_unit": lambda bid: branch(legacy="C99999", v2025=None),
    "out_of_scope": lambda bid: candidate("admitted", bid),  # sent with the legacy Lào Cai token
    "future_time": lambda bid: candidate("admitted", bid, time=_future()),
}


@pytest.mark.parametrize("code", sorted(REJECTIONS))
async def test_each_rejection_code(intake: Served, kafka: EmbeddedBroker, code: str) -> None:
    async with intake.client() as national:
        bid = await registered(national)
    bad = REJECTIONS[code](bid)
    token = LAO_CAI_LEGACY if code == "out_of_scope" else QUANG_NINH
    async with intake.client(token) as client:
        response = await post(client, bad)
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["id"] == bad["id"]
    assert result["status"] == "rejected"
    assert result["error"]["code"] == code
    assert result["error"]["detail"]
    topic = REFERENCE_EVENTS if "branch_registered" in bad["type"] else CANDIDATE_EVENTS
    assert await read_topic(kafka.bootstrap, topic, {bad["id"]}, settle_s=0.2) == []


async def test_id_conflict_keeps_the_first_content(intake: Served, kafka: EmbeddedBroker) -> None:
    async with intake.client() as client:
        bid = await registered(client)
        original = candidate("admitted", bid)
        changed = {**original, "time": "2024-05-13T09:00:00+07:00"}
        assert (await post(client, original)).status_code == 202
        response = await post(client, changed)
    assert statuses(response) == ["id_conflict"]
    (record,) = await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {original["id"]})
    assert orjson.loads(record.value)["time"] == original["time"]


async def test_a_mixed_batch_keeps_its_good_events(intake: Served, kafka: EmbeddedBroker) -> None:
    async with intake.client(QUANG_NINH) as client:
        bid = await registered(client)
        good = [candidate("sourced", bid) for _ in range(3)]
        unknown = candidate("admitted", "B-nope")
        bad = [unknown, 17, branch(legacy="C02680", v2025=None)]  # last: Lào Cai
        batch = [good[0], bad[0], good[1], bad[1], bad[2], good[2]]
        response = await post(client, batch)
    assert response.status_code == 202
    assert statuses(response) == [
        "accepted",
        "unknown_branch",
        "accepted",
        "invalid_schema",
        "out_of_scope",
        "accepted",
    ]
    assert response.json()["results"][3]["id"] is None
    assert (response.json()["accepted"], response.json()["rejected"]) == (3, 3)
    on_topic = await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {e["id"] for e in good} | {unknown["id"]})
    assert {orjson.loads(r.value)["id"] for r in on_topic} == {e["id"] for e in good}


async def test_ndjson_body_with_a_line_that_is_not_json(intake: Served) -> None:
    async with intake.client() as client:
        bid = await registered(client)
        events = [candidate("sourced", bid), candidate("admitted", bid)]
        body = ndjson(events[:1]) + b"{broken\n" + ndjson(events[1:])
        response = await client.post(
            "/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
    assert response.status_code == 202
    assert statuses(response) == ["accepted", "invalid_schema", "accepted"]
    assert "line 2" in response.json()["results"][1]["error"]["detail"]


async def test_branch_registered_earlier_in_the_request_is_known(intake: Served) -> None:
    reg = branch()
    async with intake.client(QUANG_NINH) as client:
        response = await post(client, [reg, candidate("sourced", reg["data"]["branch_id"])])
    assert statuses(response) == ["accepted", "accepted"]


async def test_dry_run_answers_alike_but_publishes_and_records_nothing(
    intake: Served, kafka: EmbeddedBroker
) -> None:
    async with intake.client() as client:
        bid = await registered(client)
        events = [candidate("sourced", bid), candidate("admitted", "B-nope")]
        dry = await post(client, events, dry_run="true")
        real = await post(client, events)
    assert dry.status_code == real.status_code == 202
    assert dry.json() == real.json()  # the dry run recorded nothing: the real run is not a duplicate
    assert statuses(real) == ["accepted", "unknown_branch"]
    assert len(await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {events[0]["id"]})) == 1


async def test_a_nul_character_in_any_text_is_invalid_schema_and_spares_its_neighbours(
    intake: Served,
) -> None:
    """PostgreSQL text cannot hold NUL: it must be refused per event, not fail the batch."""
    async with intake.client() as client:
        bid = await registered(client)
        good = candidate("sourced", bid)
        bad_id = candidate("sourced", bid, id="nul-\u0000-id")
        bad_name = branch()
        bad_name["data"]["name"] = "Chi b\u1ed9 \u0000"
        bad_reason = {**candidate("voided", bid), "data": {"voids": good["id"], "reason": "typo\u0000"}}
        response = await post(client, [good, bad_id, bad_name, bad_reason])
    assert response.status_code == 202
    assert statuses(response) == ["accepted", "invalid_schema", "invalid_schema", "invalid_schema"]


async def test_a_repeated_query_parameter_is_refused_not_guessed(
    intake: Served, kafka: EmbeddedBroker
) -> None:
    async with intake.client() as client:
        bid = await registered(client)
        event = candidate("sourced", bid)
        response = await client.post(
            "/v1/events",
            content=orjson.dumps([event]),
            params=[("dry_run", "true"), ("dry_run", "false")],
            headers={"Content-Type": "application/json"},
        )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, {event["id"]}) == []


async def test_scope_three_province_tokens_times_100_foreign_branches(
    intake: Served, kafka: EmbeddedBroker
) -> None:
    """Branches of Hà Nội (P01): neither Quảng Ninh nor either Lào Cai token may write for them."""
    from tests.integration.intake.conftest import LAO_CAI_2025

    ha_noi = [u.id for u in _trees().legacy.units("commune") if _trees().legacy.province_of(u.id) == "P01"][
        :100
    ]
    regs = [branch(legacy=c, v2025=_trees().to_2025(c)) for c in ha_noi]
    async with intake.client() as national:
        assert (await post(national, regs)).json()["accepted"] == 100
    sent: set[str] = set()
    for token in (QUANG_NINH, LAO_CAI_LEGACY, LAO_CAI_2025):
        events = [candidate("admitted", r["data"]["branch_id"]) for r in regs]
        events += [
            candidate("admitted", r["data"]["branch_id"], time="2025-08-01T09:00:00+07:00") for r in regs
        ]
        takeovers = [branch(r["data"]["branch_id"], legacy="C06901", v2025="C06913") for r in regs]
        async with intake.client(token) as client:
            response = await post(client, events + takeovers)
        assert response.status_code == 200
        assert set(statuses(response)) == {"out_of_scope"}
        assert response.json()["rejected"] == 300
        sent |= {e["id"] for e in events + takeovers}
    assert await read_topic(kafka.bootstrap, CANDIDATE_EVENTS, sent, settle_s=0.3) == []
    assert await read_topic(kafka.bootstrap, REFERENCE_EVENTS, sent, settle_s=0.3) == []


def _trees() -> Any:
    from shared.orgtree import load_org_trees

    return load_org_trees()


# -- whole-request errors: RFC 9457 problems with a stable code -------------------------------


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["detail"]
    assert "x-correlation-id" in response.headers
    return body


@pytest.mark.parametrize("token", [None, "wrong-token", "national-token-0123456789abcdeX"])
async def test_401_without_a_valid_token(intake: Served, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(base_url=intake.url, headers=headers) as client:
        response = await post(client, candidate("admitted", "B1"))
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_400_malformed_body(intake: Served) -> None:
    async with intake.client() as client:
        response = await client.post(
            "/v1/events", content=b"{nope", headers={"Content-Type": "application/json"}
        )
    assert_problem(response, 400, "malformed_body")


async def test_415_wrong_content_type(intake: Served) -> None:
    async with intake.client() as client:
        response = await client.post("/v1/events", content=b"{}", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415, "unsupported_media_type")


async def test_413_by_content_length_by_stream_and_by_count(intake: Served) -> None:
    big = b"[" + b" " * (16 * 1024 * 1024) + b"]"

    async def chunked() -> Any:  # no Content-Length: the capped read must stop it
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    many = ndjson([{"id": str(i)} for i in range(10_001)])
    async with intake.client() as client:
        by_length = await client.post("/v1/events", content=big, headers={"Content-Type": "application/json"})
        by_stream = await client.post(
            "/v1/events", content=chunked(), headers={"Content-Type": "application/json"}
        )
        by_count = await client.post(
            "/v1/events", content=many, headers={"Content-Type": "application/x-ndjson"}
        )
    for response in (by_length, by_stream, by_count):
        assert_problem(response, 413, "payload_too_large")


async def test_metrics_and_health(intake: Served) -> None:
    async with intake.client() as client:
        bid = await registered(client)
        await post(client, [candidate("admitted", bid), candidate("admitted", "B-nope")])
        metrics = (await client.get("/metrics")).text
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert 'ketnap_intake_events_total{province="P22",status="accepted",type="candidate.admitted"}' in metrics
    assert 'ketnap_intake_rejections_total{code="unknown_branch"}' in metrics
    for name in ("request_seconds", "publish_seconds", "batch_size"):
        assert f"ketnap_intake_{name}_bucket" in metrics


async def test_one_log_line_per_request_with_counts_and_scope_never_the_token(
    start_intake: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    served = await start_intake(log_level="INFO")
    async with served.client(QUANG_NINH) as client:
        bid = await registered(client)
        capfd.readouterr()
        await post(client, [candidate("admitted", bid), candidate("admitted", "B-nope")])
    lines = [
        orjson.loads(line) for line in capfd.readouterr().out.splitlines() if '"events_answered"' in line
    ]
    assert len(lines) == 1
    (line,) = lines
    assert (line["accepted"], line["rejected"], line["events"]) == (1, 1, 2)
    assert line["scope"] == ["legacy:P22", "2025:P22"]
    assert QUANG_NINH not in orjson.dumps(line).decode()


async def test_openapi_documents_every_body_form_and_error(intake: Served) -> None:
    async with intake.client() as client:
        doc = (await client.get("/openapi.json")).json()
    operation = doc["paths"]["/v1/events"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson"}
    assert set(content["application/json"]["examples"]) == {"one_event", "array"}
    assert "vn.ketnap.target.set" in orjson.dumps(doc["components"]["schemas"]["CloudEvent"]).decode()
    assert set(operation["responses"]) == {"200", "202", "400", "401", "413", "415", "503"}
    codes = {
        example["value"]["code"]
        for status in ("400", "401", "413", "415", "503")
        for example in operation["responses"][status]["content"]["application/problem+json"][
            "examples"
        ].values()
    }
    assert {
        "malformed_body",
        "unauthorized",
        "payload_too_large",
        "unsupported_media_type",
        "broker_unavailable",
    } <= codes
