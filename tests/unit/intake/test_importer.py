"""ketnap import: file rows to NDJSON batches, retries that honour Retry-After, splitting on 413."""

from __future__ import annotations

import io
from typing import Any

import httpx
import orjson
import pytest

from ketnap.importer import (
    ImportAborted,
    Rejects,
    Row,
    Sender,
    Summary,
    batches,
    csv_rows,
    detect_format,
    import_batch,
    ndjson_rows,
    retry_after,
)

pytestmark = pytest.mark.unit


def accepted_all(request: httpx.Request) -> httpx.Response:
    lines = [orjson.loads(line) for line in request.content.splitlines() if line]
    return httpx.Response(202, json={"results": [{"id": e.get("id"), "status": "accepted"} for e in lines]})


def sender(handler: Any, sleeps: list[float] | None = None, **options: Any) -> Sender:
    client = httpx.Client(base_url="http://intake", transport=httpx.MockTransport(handler))
    return Sender(client, "t0ken", sleep=(sleeps if sleeps is not None else []).append, **options)


def rows(n: int) -> list[Row]:
    return [Row(i, orjson.dumps({"id": f"e{i}"})) for i in range(n)]


def test_503_is_retried_after_retry_after_with_the_same_batch() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        assert request.headers["authorization"] == "Bearer t0ken"
        assert request.headers["content-type"] == "application/x-ndjson"
        if len(bodies) < 3:
            return httpx.Response(503, headers={"Retry-After": "3"}, json={"code": "broker_unavailable"})
        return accepted_all(request)

    sleeps: list[float] = []
    results = sender(handler, sleeps).results(rows(4))
    assert [r["status"] for r in results] == ["accepted"] * 4
    assert sleeps == [3.0, 3.0]
    assert len(set(bodies)) == 1


def test_dropped_connections_back_off_exponentially() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise httpx.ConnectError("refused")
        return accepted_all(request)

    sleeps: list[float] = []
    sender(handler, sleeps).results(rows(1))
    assert sleeps == [0.5, 1.0, 2.0]


def test_gives_up_after_max_retries() -> None:
    with pytest.raises(ImportAborted, match="after 2 retries"):
        sender(lambda r: httpx.Response(503), max_retries=2).results(rows(1))


def test_413_splits_the_batch() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        n = len(request.content.splitlines())
        sizes.append(n)
        return httpx.Response(413, json={"code": "payload_too_large"}) if n > 2 else accepted_all(request)

    results = sender(handler).results(rows(5))
    assert [r["id"] for r in results] == [f"e{i}" for i in range(5)]
    assert sizes == [5, 2, 3, 1, 2]


@pytest.mark.parametrize("status", [400, 401, 415])
def test_unretryable_answers_stop_the_import(status: int) -> None:
    with pytest.raises(ImportAborted, match=f"{status} nope"):
        sender(lambda r: httpx.Response(status, json={"code": "nope", "detail": "d"})).results(rows(1))


def test_retry_after_forms() -> None:
    assert retry_after(httpx.Response(503, headers={"Retry-After": "7"}), 0) == 7.0
    assert (
        retry_after(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), 0) == 0.0
    )
    assert retry_after(None, 10) == 30.0


def test_ndjson_rows_keep_lines_verbatim_and_skip_blanks() -> None:
    found = list(ndjson_rows([b'{"id": "a", "z": 1}\n', b"\n", b'{"id":"b"}\r\n']))
    assert [(r.number, r.line) for r in found] == [(1, b'{"id": "a", "z": 1}'), (3, b'{"id":"b"}')]


CSV = (
    "id,type,time,subject,source,data,error_code\n"
    'e1,vn.ketnap.candidate.admitted,2024-05-12T09:00:00+07:00,cand-1,/qn,"{""branch_id"": ""B1""}",\n'
    "e2,vn.ketnap.target.set,2024-01-01T00:00:00+07:00,,/qn,{not json},\n"
)


def test_csv_rows_become_cloudevents() -> None:
    first, second = list(csv_rows(io.StringIO(CSV)))
    assert orjson.loads(first.line) == {
        "specversion": "1.0",
        "id": "e1",
        "source": "/qn",
        "type": "vn.ketnap.candidate.admitted",
        "time": "2024-05-12T09:00:00+07:00",
        "subject": "cand-1",
        "data": {"branch_id": "B1"},
    }
    assert first.number == 2
    assert second.local_error is not None
    assert "data column is not JSON" in second.local_error


def test_csv_with_unknown_columns_is_refused() -> None:
    with pytest.raises(ImportAborted, match="full_name"):
        list(csv_rows(io.StringIO("id,type,full_name\n")))


def test_batches_and_summary_with_rejects(tmp_path: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        lines = [orjson.loads(line) for line in request.content.splitlines()]
        results = [
            {"id": e["id"], "status": "rejected", "error": {"code": "unknown_branch", "detail": "no B1"}}
            if e["id"] == "e1"
            else {"id": e["id"], "status": "duplicate"}
            for e in lines
        ]
        return httpx.Response(200, json={"results": results})

    summary = Summary()
    rejects = Rejects(tmp_path / "rejects.csv", "csv", ["id", "type", "time", "subject", "source", "data"])
    for batch in batches(csv_rows(io.StringIO(CSV)), 1):
        import_batch(sender(handler), batch, summary, rejects)
    rejects.close()
    assert (summary.sent, summary.duplicates, dict(summary.rejected)) == (
        2,
        0,
        {"unknown_branch": 1, "invalid_schema": 1},
    )
    written = (tmp_path / "rejects.csv").read_text().splitlines()
    assert written[0] == "id,type,time,subject,source,data,error_code,error_detail"
    assert written[1].startswith("e1,")
    assert written[1].endswith("unknown_branch,no B1")
    assert "invalid_schema" in written[2]


def test_format_detection() -> None:
    from pathlib import Path

    assert detect_format(Path("a.ndjson"), None) == "ndjson"
    assert detect_format(Path("a.jsonl"), None) == "ndjson"
    assert detect_format(Path("a.CSV"), None) == "csv"
    assert detect_format(Path("a.txt"), "csv") == "csv"
    for unknown in ("a.txt", "a.json"):  # a .json file may be one array, not NDJSON: say so
        with pytest.raises(ImportAborted):
            detect_format(Path(unknown), None)
