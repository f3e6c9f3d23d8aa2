"""Which partition a key goes to: the Java client's murmur2, as aiokafka's default partitioner.

Same results as ``aiokafka.partitioner.murmur2`` (a test checks it over random keys),
about three times faster: the 32-bit words are unpacked at once rather than byte by byte.
This runs for every published event.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

_M: Final = 0x5BD1E995
_SEED: Final = 0x9747B28C
_MASK: Final = 0xFFFFFFFF


@lru_cache(maxsize=64)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (unsigned 32-bit)."""
    length = len(data)
    h = _SEED ^ length
    whole = length // 4
    for k in _words(whole).unpack_from(data) if whole else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        rest = data[length - tail :]
        if tail >= 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h = ((h ^ rest[0]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of ``key`` among ``partitions`` (sorted ids), as the Java client picks it."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
