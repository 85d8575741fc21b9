"""Quoting what came from the network or the rules file in a log line or message.

Pure: imports nothing from mitmproxy. Such a value may be a megabyte long; a message
shows at most a short prefix of it, so no input can make a log line large.
"""

from __future__ import annotations

from typing import Any

QUOTE_LIMIT = 100  # characters of a value shown in a message


def quote(value: Any) -> str:
    """`repr(value)` (`true`/`false` for booleans, as TOML writes them), cut to QUOTE_LIMIT characters and `…`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, bytes)) and len(value) > QUOTE_LIMIT:
        return repr(value[:QUOTE_LIMIT])[:QUOTE_LIMIT] + "…"
    return clip(repr(value))


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` as it is, or its first `limit` characters and `…`."""
    return text if len(text) <= limit else text[:limit] + "…"


def printable(text: str) -> str:
    """`text` with control characters and undecodable bytes (surrogates) written as escapes: safe in a
    terminal, a UTF-8 file and a saved flow."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
