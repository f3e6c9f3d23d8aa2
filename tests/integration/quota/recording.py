"""A record and an aiokafka consumer stand-in for driving the consumer plumbing directly:
the tests that call ``BatchConsumer.consume`` with records in hand, no broker in between."""

from __future__ import annotations

from typing import Any

from shared.topics import CANDIDATE_EVENTS


class FakeRecord:
    def __init__(
        self, partition: int, offset: int, value: bytes = b"{}", topic: str = CANDIDATE_EVENTS
    ) -> None:
        self.topic, self.partition, self.offset, self.timestamp = topic, partition, offset, 0
        self.key, self.value, self.headers = None, value, ()


class RecordingConsumer:
    """The aiokafka consumer calls the plumbing makes, recorded."""

    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []
        self.seeks: list[tuple[Any, int]] = []

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(offsets)

    def seek(self, partition: Any, offset: int) -> None:
        self.seeks.append((partition, offset))

    def highwater(self, partition: Any) -> None:
        return None
