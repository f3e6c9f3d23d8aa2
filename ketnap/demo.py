"""``ketnap demo``: ``ketnap up``, a synthetic national feed sent over HTTP, then a summary.

Each 2025 province sends its own events with its own token (national targets
with the national dev token), in NDJSON batches of 5,000 with a few requests in
flight; ``503`` is retried after ``Retry-After``. Branches and targets go first
(every request of that phase answered) so no candidate event can overtake the
registration of its branch. Then the demo waits until the quota and reporting
consumers have drained (``ketnap_consumer_lag`` 0 and the national rollup
stable), reads the results back from the reporting API and prints the summary.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ketnap.generate import GeneratorConfig, candidate_feed, make_plan, reference_feed
from ketnap.generate.feed import estimate_events
from ketnap.generate.plan import candidate_units
from ketnap.generate.wire import ACCEPTED, NATIONAL, Emitted
from shared.orgtree import OrgTrees, load_org_trees

VN_TZ: Final = timezone(timedelta(hours=7))
BATCH_SIZE: Final = 5000
MARKER: Final = ".ketnap-demo"
DRAIN_TIMEOUT_S: Final = 300.0
STABLE_POLLS: Final = 4
DRAIN_GAUGES: Final = ("ketnap_consumer_lag", "ketnap_outbox_backlog", "ketnap_rollups_dirty")
T = TypeVar("T")
err = Console(stderr=True)
out = Console()


@dataclass
class DemoOptions:
    data_dir: Path
    kafka_port: int
    ports: dict[str, int]
    scale: float = 0.005
    first_year: int = 2020
    last_year: int = 2026
    seed: int = 1
    wait: bool = True
    concurrency: int = 3
    batch_size: int = BATCH_SIZE
    drain_timeout_s: float = DRAIN_TIMEOUT_S


# --- tokens and data dir ---------------------------------------------------------------------


def province_scopes(trees: OrgTrees) -> dict[str, list[str]]:
    """Each 2025 province's token scope: itself in the 2025 tree, the legacy provinces it absorbed.

    Every legacy province landed whole in one 2025 province (docs/orgtree.md).
    """
    scopes: dict[str, list[str]] = {p.id: [f"2025:{p.id}"] for p in trees.v2025.units("province")}
    for old_id, new_id in trees.crosswalk.items():
        entry = f"legacy:{trees.legacy.province_of(old_id)}"
        home = scopes[trees.v2025.province_of(new_id)]
        if entry not in home:
            home.append(entry)
    return scopes


def prepare_data_dir(data_dir: Path) -> None:
    """A fresh demo every time: the previous demo's databases go (the broker kept nothing either).

    Refuses a directory holding databases that a demo did not create.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / MARKER
    databases = [p for p in data_dir.iterdir() if p.name.split(".")[-1] in ("db", "db-wal", "db-shm")]
    if databases and not marker.exists():
        raise SystemExit(f"{data_dir} holds databases the demo did not create; pass another --data-dir")
    for path in databases:
        path.unlink()
    marker.write_text("created by ketnap demo; its databases are wiped by the next demo\n")


# --- sending ---------------------------------------------------------------------------------


@dataclass
class Batch:
    sender: str
    items: list[Emitted]


def batches(feed: Iterable[Emitted], size: int) -> Iterator[Batch]:
    """Consecutive events of one sender, ``size`` at most, except that a void stays with the
    event before it (a province token may only void what the intake has already seen)."""
    current = Batch("", [])
    for item in feed:
        full = len(current.items) >= size and not item.type.endswith(".voided")
        if current.items and (item.sender != current.sender or full):
            yield current
            current = Batch(item.sender, [])
        current.sender = item.sender
        current.items.append(item)
    if current.items:
        yield current


@dataclass
class FeedStats:
    """What the intake answered, against what the generator expected."""

    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    surprises: Counter[str] = field(default_factory=Counter)
    admitted_by_year: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    seconds: float = 0.0
    share: float = 0.0

    def record(self, batch: Batch, answer: dict[str, Any]) -> None:
        for item, result in zip(batch.items, answer["results"], strict=True):
            got = result["status"] if result["status"] != "rejected" else result["error"]["code"]
            self.answers[got] += 1
            if got != item.expect:
                self.surprises[f"{item.expect} -> {got}"] += 1
        self.sent += len(batch.items)

    @property
    def accepted(self) -> int:
        return self.answers[ACCEPTED]

    def unexplained(self) -> tuple[dict[str, int], int]:
        """Surprises, less the pairs explained by two copies of one id answered in the other order.

        With requests in flight side by side, a resubmission (or an ``id_conflict`` copy) may
        reach the intake before its original: then ``accepted -> duplicate`` and
        ``duplicate -> accepted`` come in equal numbers. Returns (the rest, swapped pairs).
        """
        left, swapped = Counter(self.surprises), 0
        for key in list(left):
            expected, got = key.split(" -> ")
            mirror = f"{got} -> {expected}"
            pairs = min(left[key], left[mirror])
            left[key] -= pairs
            left[mirror] -= pairs
            swapped += pairs
        return {k: v for k, v in left.items() if v > 0}, swapped

    @property
    def rejected(self) -> dict[str, int]:
        return {k: v for k, v in self.answers.most_common() if k not in (ACCEPTED, "duplicate")}


class FatalAnswer(Exception):
    """The intake refused a whole request for a reason retrying cannot fix."""


class Sender:
    """POSTs batches as NDJSON, retrying what may pass later (503, connection errors)."""

    def __init__(self, client: httpx.AsyncClient, url: str, tokens: dict[str, str], stats: FeedStats) -> None:
        self.client, self.url, self.tokens, self.stats = client, f"{url}/v1/events", tokens, stats

    async def send(self, batch: Batch, should_stop: Callable[[], bool]) -> bool:
        """True once the intake answered the batch; False if stopped first."""
        body = b"\n".join(orjson.dumps(item.event) for item in batch.items)
        headers = {
            "Authorization": f"Bearer {self.tokens[batch.sender]}",
            "Content-Type": "application/x-ndjson",
        }
        for attempt in range(200):
            if should_stop():
                return False
            wait = await self._attempt(batch, body, headers)
            if wait is None:
                return True
            self.stats.retries += 1
            await asyncio.sleep(min(wait, 10.0) if attempt < 199 else 0)
        raise FatalAnswer(f"gave up on a batch of {len(batch.items)} events after 200 attempts")

    async def _attempt(self, batch: Batch, body: bytes, headers: dict[str, str]) -> float | None:
        """None when the batch is answered; else how long to wait before the next attempt."""
        try:
            response = await self.client.post(self.url, content=body, headers=headers)
        except httpx.TransportError:
            return 1.0  # the intake may be restarting: ketnap up restarts dead services
        if response.status_code in (200, 202):
            self.stats.record(batch, response.json())
            return None
        if response.status_code == 503 or response.status_code >= 500:
            return _retry_after(response.headers.get("Retry-After"))
        raise FatalAnswer(f"intake answered {response.status_code}: {response.text[:300]}")


def _retry_after(value: str | None) -> float:
    try:
        return max(0.1, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


async def send_all(
    sender: Sender,
    feed: Iterable[Emitted],
    options: DemoOptions,
    progress: _Bar,
    should_stop: Callable[[], bool],
) -> None:
    """Send the feed with ``options.concurrency`` requests in flight, in feed order."""
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=options.concurrency * 2)

    async def worker() -> None:
        while (batch := await queue.get()) is not None:
            if await sender.send(batch, should_stop):
                progress.advance(len(batch.items), sender.stats)

    workers = [asyncio.create_task(worker()) for _ in range(options.concurrency)]
    try:
        for batch in batches(_counted(feed, sender.stats), options.batch_size):
            if should_stop():
                break
            await queue.put(batch)
            for task in workers:
                if task.done():
                    task.result()  # surface a worker's failure now
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()


def _counted(feed: Iterable[Emitted], stats: FeedStats) -> Iterator[Emitted]:
    """Keep the generator's truth: admissions that count, by year of their local date."""
    for item in feed:
        if item.counts and item.type == "vn.ketnap.candidate.admitted":
            stats.admitted_by_year[int(item.event["time"][:4])] += 1
        yield item


class _Bar:
    """A rich progress bar over the (estimated) number of events."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("feeding the intake", total=total, answers="")

    def advance(self, n: int, stats: FeedStats) -> None:
        task = self.progress.tasks[self.task]
        total = max(task.total or 0, task.completed + n)
        rejected = sum(stats.rejected.values())
        answers = (
            f"accepted {stats.accepted:,}  duplicate {stats.answers['duplicate']:,}  rejected {rejected:,}"
        )
        self.progress.update(self.task, advance=n, total=total, answers=answers)

    def finish(self) -> None:
        task = self.progress.tasks[self.task]
        self.progress.update(self.task, total=task.completed)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[answers]}"),
        TimeElapsedColumn(),
        console=err,
    )


# --- draining ---------------------------------------------------------------------------------


def metric_total(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[-1])
    return total


def metric_by_label(text: str, name: str, label: str) -> Counter[str]:
    """Sum of ``name`` per value of ``label``."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith(name + "{") and f'{label}="' in line:
            value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
            out[value] += int(float(line.rsplit(" ", 1)[-1]))
    return out


@dataclass
class Drain:
    seconds: float
    drained: bool
    lag: float
    caught_up: dict[str, float] = field(default_factory=dict)
    """Seconds until each consumer's lag (and outbox) first read 0."""


async def drain(
    client: httpx.AsyncClient,
    urls: dict[str, str],
    period: str,
    within_s: float,
    should_stop: Callable[[], bool],
) -> Drain:
    """Wait until consumer lag and outbox are 0 and the national rollup stops changing."""
    started, stable, total = time.monotonic(), 0, math.inf
    last: int | None = -1
    caught_up: dict[str, float] = {}
    with err.status("draining the consumers…") as status:
        while time.monotonic() - started < within_s and not should_stop():
            lags = {name: await _lag(client, urls[name]) for name in ("quota", "reporting")}
            for name, lag in lags.items():
                if lag == 0:
                    caught_up.setdefault(name, time.monotonic() - started)
            total = sum(lags.values())
            value = await _national_value(client, urls["reporting"], period)
            stable = stable + 1 if total == 0 and value == last else 0
            shown = ", ".join(f"{name} lag {lag:,.0f}" for name, lag in lags.items())
            status.update(f"draining: {shown}, national admissions {value}")
            if stable >= STABLE_POLLS:
                return Drain(time.monotonic() - started, True, 0, caught_up)
            last = value
            await asyncio.sleep(1.0)
    return Drain(time.monotonic() - started, False, total, caught_up)


async def _lag(client: httpx.AsyncClient, url: str) -> float:
    """Work left in one service, from its /metrics: messages behind, outgoing messages not yet
    published, rollups waiting for the publisher."""
    try:
        text = (await client.get(f"{url}/metrics")).text
    except httpx.HTTPError:
        return math.inf
    return sum(metric_total(text, name) for name in DRAIN_GAUGES)


async def _national_value(client: httpx.AsyncClient, url: str, period: str) -> int | None:
    try:
        response = await client.get(f"{url}/v1/rollups/VN", params={"period": period})
    except httpx.HTTPError:
        return None
    return int(response.json()["value"]) if response.status_code == 200 else None


# --- summary ---------------------------------------------------------------------------------


@dataclass
class YearRow:
    year: int
    tree: str
    reported: int
    generated: int
    resolution: int | None
    resolution_pct: str | None
    assigned: int | None
    assigned_pct: str | None


@dataclass
class ProvinceRow:
    id: str
    name: str
    admitted: int
    target: int
    kind: str
    attainment_pct: str


@dataclass
class Summary:
    share: float
    """Share of the country's communes in the feed."""
    events: int
    accepted: int
    duplicates: int
    rejected: dict[str, int]
    surprises: dict[str, int]
    swapped: int
    async_rejections: dict[str, int]
    feed_seconds: float
    throughput: float
    drain_seconds: float
    drained: bool
    caught_up: dict[str, float]
    total_seconds: float
    national: list[YearRow]
    province_year: int
    ahead: list[ProvinceRow]
    behind: list[ProvinceRow]
    checks: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


async def _rollup(client: httpx.AsyncClient, url: str, unit: str, **params: str) -> dict[str, Any]:
    response = await client.get(f"{url}/v1/rollups/{unit}", params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def national_rows(
    client: httpx.AsyncClient, url: str, years: range, generated: Counter[int]
) -> list[YearRow]:
    rows = []
    for year in years:
        body = await _rollup(client, url, "VN", period=str(year))
        targets = body.get("targets") or {}
        res, ass = targets.get("resolution") or {}, targets.get("assigned") or {}
        rows.append(
            YearRow(
                year,
                body["unit"]["tree"],
                int(body["value"]),
                generated[year],
                res.get("value"),
                res.get("attainment_pct"),
                ass.get("value"),
                ass.get("attainment_pct"),
            )
        )
    return rows


async def province_rows(client: httpx.AsyncClient, url: str, year: int) -> list[ProvinceRow]:
    """Every province of the tree in force at the end of ``year`` that has a target, by attainment."""
    tree = "2025" if year >= 2025 else "legacy"
    national = await _rollup(client, url, "VN", period=str(year), tree=tree)
    rows = []
    for child in national["children"]:
        body = await _rollup(client, url, child["id"], period=str(year), tree=tree)
        targets = body.get("targets") or {}
        for kind in ("assigned", "resolution"):
            target = targets.get(kind) or {}
            if target.get("attainment_pct") is not None:
                value, pct = int(body["value"]), str(target["attainment_pct"])
                rows.append(ProvinceRow(child["id"], child["name"], value, int(target["value"]), kind, pct))
                break
    return sorted(rows, key=lambda r: float(r.attainment_pct), reverse=True)


async def sum_check(client: httpx.AsyncClient, url: str, period: str, tree: str | None) -> dict[str, Any]:
    """The contract's invariant at national level: VN = sum of its provinces + unmapped."""
    params = {"period": period} | ({"tree": tree} if tree else {})
    body = await _rollup(client, url, "VN", **params)
    children = sum(int(c["value"]) for c in body["children"])
    unmapped = int(body.get("unmapped") or 0)
    value = int(body["value"])
    return {
        "period": period,
        "tree": body["unit"]["tree"],
        "national": value,
        "provinces": children,
        "unmapped": unmapped,
        "ok": value == children + unmapped,
    }


async def async_rejections(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, int]:
    """Events the consumers rejected after the intake accepted them, by code (from /metrics)."""
    total: Counter[str] = Counter()
    for name in ("quota", "reporting"):
        try:
            text = (await client.get(f"{urls[name]}/metrics")).text
        except httpx.HTTPError:
            continue
        total += metric_by_label(text, "ketnap_rejections_total", "code")
    return dict(total.most_common())


def latest_full_year(first: int, last: int, now: datetime) -> int:
    return max(first, min(last, now.astimezone(VN_TZ).year - 1))


def print_summary(summary: Summary, urls: dict[str, str], token: str) -> None:
    out.rule("[bold]ketnap demo: summary")
    feed = Table(title="Feed", show_header=False)
    feed.add_row("events sent", f"{summary.events:,}")
    feed.add_row("accepted", f"{summary.accepted:,}")
    feed.add_row("duplicates (resubmissions)", f"{summary.duplicates:,}")
    for code, n in summary.rejected.items():
        feed.add_row(f"rejected {code}", f"{n:,}")
    for code, n in summary.async_rejections.items():
        feed.add_row(f"rejected later by a consumer: {code}", f"{n:,}")
    feed.add_row("throughput", f"{summary.throughput:,.0f} events/s over {summary.feed_seconds:.1f} s")
    state = "drained" if summary.drained else "NOT drained (timeout)"
    each = ", ".join(f"{name} at {s:.1f} s" for name, s in summary.caught_up.items())
    feed.add_row("lag", f"{state} in {summary.drain_seconds:.1f} s after the feed ({each})")
    feed.add_row("total time", f"{summary.total_seconds:.1f} s")
    if summary.surprises:
        feed.add_row("answers not as expected", ", ".join(f"{k}: {v}" for k, v in summary.surprises.items()))
    if summary.swapped:
        feed.add_row("copies of one id answered in the other order", f"{summary.swapped:,}")
    out.print(feed)
    out.print(_national_table(summary))
    out.print(_provinces_table(summary))
    for check in summary.checks:
        mark = "[green]ok[/]" if check["ok"] else "[red]MISMATCH[/]"
        out.print(
            f"check {check['period']} ({check['tree']} tree): VN {check['national']:,} = provinces "
            f"{check['provinces']:,} + unmapped {check['unmapped']:,}  {mark}"
        )
    for note in summary.notes:
        out.print(f"[yellow]not shown: {note}[/]")
    _print_urls(urls, token, summary)


def _national_table(summary: Summary) -> Table:
    title = "National admissions (kết nạp) per year (reporting GET /v1/rollups/VN?period=YYYY)"
    table = Table(title=title, caption=f"the feed covers {summary.share:.2%} of the communes")
    columns = ["year", "tree", "reported", "generated", "resolution target", "attained", "≈ whole country"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in summary.national:
        country = f"{row.reported / summary.share:,.0f}" if summary.share else "-"
        table.add_row(
            str(row.year),
            row.tree,
            f"{row.reported:,}",
            f"{row.generated:,}",
            _num(row.resolution),
            _pct(row.resolution_pct),
            country,
        )
    return table


def _provinces_table(summary: Summary) -> Table:
    title = f"Provinces furthest ahead and behind in {summary.province_year} (attainment of their target)"
    table = Table(title=title)
    for column in ("", "province", "admitted", "target", "kind", "attained"):
        table.add_column(column)
    for label, rows in (("ahead", summary.ahead), ("behind", summary.behind)):
        for row in rows:
            table.add_row(
                label,
                f"{row.id} {row.name}",
                f"{row.admitted:,}",
                f"{row.target:,}",
                row.kind,
                f"{row.attainment_pct}%",
            )
    return table


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _pct(value: str | None) -> str:
    return "-" if value is None else f"{value}%"


def _print_urls(urls: dict[str, str], token: str, summary: Summary) -> None:
    province = summary.ahead[0].id if summary.ahead else "P22"
    year = summary.province_year
    auth = f'-H "Authorization: Bearer {token}"'
    out.rule("[bold]explore")
    for name, url in urls.items():
        out.print(f"{name:<10} {url}   (OpenAPI docs {url}/docs, metrics {url}/metrics)")
    out.print(f"dev token  {token}  (national; reading is open in the demo, the header is harmless)")
    reporting, quota = urls["reporting"], urls["quota"]
    export = f"{reporting}/v1/export?unit_id={province}&period={year}&format=xlsx"
    for line in (
        f'curl -s {auth} "{reporting}/v1/rollups/VN?period={year}"',
        f'curl -s {auth} "{reporting}/v1/rollups/{province}?period={year}&tree=2025"',
        f'curl -s {auth} "{reporting}/v1/rollups/VN?period=2024&tree=2025"   # 2024 in 2025 units',
        f'curl -s {auth} "{reporting}/v1/lagging?unit_id={province}&years=3"',
        f'curl -s {auth} "{quota}/v1/rejections?limit=5"',
        f'curl -s {auth} "{quota}/v1/due?unit_id={province}&within_days=30"',
        f'curl -s {auth} -o {province}.xlsx "{export}"',
    ):
        out.print(line, soft_wrap=True, highlight=False)


# --- the whole run ------------------------------------------------------------------------------


async def feed_and_summarise(
    options: DemoOptions,
    urls: dict[str, str],
    tokens: dict[str, str],
    should_stop: Callable[[], bool],
    started: float,
) -> Summary | None:
    """Send the feed, wait for the consumers, read the results back; None if stopped midway."""
    feed_started = time.monotonic()
    now = datetime.now(VN_TZ)
    config = GeneratorConfig(now, options.seed, options.scale, options.first_year, options.last_year)
    trees = load_org_trees()
    plan = make_plan(trees, config.seed, config.scale)
    stats = FeedStats(share=len(plan) / len(candidate_units(trees)))
    years = f"{options.first_year}-{options.last_year}"
    where = f"{len(plan):,} communes in {len(plan.groups)} provinces"
    err.print(f"[bold]feed[/] {where}, {years}, seed {options.seed}, scale {options.scale}")
    limits = httpx.Limits(max_connections=options.concurrency + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0), limits=limits) as client:
        sender = Sender(client, urls["intake"], tokens, stats)
        with progress_bar() as progress:
            bar = _Bar(progress, estimate_events(config, plan))
            await send_all(sender, reference_feed(config, plan), options, bar, should_stop)
            await send_all(sender, candidate_feed(config, plan), options, bar, should_stop)
            bar.finish()
        stats.seconds = time.monotonic() - feed_started
        if should_stop():
            return None
        period = f"{options.first_year}..{options.last_year}"
        drained = await drain(client, urls, period, options.drain_timeout_s, should_stop)
        return await _summarise(client, urls, options, stats, drained, started)


async def _summarise(
    client: httpx.AsyncClient,
    urls: dict[str, str],
    options: DemoOptions,
    stats: FeedStats,
    drained: Drain,
    started: float,
) -> Summary:
    reporting, notes = urls["reporting"], list[str]()
    years = range(options.first_year, options.last_year + 1)
    year = latest_full_year(options.first_year, options.last_year, datetime.now(VN_TZ))
    period = f"{options.first_year}..{options.last_year}"
    national = await _tolerant(national_rows(client, reporting, years, stats.admitted_by_year), notes)
    provinces = await _tolerant(province_rows(client, reporting, year), notes)
    checks = [
        await _tolerant(sum_check(client, reporting, period, None), notes),
        await _tolerant(sum_check(client, reporting, str(year), "2025"), notes),
    ]
    ahead, behind = split_ends(provinces or [])
    return Summary(
        share=stats.share,
        events=stats.sent,
        accepted=stats.accepted,
        duplicates=stats.answers["duplicate"],
        rejected=stats.rejected,
        surprises=stats.unexplained()[0],
        swapped=stats.unexplained()[1],
        async_rejections=await async_rejections(client, urls),
        feed_seconds=stats.seconds,
        throughput=stats.sent / stats.seconds if stats.seconds else 0.0,
        drain_seconds=drained.seconds,
        drained=drained.drained,
        caught_up=drained.caught_up,
        total_seconds=time.monotonic() - started,
        national=national or [],
        province_year=year,
        ahead=ahead,
        behind=behind,
        checks=[c for c in checks if c is not None],
        notes=notes,
    )


async def _tolerant(call: Awaitable[T], notes: list[str]) -> T | None:
    """The answer, or None with a note: a summary shows what it can get."""
    try:
        return await call
    except (httpx.HTTPError, KeyError, ValueError) as failed:
        notes.append(f"{type(failed).__name__}: {failed}")
        return None


def split_ends(rows: list[ProvinceRow], n: int = 5) -> tuple[list[ProvinceRow], list[ProvinceRow]]:
    """The ``n`` first (furthest ahead) and ``n`` last (furthest behind, worst first), never overlapping."""
    ahead = rows[: min(n, (len(rows) + 1) // 2)]
    behind = rows[len(ahead) :][-n:][::-1]
    return ahead, behind


def run_demo(options: DemoOptions) -> int:
    """Start the system, feed it, summarise; keep it running until Ctrl-C unless ``wait`` is off."""
    from ketnap.up import System

    started = time.monotonic()
    prepare_data_dir(options.data_dir)
    scopes = province_scopes(load_org_trees())
    tokens = {p: f"demo-{p}-{secrets.token_urlsafe(16)}" for p in scopes}
    system = System(options.data_dir, options.kafka_port, dict(options.ports))
    system.extra_tokens = {tokens[p]: scopes[p] for p in scopes}
    try:
        system.start()
        if not system.wait_ready():
            err.print("[red]services did not become ready; see the logs in the data dir[/]")
            return 1
        system.print_urls()
        urls = {child.name: child.url for child in system.children}
        summary = asyncio.run(
            _with_supervision(system, options, urls, {**tokens, NATIONAL: system.token}, started)
        )
        if summary is None:
            return 130
        print_summary(summary, urls, system.token)
        (options.data_dir / "demo-summary.json").write_text(
            json.dumps(asdict(summary), indent=2, ensure_ascii=False)
        )
        if options.wait and not system.stopping:
            err.print("the system keeps running; Ctrl-C stops everything")
            system.supervise()
        return 0
    finally:
        system.stop()
        err.print("stopped")


async def _with_supervision(
    system: Any, options: DemoOptions, urls: dict[str, str], tokens: dict[str, str], started: float
) -> Summary | None:
    """The feed, with the dead-child restarts of ``ketnap up`` running beside it."""

    async def supervise() -> None:
        while not system.stopping:
            system.restart_dead()
            await asyncio.sleep(0.5)

    watchdog = asyncio.create_task(supervise())
    try:
        stop = lambda: bool(system.stopping)  # noqa: E731
        return await feed_and_summarise(options, urls, tokens, stop, started)
    finally:
        watchdog.cancel()
