"""Raw header fields, as mitmproxy keeps them (tuples of bytes pairs): rewritten in one pass; what every
module reads of a field: its list elements and whether its name is a CORS one.

Pure: imports nothing from mitmproxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import AnyStr

from .memo import BoundedMemo

Fields = tuple[tuple[bytes, bytes], ...]

# The names CORS is made of: test a lowercased name with `startswith` (faster than a slice and compare).
CORS_PREFIX = "access-control-"
CORS_PREFIX_BYTES = CORS_PREFIX.encode("ascii")
# First bytes of "Access-Control-" and "Vary", either case: the only names a rewrite looks at.
CORS_FIRST_BYTES = frozenset(b"AaVv")
# Optional white space around list elements: spaces and tabs, and the CR LF of an obs-fold (mitmproxy keeps
# a folded value's line breaks; RFC 9112 5.2: a recipient reads obs-fold as white space).
OWS = " \t\r\n"
OWS_BYTES = OWS.encode("ascii")


def list_elements(value: AnyStr) -> list[AnyStr]:
    """The elements of a comma-separated field value, str or bytes alike (RFC 9110 5.6.1): split on ",",
    white space around each stripped, empty elements dropped (`a, , b` is `a` and `b`)."""
    if isinstance(value, str):
        parts, ows = value.split(","), OWS
    else:
        parts, ows = value.split(b","), OWS_BYTES
    return [element for element in (part.strip(ows) for part in parts) if element]


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
            if name.startswith(CORS_PREFIX_BYTES):
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
            kept[first_vary] = (name, value + b", " + names if value.strip(OWS_BYTES) else names)
    return tuple(kept), removed


# Longest Vary values, together, whose answer is remembered: an API sends the same few over and over.
VARY_MEMO_BYTES = 256
# Kept: saves 1.2-2.5 µs per flow with a Vary field (paired A/B, GET with Origin and Vary: Accept-Encoding).
_MISSING_VARY: BoundedMemo[tuple[tuple[bytes, ...], tuple[str, ...]], tuple[str, ...]] = BoundedMemo()


def missing_vary(values: tuple[bytes, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    """The `names` that the Vary field values do not list yet; none when one of them is `*`."""
    if sum(map(len, values)) > VARY_MEMO_BYTES:
        return _missing_vary(values, names)
    key = (values, names)
    found = _MISSING_VARY.get(key)
    if found is None:
        found = _MISSING_VARY.remember(key, _missing_vary(values, names))
    return found


def _missing_vary(values: tuple[bytes, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    listed = {element.lower() for value in values for element in list_elements(value)}
    if b"*" in listed:
        return ()
    return tuple(n for n in names if n.lower().encode("ascii") not in listed)
