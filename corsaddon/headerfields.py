"""Raw header fields, as mitmproxy keeps them (tuples of bytes pairs): rewritten in one pass.

Pure: imports nothing from mitmproxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Fields = tuple[tuple[bytes, bytes], ...]


def encode(headers: Iterable[tuple[str, str]]) -> Fields:
    """Header pairs as raw fields. Every value the policy makes is ASCII: validated
    tokens and origins, or numbers."""
    return tuple((name.encode("ascii"), value.encode("ascii")) for name, value in headers)


def rewrite_fields(fields: Fields, cors: Fields, vary: Sequence[str]) -> tuple[Fields, list[str]]:
    """One pass: drop every Access-Control-* field, merge `vary` into the first Vary
    field (dropping later ones), append `cors`. Returns the fields and the names dropped."""
    kept: list[tuple[bytes, bytes]] = []
    removed: list[str] = []
    vary_values: list[str] = []
    vary_at: list[int] = []
    for field in fields:
        name = field[0].lower()
        if name[:15] == b"access-control-":
            removed.append(field[0].decode("latin-1"))
            continue
        if name == b"vary":
            vary_at.append(len(kept))
            vary_values.append(field[1].decode("latin-1"))
        kept.append(field)
    merged = merge_vary(vary_values, vary) if vary else None
    if merged is not None and vary_at:
        kept[vary_at[0]] = (kept[vary_at[0]][0], merged.encode("latin-1"))
        if len(vary_at) > 1:
            later = set(vary_at[1:])
            kept = [f for i, f in enumerate(kept) if i not in later]
    kept.extend(cors)
    if merged is not None and not vary_at:
        kept.append((b"Vary", merged.encode("latin-1")))
    return tuple(kept), removed


def merge_vary(values: Sequence[str], names: Sequence[str]) -> str | None:
    """The combined Vary value with `names` added to the existing `values`, or
    None when nothing needs to change (all present, or `Vary: *`)."""
    existing = [v.strip() for value in values for v in value.split(",") if v.strip()]
    lowered = {v.lower() for v in existing}
    if "*" in lowered:
        return None
    missing = [n for n in names if n.lower() not in lowered]
    if not missing:
        return None
    return ", ".join(existing + missing)
