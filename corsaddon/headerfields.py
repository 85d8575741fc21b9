"""Raw header fields, as mitmproxy keeps them (tuples of bytes pairs): rewritten in one pass.

Pure: imports nothing from mitmproxy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

Fields = tuple[tuple[bytes, bytes], ...]

# First bytes of "Access-Control-" and "Vary", either case: the only names a rewrite looks at.
CORS_FIRST_BYTES = frozenset(b"AaVv")


def encode(headers: Iterable[tuple[str, str]]) -> Fields:
    """Header pairs as raw fields. Every value the policy makes is ASCII: validated
    tokens and origins, or numbers."""
    return tuple((name.encode("ascii"), value.encode("ascii")) for name, value in headers)


def rewrite_fields(fields: Fields, cors: Fields, vary: Sequence[str]) -> tuple[Fields, list[str]]:
    """One pass: drop every Access-Control-* field, append to the first Vary field the
    names of `vary` that no Vary field lists yet (its own bytes stay as they are; a Vary
    field is added if there is none), append `cors`. Returns the fields and the names dropped."""
    kept: list[tuple[bytes, bytes]] = []
    removed: list[str] = []
    vary_values: list[bytes] = []
    first_vary = -1
    for field in fields:
        name = field[0]
        if name and name[0] in CORS_FIRST_BYTES:  # most names cannot be either: no need to lowercase them
            name = name.lower()
            if name[:15] == b"access-control-":
                removed.append(field[0].decode("latin-1"))
                continue
            if name == b"vary":
                if first_vary < 0:
                    first_vary = len(kept)
                vary_values.append(field[1])
        kept.append(field)
    missing = missing_vary(tuple(vary_values), tuple(vary)) if vary else ()
    kept.extend(cors)
    if missing:
        names = ", ".join(missing).encode("ascii")
        if first_vary < 0:
            kept.append((b"Vary", names))
        else:
            name, value = kept[first_vary]
            kept[first_vary] = (name, value + b", " + names if value.strip(OWS) else names)
    return tuple(kept), removed


OWS = b" \t\r\n"  # optional white space around list elements (and obs-fold line breaks)


def missing_vary(values: tuple[bytes, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    """The `names` that the Vary field values do not list yet; none when one of them is `*`."""
    if sum(map(len, values)) <= VARY_MEMO_BYTES:
        return _missing_vary_memo(values, names)  # an API sends the same few Vary values over and over
    return _missing_vary(values, names)


VARY_MEMO_BYTES = 256


def _missing_vary(values: tuple[bytes, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    listed = set()
    for value in values:
        for element in value.split(b","):
            element = element.strip(OWS).lower()
            if element == b"*":
                return ()
            listed.add(element)
    return tuple(n for n in names if n.lower().encode("ascii") not in listed)


_missing_vary_memo = functools.lru_cache(maxsize=256)(_missing_vary)
