"""When the intake runs Python's cyclic garbage collector: between requests, not inside them.

A 5,000-event request keeps a few hundred thousand young objects alive until it is
answered. An automatic collection in the middle of it scans them all: measured in the
benchmark's intake, 17 collections of 25-55 ms over 85,000 events, about 5 µs of CPU
per event, and every other request (a single event's included) stalled meanwhile.
The garbage itself is almost all freed by reference counting (a full collection after
those 85,000 events found nothing unreachable, in about 1 ms), so:

- automatic collection is off (start-up objects are frozen first, as before);
- :class:`IdleCollector` collects fully once no request is in flight and more than
  ``IDLE_MIN_YOUNG`` young objects are tracked: about a millisecond then;
- as a safety net for a load that never pauses, it also collects once
  ``BUSY_MAX_YOUNG`` young objects are tracked, whatever is in flight.

Stopping (``stop``) turns automatic collection back on: the tests run the app inside
their own process.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

IDLE_MIN_YOUNG: Final = 20_000
BUSY_MAX_YOUNG: Final = 1_000_000


class IdleCollector:
    """Counts requests in flight and runs the cyclic collector between them."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.collections = 0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        gc.disable()

    def stop(self) -> None:
        gc.enable()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around one request's work; a due collection runs just after it (its answer first)."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self._due():
                asyncio.get_running_loop().call_soon(self._collect)

    def _due(self) -> bool:
        young = gc.get_count()[0]
        return young > BUSY_MAX_YOUNG or (young > IDLE_MIN_YOUNG and self.in_flight == 0)

    def _collect(self) -> None:
        if self._due():  # a request may have started since it was scheduled
            gc.collect()
            self.collections += 1
