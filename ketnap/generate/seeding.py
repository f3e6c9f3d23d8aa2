"""Determinism: every random stream and every event id derives from the seed and a name.

A stream is named by what it serves (``("commune", "C06901")``), so the same
commune gets the same branches and candidates whatever else is generated
with it (a different ``--scale`` or ``--years`` keeps its branches and ids).
Event ids are name-based UUIDs (version 5, SHA-1) in a namespace per seed.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Final

_VARIANT: Final = {f"{i:x}": f"{8 + (i & 3):x}" for i in range(16)}
_ROOT: Final = uuid.UUID("5b1c0e9e-4a52-4d3f-9b1a-6b6574e6170a")  # the generator's own namespace


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent random stream for ``parts`` under ``seed``."""
    name = "|".join(str(p) for p in (seed, *parts)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(name).digest()[:8], "big"))


class IdMint:
    """Event ids ``uuid5(namespace(seed), "<scope>/<n>")``, byte-for-byte what ``uuid.uuid5`` gives.

    Computed without building ``UUID`` objects: this runs once per event.
    """

    __slots__ = ("_base", "_namespace")

    def __init__(self, seed: int) -> None:
        self._namespace = uuid.uuid5(_ROOT, f"ketnap-generate-{seed}").bytes
        self._base = hashlib.sha1(self._namespace)

    def __call__(self, scope: str, n: int) -> str:
        hasher = self._base.copy()
        hasher.update(f"{scope}/{n}".encode())
        h = hasher.hexdigest()
        # version 5 in the high nibble of byte 6, RFC 4122 variant in the top bits of byte 8
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"

    def reference(self, scope: str, n: int) -> uuid.UUID:
        """The same id through the standard library, for tests."""
        return uuid.uuid5(uuid.UUID(bytes=self._namespace), f"{scope}/{n}")
