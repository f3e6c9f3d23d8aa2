"""`ketnap import` against a running intake: NDJSON and CSV files, re-runs resume, rejects are written."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ketnap.cli import app
from shared.embedded_broker import EmbeddedBroker
from tests.integration.intake.conftest import (
    QUANG_NINH,
    ThreadedServer,
    branch,
    candidate,
    intake_settings,
)

pytestmark = pytest.mark.integration


def run_import(server: ThreadedServer, path: Path, rejects: Path, *extra: str) -> tuple[int, str]:
    args = ["import", str(path), "--url", server.url, "--rejects", str(rejects), "--batch-size", "7", *extra]
    result = CliRunner().invoke(app, args, env={"KETNAP_TOKEN": QUANG_NINH, "COLUMNS": "200"})
    return result.exit_code, result.output


def test_ndjson_import_then_a_rerun_resumes(kafka: EmbeddedBroker, database_url: str, tmp_path: Path) -> None:
    reg = branch()
    events = [reg, *[candidate("sourced", reg["data"]["branch_id"]) for _ in range(20)]]
    bad = candidate("admitted", "B-nowhere")
    path = tmp_path / "feed.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in [*events[:10], bad, *events[10:]]) + b"\n")
    rejects = tmp_path / "rejects.ndjson"
    with ThreadedServer(intake_settings(kafka.bootstrap, database_url)) as server:
        first_code, first = run_import(server, path, rejects)
        (line,) = [orjson.loads(x) for x in rejects.read_text().splitlines()]
        again_code, again = run_import(server, path, rejects)
    assert first_code == again_code == 1  # one row rejected each time
    assert "accepted" in first
    assert "21" in first
    assert (line["line"], line["id"], line["code"]) == (11, bad["id"], "unknown_branch")
    assert line["event"] == bad
    assert "duplicates (already there)" in again
    assert "│ 21" in again.split("duplicates (already there)")[1].splitlines()[0]


def test_csv_import_writes_rejects_that_can_be_fixed_and_reimported(
    kafka: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    reg = branch()
    good = candidate("sourced", reg["data"]["branch_id"])
    unknown = candidate("admitted", "B-nowhere")
    columns = ["id", "type", "time", "subject", "source", "data"]
    path = tmp_path / "feed.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        for e in (reg, good, unknown):
            writer.writerow({**{c: e.get(c, "") for c in columns}, "data": orjson.dumps(e["data"]).decode()})
    rejects = tmp_path / "rejects.csv"
    with ThreadedServer(intake_settings(kafka.bootstrap, database_url)) as server:
        code, _ = run_import(server, path, rejects)
        (row,) = list(csv.DictReader(rejects.open(encoding="utf-8")))
        assert code == 1
        assert (row["id"], row["error_code"]) == (unknown["id"], "unknown_branch")
        fixed = tmp_path / "fixed.csv"
        text = rejects.read_text(encoding="utf-8").replace("B-nowhere", reg["data"]["branch_id"])
        fixed.write_text(text, encoding="utf-8")
        fixed_code, fixed_out = run_import(server, fixed, tmp_path / "none.csv")
    assert fixed_code == 0, fixed_out


def test_a_bad_token_stops_the_import(kafka: EmbeddedBroker, database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_bytes(orjson.dumps(branch()) + b"\n")
    with ThreadedServer(intake_settings(kafka.bootstrap, database_url)) as server:
        result = CliRunner().invoke(
            app, ["import", str(path), "--url", server.url, "--token", "wrong"], env={"COLUMNS": "200"}
        )
    assert result.exit_code == 2
    assert "unauthorized" in result.output
