"""A bounded memo: answers already worked out, kept so the hot path can look them up.

Pure: imports nothing from mitmproxy. Browsers send the same few origins, hosts and
preflights over and over, so a small dict of answers saves most of the work; it is
emptied when full, so no traffic can make it grow without bound.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MEMO_ENTRIES = 4096


class BoundedMemo(dict[K, V], Generic[K, V]):
    """A dict emptied when it reaches `limit` entries; fill it with `remember`."""

    __slots__ = ("limit",)

    def __init__(self, limit: int = MEMO_ENTRIES) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: K, value: V) -> V:
        """Store `value` under `key` and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
