"""Events as the intake receives them: CloudEvents 1.0 in structured JSON mode.

``Emitted`` pairs each event with what the generator knows about it: which
province's token sends it, what the intake should answer, and whether it
still counts once everything has arrived (a voided error, the void itself, a
resubmission and a rejected event do not).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from ketnap.generate import clock

ACCEPTED: Final = "accepted"
DUPLICATE: Final = "duplicate"
NATIONAL: Final = "VN"
"""The sender of national events (targets of ``VN``): the national token."""


@dataclass(frozen=True, slots=True)
class Emitted:
    """One event of the feed.

    ``sender``: the 2025 province whose deployment sends it, or ``VN``.
    ``expect``: ``accepted``, ``duplicate`` or the intake's rejection code.
    ``counts``: whether it is part of the final tallies.
    """

    event: dict[str, Any]
    sender: str
    expect: str = ACCEPTED
    counts: bool = True

    @property
    def type(self) -> str:
        return str(self.event["type"])


def envelope(
    event_id: str, source: str, short_type: str, moment: int, data: dict[str, Any], subject: str | None = None
) -> dict[str, Any]:
    """A structured-mode CloudEvent dated at ``moment`` (local minutes, written with +07:00)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": f"vn.ketnap.{short_type}",
        "time": clock.iso(moment),
    }
    if subject is not None:
        event["subject"] = subject
    event["datacontenttype"] = "application/json"
    event["data"] = data
    return event


@cache
def deployment(province_name: str) -> str:
    """``"Tỉnh Quảng Ninh"`` -> ``"/deployments/quang-ninh"``."""
    for prefix in ("Thành phố ", "Tỉnh "):
        province_name = province_name.removeprefix(prefix)
    ascii_name = unicodedata.normalize("NFD", province_name.replace("Đ", "D").replace("đ", "d"))
    letters = "".join(c for c in ascii_name if not unicodedata.combining(c)).lower()
    return "/deployments/" + "-".join(part for part in letters.replace("-", " ").split() if part)
