"""The edge of the generator: the feed written as NDJSON to a binary stream, with its tally.

The only module of the package that touches streams, files and processes; the
rest is pure. With ``jobs > 1`` the candidate events of each 2025 province are
generated in worker processes into temporary files, then copied in order: the
output is byte for byte the one a single process writes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from ketnap.generate.config import GeneratorConfig
from ketnap.generate.feed import candidate_feed, group_candidates, reference_feed
from ketnap.generate.plan import Plan, make_plan
from ketnap.generate.wire import Emitted
from shared.orgtree import load_org_trees

_FLUSH_EVERY = 2048
_PARALLEL_FROM_SITES = 500  # below ~5% of the country, starting processes costs more than it saves


@dataclass
class Written:
    """What went out: events by expected answer and by type, and how fast."""

    events: int = 0
    expect: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def add(self, other: Written) -> None:
        self.events += other.events
        self.expect += other.expect
        self.types += other.types


def write_ndjson(feed: Iterable[Emitted], out: BinaryIO) -> Written:
    """One compact JSON event per line; the stream is flushed, never closed."""
    written, lines = Written(), []
    started = time.perf_counter()
    for item in feed:
        lines.append(orjson.dumps(item.event))
        written.expect[item.expect] += 1
        written.types[item.type.removeprefix("vn.ketnap.")] += 1
        if len(lines) >= _FLUSH_EVERY:
            out.write(b"\n".join(lines) + b"\n")
            written.events += len(lines)
            lines = []
    if lines:
        out.write(b"\n".join(lines) + b"\n")
        written.events += len(lines)
    out.flush()
    written.seconds = time.perf_counter() - started
    return written


def write_feed(config: GeneratorConfig, out: BinaryIO, jobs: int = 1) -> Written:
    """The whole feed (``generate``'s order), with candidate events made by ``jobs`` processes."""
    started = time.perf_counter()
    plan = make_plan(load_org_trees(), config.seed, config.scale)
    written = write_ndjson(reference_feed(config, plan), out)
    if jobs <= 1 or len(plan) < _PARALLEL_FROM_SITES:
        written.add(write_ndjson(candidate_feed(config, plan), out))
    else:
        written.add(_write_in_parallel(config, plan, out, jobs))
    written.seconds = time.perf_counter() - started
    return written


def _write_in_parallel(config: GeneratorConfig, plan: Plan, out: BinaryIO, jobs: int) -> Written:
    written = Written()
    with tempfile.TemporaryDirectory(prefix="ketnap-generate-") as tmp, ProcessPoolExecutor(jobs) as pool:
        paths = [Path(tmp) / f"{i:02d}.ndjson" for i in range(len(plan.groups))]
        futures = [pool.submit(_write_group, config, i, str(path)) for i, path in enumerate(paths)]
        for future, path in zip(futures, paths, strict=True):
            written.add(future.result())
            with path.open("rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
            path.unlink()
    out.flush()
    return written


def _write_group(config: GeneratorConfig, index: int, path: str) -> Written:
    """In a worker: one 2025 province's candidate events to ``path``."""
    plan = make_plan(load_org_trees(), config.seed, config.scale)
    with open(path, "wb") as part:
        return write_ndjson(group_candidates(config, plan, index), part)
