"""The ``ketnap.rollups`` feed: one document per (tree, unit, month), coalesced, versions only rising.

The fold marks (tree, region, month) dirty in its own transaction (a region is a
province, or ``VN`` for counts anchored above provinces). Every
``rollup_coalesce_s`` the publisher, in ONE transaction:
1. takes dirty marks (one publisher at a time through an advisory lock; PostgreSQL
   reads them unlocked and deletes at the end those no fold touched meanwhile, `_marks`;
   SQLite deletes them at once, `_claim`);
2. rebuilds the documents of every unit of those regions and of ``VN`` for those
   months, from the committed aggregates;
3. skips documents whose content digest is unchanged, and defers (marks dirty
   again) those sent less than ``rollup_coalesce_s`` ago;
4. raises each sent key's version by one and writes the documents to the outbox.
The outbox relay publishes them (acks=all) in id order, so per key the versions
on the topic only rise. A crash before the commit leaves the marks dirty: the
documents are rebuilt later, never lost. During a national replay the interval
stretches to nine times the last round's duration, so building documents never takes
more than a tenth of the time (`DUTY`): every round rebuilds whole provinces, and at a
third the rounds took a third of the replay's PostgreSQL time (docs/performance.md).
With N replicas only one builds documents (`Leadership`): each one giving way to its own
folds for a tenth of its time, N replicas spent N tenths on the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import orjson
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting.branches import utc
from services.reporting.bulk import Row, Upsert, is_postgres, upsert
from services.reporting.fold import DIRTY
from services.reporting.metrics import DIRTY_BACKLOG, FEED_LEADER, ROLLUPS_PUBLISHED
from services.reporting.placing import NATIONAL, Placer, columns
from services.reporting.queries import in_list
from services.reporting.series import NAMES
from services.reporting.tables import UNMAPPED
from services.reporting.unitkeys import keyed
from shared.logging import get_logger
from shared.messages import RollupDocument, RollupUnit, rollup_key
from shared.orgtree import TreeVersion, Unit
from shared.outbox import OutboxMessage, enqueue
from shared.topics import ROLLUPS

log = get_logger(__name__)
FEED_LOCK: Final = zlib.crc32(b"reporting_feed")
LEADER_LOCK: Final = zlib.crc32(b"reporting_feed_leader")
CLAIM: Final = 400
DUTY: Final = 0.1
"""The largest share of the time the publisher spends building documents, when folds keep it busy."""
_CHUNK: Final = 500
_ROWS, _DOCUMENTS = 4096, 256
"""Rows and documents between two yields to the event loop (~3 ms and ~5 ms of Python): the
consumer's batches in the same process wait for the feed a few milliseconds, not a round
(a month of every document of the country is ~0.5 s of Python)."""

VERSIONS: Final = Upsert(
    "reporting_feed_versions",
    ("tree", "unit_id", "month", "version", "digest", "published_at"),
    ("text", "text", "int4", "int8", "text", "timestamptz"),
    ("tree", "unit_id", "month"),
    "version = excluded.version, digest = excluded.digest, published_at = excluded.published_at",
)

Figures = dict[str, dict[str, int]]
DocKey = tuple[TreeVersion, str, int]
"""(tree, unit_id, month key)"""


@dataclass
class Content:
    metrics: Figures
    unmapped: Figures

    def digest(self) -> str:
        body = orjson.dumps([self.metrics, self.unmapped], option=orjson.OPT_SORT_KEYS)
        return hashlib.blake2b(body, digest_size=16).hexdigest()


class Leadership:
    """Whether this replica is the one that builds the documents.

    On PostgreSQL, one replica of the group at a time: the one holding a session advisory
    lock on a connection of its own. The lock goes with the session, so a replica that stops
    or dies hands over within a coalescing period. It is only a division of labour: every
    round still takes `FEED_LOCK` in its transaction, so a replica that lost its session
    without noticing yet cannot publish beside the new leader. SQLite has one writer: always.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._session: AsyncConnection | None = None

    async def held(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            FEED_LEADER.set(1)
            return True
        if self._session is not None:
            try:
                await self._session.execute(text("SELECT 1"))
                await self._session.commit()
                return True
            except Exception as exc:  # the session is gone, and the lock with it
                log.warning("rollups feed leadership lost", error=repr(exc))
                await self._drop()
        return await self._take()

    async def _take(self) -> bool:
        session = await self.engine.connect()
        try:
            won = await session.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK})
            await session.commit()  # not idle in a transaction for the replica's lifetime
        except BaseException:
            await session.invalidate()
            raise
        if not won:
            await session.close()
            return False
        self._session = session
        FEED_LEADER.set(1)
        log.info("rollups feed: this replica builds the documents")
        return True

    async def release(self) -> None:
        """Unlock before the connection goes back to the pool (the lock would stay with it)."""
        session = self._session
        if session is None:
            FEED_LEADER.set(0)
            return
        try:
            await session.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
            await session.commit()
            await session.close()
            self._session = None
            FEED_LEADER.set(0)
        except Exception:
            await self._drop()

    async def _drop(self) -> None:
        session, self._session = self._session, None
        FEED_LEADER.set(0)
        if session is not None:
            with contextlib.suppress(Exception):
                await session.invalidate()  # closed, not pooled: the server ends the session


def month_text(key: int) -> str:
    return f"{key // 12:04d}-{key % 12 + 1:02d}"


def _month_days(key: int) -> tuple[int, int]:
    first = date(key // 12, key % 12 + 1, 1)
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first.toordinal(), after.toordinal() - 1


class RollupPublisher:
    """Builds and enqueues dirty rollup documents; `run` loops until `stop`."""

    def __init__(
        self,
        engine: AsyncEngine,
        placer: Placer,
        outbox: Table,
        *,
        coalesce_s: float,
        wake: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        """``progress``: how many batches this replica's consumer has begun and ended, so the
        publisher gives way to the folds while they run and catches up as soon as they stop."""
        self.engine, self.placer, self.outbox = engine, placer, outbox
        self.coalesce_s, self.wake, self.clock, self.progress = coalesce_s, wake, clock, progress
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._after: DocKey | None = None  # PostgreSQL: the last mark of the previous round
        self.leadership = Leadership(engine)
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="reporting-rollups-publisher")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.leadership.release()

    async def run(self) -> None:
        clock = asyncio.get_running_loop().time
        while not self._stopping.is_set():
            started = clock()
            try:
                await self.observe_backlog()
                if await self.leadership.held():
                    while await self.publish_once():
                        pass
            except Exception as exc:  # database down: the marks stay dirty, try again later
                log.warning("rollups publish failed", error=repr(exc))
            await self._rest(max(self.coalesce_s, (clock() - started) * (1 - DUTY) / DUTY, 0.05))

    async def _rest(self, pause: float) -> None:
        """``pause`` seconds, or less: at each coalescing period's end, as soon as no batch
        began, ended or was in flight during it (the replay is over: nothing left to give way
        to). Counting only the batches ended took a batch longer than a period (20,000 changes,
        ~2 s) for the replay's end, and the feed built documents half the time, not a tenth."""
        clock = asyncio.get_running_loop().time
        until = clock() + pause
        while (left := until - clock()) > 0:
            seen = self.progress()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), min(left, self.coalesce_s))
            begun, ended = self.progress()
            if self._stopping.is_set() or ((begun, ended) == seen and begun == ended):
                return
            try:
                await self.observe_backlog()
            except Exception as exc:  # database down: the gauge keeps its last value
                log.debug("rollups backlog unread", error=repr(exc))

    async def observe_backlog(self) -> None:
        """``ketnap_rollups_dirty``: the marks waiting, read while the feed rests too (it may
        give way to a replay's folds for minutes)."""
        async with self.engine.connect() as connection:
            DIRTY_BACKLOG.set(await marks_waiting(connection))

    async def publish_once(self) -> int:
        """Claim up to `CLAIM` dirty marks and enqueue their changed documents; marks claimed."""
        now = self.clock()
        async with self.engine.begin() as connection:
            postgres = is_postgres(connection)
            if postgres and not await connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FEED_LOCK}
            ):
                return 0
            seen = await _marks(connection, self._after) if postgres else await _claim(connection)
            if not seen:
                if self._after is None:
                    DIRTY_BACKLOG.set(0)
                self._after = None
                return 0
            marks = [mark[:3] for mark in seen]
            contents = await self._contents(connection, marks)
            messages, deferred = await self._versioned(connection, contents, now)
            if postgres:
                await _clear(connection, seen)
                # Marks re-marked meanwhile stay; the next round goes on after this one's, so
                # marks the folds keep touching cannot hold the others back.
                self._after = marks[-1] if len(marks) >= CLAIM else None
            await upsert(connection, DIRTY, deferred)
            await enqueue(connection, self.outbox, messages)
        ROLLUPS_PUBLISHED.inc(len(messages))
        self.published += len(messages)
        if messages:
            self.wake()
        return len(marks) if len(marks) >= CLAIM else 0

    async def _contents(self, connection: AsyncConnection, marks: Sequence[Row]) -> dict[DocKey, Content]:
        wanted: dict[tuple[TreeVersion, int], set[str]] = defaultdict(set)
        for tree, region, month in marks:
            wanted[(tree, month)] |= {NATIONAL, *self._subtree(tree, region)}
        contents: dict[DocKey, Content] = {}
        for (tree, month), unit_ids in sorted(wanted.items()):
            kept = sorted(u for u in unit_ids if self.placer.keeps_months(tree, u))
            summed = sorted(u for u in unit_ids if u not in kept)
            for unit_id in unit_ids:
                contents[(tree, unit_id, month)] = Content({}, {})
            await self._from_months(connection, tree, month, kept, contents)
            await self._from_tallies(connection, tree, month, summed, contents)
        return contents

    def _subtree(self, tree: TreeVersion, region: str) -> list[str]:
        if region == NATIONAL:
            return [NATIONAL]
        org = self.placer.trees[tree]
        found, stack = [], [region]
        while stack:
            unit_id = stack.pop()
            found.append(unit_id)
            stack.extend(c.id for c in org.children(unit_id))
        return found

    async def _from_months(
        self,
        connection: AsyncConnection,
        tree: TreeVersion,
        month: int,
        unit_ids: list[str],
        out: dict[DocKey, Content],
    ) -> None:
        statement = in_list(
            connection,
            "SELECT unit, series, part, value FROM reporting_unit_months "
            "WHERE month = :month AND unit IN :units AND value <> 0",
            kind="INTEGER",
        )
        for chunk in _chunks(connection, unit_ids):
            units = keyed(tree, chunk)
            rows = await connection.execute(statement, {"month": month, "units": list(units)})
            for i, (unit, series, part, value) in enumerate(rows):
                if not i % _ROWS:
                    await asyncio.sleep(0)
                _put(out[(tree, units[unit], month)], series, part == UNMAPPED, int(value))

    async def _from_tallies(
        self,
        connection: AsyncConnection,
        tree: TreeVersion,
        month: int,
        unit_ids: list[str],
        out: dict[DocKey, Content],
    ) -> None:
        """The month of units without monthly rows (communes of a district), summed from their
        branches' tallies, one province at a time: filtered on the branches' province, the
        plan is an index lookup per branch, where a list of communes drew a sequential scan
        of every tally (~150 ms for a province a third into the national year, against ~20)."""
        cols = columns(tree)
        first, last = _month_days(month)
        statement = text(
            f"SELECT b.{cols['anchor']}, b.{cols['mapped']}, t.series, sum(t.value) "
            "FROM reporting_branches b JOIN reporting_tallies t ON t.branch_id = b.branch_id "
            f"WHERE b.{cols['province']} = :province AND t.day BETWEEN :first AND :last "
            f"GROUP BY b.{cols['anchor']}, b.{cols['mapped']}, t.series"
        )
        by_province: dict[str, set[str]] = defaultdict(set)
        for unit_id in unit_ids:
            by_province[self.placer.region(tree, unit_id)].add(unit_id)
        for province, wanted in sorted(by_province.items()):
            params = {"province": province, "first": first, "last": last}
            rows = await connection.execute(statement, params)
            for i, (anchor, mapped, series, value) in enumerate(rows):
                if not i % _ROWS:
                    await asyncio.sleep(0)
                if anchor not in wanted:  # unmapped at the province or a district: monthly rows there
                    continue
                content = out[(tree, anchor, month)]
                _put(content, series, False, int(value))
                if not mapped:
                    _put(content, series, True, int(value))

    async def _versioned(
        self, connection: AsyncConnection, contents: dict[DocKey, Content], now: datetime
    ) -> tuple[list[OutboxMessage], list[Row]]:
        """Messages for the changed documents (new versions); dirty marks for the deferred ones."""
        held = await _held(connection, list(contents))
        messages: list[OutboxMessage] = []
        rows: list[Row] = []
        deferred: set[Row] = set()
        for i, (key, content) in enumerate(sorted(contents.items())):
            if not i % _DOCUMENTS:
                await asyncio.sleep(0)
            version, digest, sent_at = held.get(key, (0, None, None))
            fresh = content.digest()
            if fresh == digest or (digest is None and not content.metrics):
                continue
            if sent_at is not None and now - sent_at < timedelta(seconds=self.coalesce_s):
                deferred.add((key[0], self.placer.region(key[0], key[1]), key[2]))
                continue
            rows.append((*key, version + 1, fresh, now))
            messages.append(self._message(key, content, version + 1, now))
        await upsert(connection, VERSIONS, rows)
        return messages, sorted(deferred)

    def _message(self, key: DocKey, content: Content, version: int, now: datetime) -> OutboxMessage:
        tree, unit_id, month = key
        unit: Unit = self.placer.trees[tree].unit(unit_id)
        document = RollupDocument(
            tree=tree,
            unit=RollupUnit(id=unit.id, name=unit.name, level=unit.level),
            month=month_text(month),
            metrics=content.metrics,
            unmapped=content.unmapped,
            version=version,
            as_of=now,
        )
        doc_key = rollup_key(tree, unit_id, month_text(month))
        return OutboxMessage(ROLLUPS, doc_key.encode(), document.model_dump_json().encode())


def _put(content: Content, series: int, unmapped: bool, value: int) -> None:
    if not value:
        return
    metric, category = NAMES[series]
    figures = content.unmapped if unmapped else content.metrics
    bucket = figures.setdefault(metric, {})
    bucket[category] = bucket.get(category, 0) + value


def _chunks(connection: AsyncConnection, values: list[str]) -> Iterable[list[str]]:
    """The whole list at once on PostgreSQL (one array parameter: a query per chunk read
    the whole (tree, month) of ``reporting_feed_versions`` again), pieces on SQLite."""
    size = len(values) if is_postgres(connection) else _CHUNK
    for start in range(0, len(values), max(size, 1)):
        yield values[start : start + size]


async def marks_waiting(connection: AsyncConnection) -> int:
    """Dirty marks whose documents the feed has still to build."""
    return int(await connection.scalar(text("SELECT count(*) FROM reporting_dirty")) or 0)


async def _marks(connection: AsyncConnection, after: DocKey | None) -> list[Row]:
    """PostgreSQL: up to `CLAIM` dirty marks with their row version (``xmin``), read without a
    lock, so folds go on marking while the documents are built (the claim's row locks held
    every fold waiting for the whole build: seconds per batch during a national year)."""
    where = "WHERE (tree, unit_id, month) > (:t, :u, :m) " if after else ""
    rows = await connection.execute(
        text(
            f"SELECT tree, unit_id, month, xmin::text FROM reporting_dirty {where}"
            f"ORDER BY tree, unit_id, month LIMIT {CLAIM}"
        ),
        dict(zip(("t", "u", "m"), after, strict=True)) if after else {},
    )
    return [(tree, unit_id, int(month), version) for tree, unit_id, month, version in rows]


async def _clear(connection: AsyncConnection, seen: Sequence[Row]) -> None:
    """Delete the marks read by `_marks` that no fold touched since (same ``xmin``: a fold's
    mark always writes a new row version). A mark re-marked meanwhile stays dirty, so its
    new counts get their documents next round; one being re-marked by a fold in flight is
    waited for, then kept. Key order, as the folds lock them: no deadlock."""
    await connection.execute(
        text(
            "DELETE FROM reporting_dirty WHERE tree = :t AND unit_id = :u AND month = :m AND xmin::text = :x"
        ),
        [{"t": t, "u": u, "m": m, "x": x} for t, u, m, x in sorted(seen)],
    )


async def _claim(connection: AsyncConnection) -> list[Row]:
    """SQLite: take up to `CLAIM` dirty marks out of the table (they come back if the
    transaction fails; one writer, so no fold marks meanwhile)."""
    rows = [
        (tree, unit_id, int(month))
        for tree, unit_id, month in await connection.execute(
            text(f"SELECT tree, unit_id, month FROM reporting_dirty ORDER BY 1, 2, 3 LIMIT {CLAIM}")
        )
    ]
    if rows:
        await connection.execute(
            text("DELETE FROM reporting_dirty WHERE tree = :t AND unit_id = :u AND month = :m"),
            [{"t": t, "u": u, "m": m} for t, u, m in rows],
        )
    return rows


async def _held(
    connection: AsyncConnection, keys: Sequence[DocKey]
) -> dict[DocKey, tuple[int, str, datetime]]:
    found: dict[DocKey, tuple[int, str, datetime]] = {}
    by_tree_month: dict[tuple[TreeVersion, int], list[str]] = defaultdict(list)
    for tree, unit_id, month in keys:
        by_tree_month[(tree, month)].append(unit_id)
    statement = in_list(
        connection,
        "SELECT unit_id, version, digest, published_at FROM reporting_feed_versions "
        "WHERE tree = :tree AND month = :month AND unit_id IN :units",
    )
    for (tree, month), unit_ids in by_tree_month.items():
        for chunk in _chunks(connection, unit_ids):
            rows: Any = await connection.execute(statement, {"tree": tree, "month": month, "units": chunk})
            for unit_id, version, digest, sent_at in rows:
                found[(tree, unit_id, month)] = (int(version), digest, utc(sent_at))
    return found
