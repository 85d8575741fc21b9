"""The rule schema: each key a rule may set, once, with what it accepts, its default and its meaning.

Pure: imports nothing from mitmproxy. Validation, defaults, the keyword arguments
of `Rule` and the test of the rules reference (docs/rules.md) all derive from
`KEYS`: adding a key is one entry here and one field on `Rule`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from .memo import BoundedMemo
from .patterns import Glob, HostPattern, OriginPattern, PatternError, is_browser_origin, is_token, parse_path_pattern
from .quote import quote

LOCAL_ORIGINS = ("http://localhost:*", "https://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")


class Action(StrEnum):
    INJECT = "inject"
    STRIP = "strip"
    OBSERVE = "observe"


class Preflight(StrEnum):
    ANSWER = "answer"
    FORWARD = "forward"


class Cookies(StrEnum):
    KEEP = "keep"
    SAME_SITE = "same-site"
    CROSS_SITE = "cross-site"


class OriginMode(Enum):
    KEEP = "keep"
    DROP = "drop"
    REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class UpstreamOrigin:
    """What a rule does to the `Origin` of the requests it lets through to the API."""

    mode: OriginMode
    origin: str = ""  # the origin sent instead, for REPLACE


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a `[[rules]]` table."""

    name: str
    default: Any  # as written in TOML; None: the key has no value unless set
    doc: str  # one line, for the reference
    compile: Callable[[Any], Any]  # TOML value -> the Rule's value; ValueError saying what is expected
    policy: bool = True  # may be set in [defaults] (False for the keys that say which requests a rule matches)
    default_text: str | None = None  # how the reference shows a default that is not a TOML value

    @property
    def shown_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        return json.dumps(self.default)  # a TOML value for the str, bool, int and list defaults used here


def is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {quote(value)}")
    return value


def _choice(enum: type[StrEnum]) -> Callable[[Any], Any]:
    def compile(value: Any) -> Any:
        try:
            return enum(value)
        except (ValueError, TypeError):
            *others, last = (repr(m.value) for m in enum)
            raise ValueError(f"expected {', '.join(others)} or {last}, got {quote(value)}") from None

    return compile


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {quote(value)}")
    return value


def _each(value: Any, parse_one: Callable[[str], Any]) -> tuple[Any, ...]:
    try:
        return tuple(parse_one(v) for v in value)
    except PatternError as e:
        raise ValueError(str(e)) from None


def _hosts(value: Any) -> tuple[HostPattern, ...]:
    if not is_str_list(value):
        raise ValueError(f'expected a list of host patterns like ["api.example.com"], got {quote(value)}')
    return _each(value, HostPattern.parse)


def _paths(value: Any) -> tuple[Glob, ...]:
    if not is_str_list(value) or not value:
        raise ValueError(f'expected a non-empty list of path patterns like ["/v1/*"], got {quote(value)}')
    return _each(value, parse_path_pattern)


def _filter(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'expected a mitmproxy filter expression like "~m GET", got {quote(value)}')
    return value


def _origins(value: Any) -> tuple[str, ...]:
    if not is_str_list(value) or not value:
        raise ValueError(
            f'expected a non-empty list of origins like ["http://localhost:3000"], got {quote(value)} '
            "(to switch a rule off, write enabled = false)"
        )
    return _origin_list(tuple(value))


# At load only: rules often repeat one allow_origins list; each list is parsed once and its tuple shared.
# 10,000 rules that each write the same three origins: a 7.3 MB rule set, not 9.8 MB, parsed 15-25% faster.
_ORIGIN_LISTS: BoundedMemo[tuple[str, ...], tuple[str, ...]] = BoundedMemo()


def _origin_list(entries: tuple[str, ...]) -> tuple[str, ...]:
    found = _ORIGIN_LISTS.get(entries)
    if found is None:
        found = _ORIGIN_LISTS.remember(entries, _each(entries, _origin_entry))
    return found


def _origin_entry(text: str) -> str:
    if text in ("*", "null"):
        return text
    return OriginPattern.parse(text).pattern


def _tokens(what: str) -> Callable[[Any], tuple[str, ...] | None]:
    def compile(value: Any) -> tuple[str, ...] | None:
        if value == "*":
            return None  # None: "*", worked out per request
        if not is_str_list(value):
            raise ValueError(f'expected "*" or a list of {what}s, got {quote(value)}')
        for item in value:
            if not is_token(item):
                raise ValueError(f"{quote(item)} is not a valid HTTP {what} (no spaces, commas or quotes)")
        return tuple(value)

    return compile


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number of seconds >= 0, got {quote(value)}")
    return value


def _upstream_origin(value: Any) -> UpstreamOrigin:
    if value == "keep":
        return UpstreamOrigin(OriginMode.KEEP)
    if value == "drop":
        return UpstreamOrigin(OriginMode.DROP)
    if isinstance(value, str) and is_browser_origin(value):
        return UpstreamOrigin(OriginMode.REPLACE, value)
    raise ValueError(f'expected "keep", "drop" or an origin like "https://app.example.com", got {quote(value)}')


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("name", None, "shown in logs, comments and cors.status; unique (N: the rule's position, from 1)",
            _name, policy=False, default_text='"rule N"'),
        Key("enabled", True, "false skips the rule", _boolean, policy=False),
        Key("hosts", [], "host patterns the rule applies to; it needs hosts or a filter", _hosts, policy=False),
        Key("paths", None, "path globs, without the query; default every path", _paths, policy=False,
            default_text="every path"),
        Key("filter", None, "a mitmproxy filter expression, ANDed with hosts and paths", _filter, policy=False,
            default_text="none"),
        Key("action", "inject", '"inject" CORS headers, "strip" them all, or "observe" (change nothing)',
            _choice(Action)),
        Key("allow_origins", list(LOCAL_ORIGINS), "origins whose pages may read the API", _origins),
        Key("allow_methods", "*", '"*" (the requested method) or a list of methods', _tokens("method")),
        Key("allow_headers", "*", '"*" (the requested headers) or a list of header names', _tokens("header name")),
        Key("expose_headers", [], 'response headers scripts may read: a list, or "*" for all', _tokens("header name")),
        Key("allow_credentials", False, "let requests with credentials (cookies) read responses", _boolean),
        Key("max_age", 5, "seconds a browser may cache a preflight answer", _seconds),
        Key("preflight", "answer", '"answer" preflights in the proxy, or "forward" them to the API',
            _choice(Preflight)),
        Key("allow_private_network", False, "answer Chrome's private network preflights", _boolean),
        Key("upstream_origin", "keep", '"keep", "drop", or an origin to send to the API instead', _upstream_origin),
        Key("upstream_tls_verify", True, "false accepts any certificate from this rule's hosts (self-signed APIs)",
            _boolean),
        Key("cookies", "keep", '"keep" Set-Cookie, or rewrite it for "same-site" or "cross-site" use',
            _choice(Cookies)),
    )
}  # fmt: skip
POLICY_KEYS = tuple(name for name, key in KEYS.items() if key.policy)
MATCH_KEYS = tuple(name for name, key in KEYS.items() if not key.policy)
