"""Which partition a key goes to: the Java client's murmur2, as aiokafka's default partitioner.

Same results as ``aiokafka.partitioner.murmur2`` (a test checks it over random keys),
about three times faster: the 32-bit words are unpacked at once rather than byte by byte.
This runs for every published event: a big request hashes its keys together
(:func:`murmur2_many`, numpy over the keys of each length, ~0.1 µs a key rather than ~1.5).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import numpy as np

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


_VECTOR_MIN: Final = 64  # below this, numpy's fixed cost outweighs the loop


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """``[murmur2(k) for k in keys]``, vectorised over the keys of each length for big lists."""
    if len(keys) < _VECTOR_MIN:
        return [murmur2(k) for k in keys]
    by_length: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(index)
    hashes = [0] * len(keys)
    for length, indexes in by_length.items():
        same = b"".join([keys[i] for i in indexes])
        for i, h in zip(indexes, _murmur2_same_length(same, len(indexes), length).tolist(), strict=True):
            hashes[i] = h
    return hashes


def _murmur2_same_length(joined: bytes, count: int, length: int) -> np.ndarray:
    """murmur2 of ``count`` keys of ``length`` bytes each, concatenated; uint32 arithmetic wraps."""
    m = np.uint32(_M)
    rows = np.frombuffer(joined, dtype=np.uint8).reshape(count, length)
    h = np.full(count, _SEED ^ length, dtype=np.uint32)
    whole = length // 4
    if whole:
        words = np.ascontiguousarray(rows[:, : whole * 4]).view("<u4").astype(np.uint32)
        for column in range(whole):
            k = words[:, column] * m
            k ^= k >> np.uint32(24)
            k *= m
            h *= m
            h ^= k
    tail = length & 3
    if tail:
        rest = rows[:, whole * 4 :].astype(np.uint32)
        if tail >= 3:
            h ^= rest[:, 2] << np.uint32(16)
        if tail >= 2:
            h ^= rest[:, 1] << np.uint32(8)
        h ^= rest[:, 0]
        h *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    return h


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of ``key`` among ``partitions`` (sorted ids), as the Java client picks it."""
    return partition_of(murmur2(key), partitions)


def partition_of(hashed: int, partitions: Sequence[int]) -> int:
    """The partition of a key whose murmur2 is ``hashed``, among ``partitions`` (sorted ids)."""
    return partitions[(hashed & 0x7FFFFFFF) % len(partitions)]
