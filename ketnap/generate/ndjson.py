"""The edge of the generator: the feed written as NDJSON to a binary stream, with its tally.

The only module of the package that touches a stream; the rest is pure.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from ketnap.generate.wire import Emitted

_FLUSH_EVERY = 2048


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
