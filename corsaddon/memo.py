"""A bounded memo: answers already worked out, kept so the hot path can look them up.

Pure: imports nothing from mitmproxy. Browsers send the same few origins, hosts and
preflights over and over, so a small dict of answers saves most of the work; it is
emptied when full, so no traffic can make it grow without bound. The one memo mechanism
of the package, with one size: a per-flow memo is kept only where it saves at least 1 µs per
flow (`python -m bench.ab`), and says so where it is made; the two used while parsing (origin
lists shared between rules) are kept for the memory and time they save at load, and say so too.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MEMO_ENTRIES = 4096  # every memo's size


class BoundedMemo(dict[K, V], Generic[K, V]):
    """A dict emptied when it reaches MEMO_ENTRIES entries; fill it with `remember`."""

    __slots__ = ()

    def remember(self, key: K, value: V) -> V:
        """Store `value` under `key` and return it."""
        if len(self) >= MEMO_ENTRIES:
            self.clear()
        self[key] = value
        return value
