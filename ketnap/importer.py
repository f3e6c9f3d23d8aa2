"""``ketnap import``: send an NDJSON or CSV file of events to an intake, in batches, resumably.

Invariants:
- every row is sent at most once per run, in file order, in NDJSON batches of
  ``batch_size`` events; NDJSON lines are sent byte for byte as they are in the file;
- a ``503`` (or ``429``, or a dropped connection) is retried with the same batch after
  ``Retry-After`` (or an exponential backoff): the intake's idempotency makes that
  safe, and makes a whole re-run safe too (what was accepted comes back ``duplicate``),
  which is how an interrupted import is resumed;
- a batch the intake finds too large (``413``) is split in two and sent again;
- ``401``, ``400`` and ``415`` stop the import: retrying cannot help.

CSV layout (one row per event, header row required): ``id``, ``type``, ``time``,
``subject``, ``source``, ``data`` (the event's ``data`` object as JSON), and optionally
``specversion`` (default ``1.0``) and ``datacontenttype``; an empty cell means the field
is absent. ``error_code`` and ``error_detail`` columns (as written to a rejects file)
are ignored, so a corrected rejects file can be imported again. See docs/integrators.md.
"""

from __future__ import annotations

import csv
import email.utils
import io
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

import httpx
import orjson

DEFAULT_BATCH: Final = 5000
MAX_RETRIES: Final = 20
CSV_FIELDS: Final = ("id", "type", "time", "subject", "source", "data", "specversion", "datacontenttype")
CSV_IGNORED: Final = ("error_code", "error_detail")
RETRYABLE: Final = frozenset({429, 502, 503, 504})


class ImportAborted(Exception):
    """The intake refused in a way a retry cannot fix (bad token, malformed request...)."""

    summary: Summary | None = None  # what was done before the import stopped


@dataclass(frozen=True, slots=True)
class Row:
    """One event to send: its position in the file, the NDJSON line, and the original row."""

    number: int
    line: bytes
    original: dict[str, str] | None = None  # the CSV row, for the rejects file
    local_error: str | None = None  # a CSV row that could not even be turned into an event


@dataclass
class Summary:
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    retries: int = 0
    seconds: float = 0.0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


# -- reading files ---------------------------------------------------------------------------


def detect_format(path: Path, given: str | None) -> str:
    kind = (given or path.suffix.lstrip(".")).lower()
    kind = {"jsonl": "ndjson"}.get(kind, kind)
    if kind not in ("ndjson", "csv"):
        raise ImportAborted(f"cannot tell the format of {path.name}: use --format ndjson or --format csv")
    return kind


def ndjson_rows(lines: Iterable[bytes]) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped:
            yield Row(number, stripped)


def csv_rows(text: TextIO) -> Iterator[Row]:
    reader = csv.DictReader(text)
    unknown = set(reader.fieldnames or ()) - set(CSV_FIELDS) - set(CSV_IGNORED)
    if unknown or not reader.fieldnames:
        raise ImportAborted(f"unknown CSV columns {sorted(unknown)}; expected {', '.join(CSV_FIELDS)}")
    for number, record in enumerate(reader, start=2):  # row 1 is the header
        original = {k: v for k, v in record.items() if k not in CSV_IGNORED and k is not None}
        try:
            yield Row(number, orjson.dumps(csv_event(original)), original)
        except ValueError as bad:
            yield Row(number, b"", original, local_error=str(bad))


def csv_event(row: dict[str, str]) -> dict[str, Any]:
    """A CloudEvent from a CSV row: empty cells are absent fields, ``data`` is parsed as JSON."""
    event: dict[str, Any] = {"specversion": row.get("specversion") or "1.0"}
    for name in ("id", "source", "type", "time", "subject", "datacontenttype"):
        if row.get(name):
            event[name] = row[name]
    if row.get("data"):
        try:
            event["data"] = orjson.loads(row["data"])
        except orjson.JSONDecodeError as bad:
            raise ValueError(f"data column is not JSON: {bad}") from None
    return event


def batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- talking to the intake --------------------------------------------------------------------


def retry_after(response: httpx.Response | None, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After (seconds or HTTP date), else 0.5 * 2^attempt, <= 30."""
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        if header.strip().isdigit():
            return float(header)
        when = email.utils.parsedate_to_datetime(header)
        if when is not None:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return float(min(30.0, 0.5 * 2**attempt))


@dataclass
class Sender:
    """Posts NDJSON batches to ``POST /v1/events`` and retries what can be retried."""

    client: httpx.Client
    token: str
    sleep: Callable[[float], None] = time.sleep
    max_retries: int = MAX_RETRIES
    retries: int = 0

    def results(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """One result per row (in order), splitting the batch if the intake says it is too large."""
        response = self._post(b"\n".join(r.line for r in rows) + b"\n")
        if response.status_code == 413 and len(rows) > 1:
            half = len(rows) // 2
            return self.results(rows[:half]) + self.results(rows[half:])
        if response.status_code not in (200, 202):
            raise ImportAborted(_problem(response))
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def _post(self, body: bytes) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"}
        for attempt in range(self.max_retries + 1):
            response: httpx.Response | None = None
            try:
                response = self.client.post("/v1/events", content=body, headers=headers)
                if response.status_code not in RETRYABLE:
                    return response
            except httpx.TransportError:
                pass  # connection refused or dropped: the intake may be restarting
            if attempt < self.max_retries:
                self.retries += 1
                self.sleep(retry_after(response, attempt))
        raise ImportAborted(f"intake still unavailable after {self.max_retries} retries")


def _problem(response: httpx.Response) -> str:
    try:
        doc = response.json()
        return f"{response.status_code} {doc.get('code')}: {doc.get('detail')}"
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"


# -- one import -------------------------------------------------------------------------------


class Rejects:
    """The rejects file: CSV rows with ``error_code``/``error_detail`` for a CSV import, else NDJSON
    lines ``{"line", "id", "code", "detail", "event"}``."""

    def __init__(self, path: Path | None, kind: str, columns: Sequence[str]) -> None:
        self.kind = kind
        self.out = path.open("w", encoding="utf-8", newline="") if path else None
        self.writer = None
        if self.out is not None and kind == "csv":
            self.writer = csv.DictWriter(self.out, [*columns, *CSV_IGNORED], extrasaction="ignore")
            self.writer.writeheader()

    def write(self, row: Row, code: str, detail: str) -> None:
        if self.out is None:
            return
        if self.writer is not None:
            self.writer.writerow({**(row.original or {}), "error_code": code, "error_detail": detail})
            return
        event: Any = _json_or_text(row.line)
        doc = {"line": row.number, "id": _id(event), "code": code, "detail": detail, "event": event}
        self.out.write(orjson.dumps(doc).decode() + "\n")

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def _json_or_text(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return line.decode("utf-8", "replace")


def _id(event: Any) -> Any:
    return event.get("id") if isinstance(event, dict) else None


def import_batch(sender: Sender, batch: list[Row], summary: Summary, rejects: Rejects) -> None:
    """Send one batch and fold its results into the summary (local CSV errors are rejected unsent)."""
    sendable = [r for r in batch if r.local_error is None]
    for row in batch:
        if row.local_error is not None:
            summary.rejected["invalid_schema"] += 1
            rejects.write(row, "invalid_schema", row.local_error)
    results = sender.results(sendable) if sendable else []
    for row, result in zip(sendable, results, strict=True):
        if result["status"] == "accepted":
            summary.accepted += 1
        elif result["status"] == "duplicate":
            summary.duplicates += 1
        else:
            summary.rejected[result["error"]["code"]] += 1
            rejects.write(row, result["error"]["code"], result["error"]["detail"])
    summary.sent += len(batch)


def count_rows(path: Path, kind: str) -> int:
    if kind == "csv":
        with path.open(encoding="utf-8-sig", newline="") as text:
            return sum(1 for _ in csv.DictReader(text))
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())


def csv_columns(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as text:
        return [c for c in next(csv.reader(text), []) if c not in CSV_IGNORED]


def run_import(
    path: Path,
    *,
    url: str,
    token: str,
    batch_size: int = DEFAULT_BATCH,
    rejects_path: Path | None = None,
    file_format: str | None = None,
    console: Any = None,
) -> Summary:
    """Import a whole file with a progress bar; the summary says what became of every row."""
    kind = detect_format(path, file_format)
    summary, started = Summary(), time.perf_counter()
    rejects = Rejects(rejects_path, kind, csv_columns(path) if kind == "csv" else ())
    try:
        with path.open("rb") as raw, httpx.Client(base_url=url, timeout=120) as client:
            rows = (
                csv_rows(io.TextIOWrapper(raw, "utf-8-sig", newline=""))
                if kind == "csv"
                else ndjson_rows(raw)
            )
            sender = Sender(client, token)
            with _progress(console) as progress:
                task = progress.add_task(path.name, total=count_rows(path, kind))
                for batch in batches(rows, batch_size):
                    import_batch(sender, batch, summary, rejects)
                    summary.retries, summary.seconds = sender.retries, time.perf_counter() - started
                    progress.update(task, advance=len(batch), description=_progress_line(summary))
    except ImportAborted as stopped:
        stopped.summary = summary
        raise
    finally:
        rejects.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _progress(console: Any) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console or Console(stderr=True))


def _progress_line(summary: Summary) -> str:
    return (
        f"accepted {summary.accepted:,}  duplicates {summary.duplicates:,}  "
        f"rejected {summary.rejected_total:,}  {summary.events_per_s:,.0f} events/s"
    )


def print_summary(console: Any, summary: Summary, rejects_path: Path | None) -> None:
    from rich.table import Table

    table = Table(title="import summary", show_header=False)
    table.add_row("sent", f"{summary.sent:,}")
    table.add_row("accepted", f"{summary.accepted:,}")
    table.add_row("duplicates (already there)", f"{summary.duplicates:,}")
    table.add_row("rejected", f"{summary.rejected_total:,}")
    for code, n in summary.rejected.most_common():
        table.add_row(f"  {code}", f"{n:,}")
    table.add_row("retries", f"{summary.retries:,}")
    table.add_row("throughput", f"{summary.events_per_s:,.0f} events/s over {summary.seconds:,.1f} s")
    if rejects_path is not None and summary.rejected_total:
        table.add_row("rejects written to", str(rejects_path))
    console.print(table)
