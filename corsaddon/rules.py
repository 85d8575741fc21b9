"""The rules file: parsing, validation and the compiled rule set.

Pure: imports nothing from mitmproxy. A mitmproxy filter expression is compiled
by a function the caller passes in, so this module can be tested and
benchmarked alone.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .patterns import (
    Glob,
    HostPattern,
    OriginPattern,
    PatternError,
    is_browser_origin,
    is_token,
    normalize_host,
    parse_path_pattern,
)

Predicate = Callable[[Any], bool]
FilterCompiler = Callable[[str], Predicate]

LOCAL_ORIGINS = ("http://localhost:*", "https://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")
BROWSER_MAX_AGE = 7200  # Chromium's cap; Firefox allows 86,400
MAX_FILE_BYTES = 8 * 1024 * 1024
CACHE_LIMIT = 4096  # entries in each per-rule-set and per-rule cache; cleared when full

# Keys a rule or [defaults] may set, with their defaults. Order is the README's.
POLICY_DEFAULTS: dict[str, Any] = {
    "action": "inject",
    "allow_origins": list(LOCAL_ORIGINS),
    "allow_methods": "*",
    "allow_headers": "*",
    "expose_headers": [],
    "allow_credentials": False,
    "max_age": 5,
    "preflight": "answer",
    "allow_private_network": False,
    "upstream_origin": "keep",
}
MATCH_KEYS = ("name", "enabled", "hosts", "paths", "filter")
RULE_KEYS = MATCH_KEYS + tuple(POLICY_DEFAULTS)
TOP_KEYS = ("enabled", "defaults", "rules")


class RulesError(ValueError):
    """A rules file that cannot be applied. The message is one line a user can act on."""


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One compiled `[[rules]]` entry. Everything that does not depend on the
    request is worked out here, once, at load."""

    index: int
    name: str
    enabled: bool
    hosts: tuple[HostPattern, ...]
    paths: tuple[Glob, ...]
    filter_expr: str | None
    filter: Predicate | None
    action: str
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] | None  # None: "*", reflect the requested method
    allow_headers: tuple[str, ...] | None  # None: "*", reflect the requested headers
    expose_headers: tuple[str, ...] | None  # None: "*", list the response's own headers
    allow_credentials: bool
    max_age: int
    preflight: str
    allow_private_network: bool
    upstream_origin: str  # "keep", "drop" or an origin
    # Derived at load:
    any_origin: bool = field(init=False)
    wildcard_answer: bool = field(init=False)  # answers a literal `Access-Control-Allow-Origin: *`
    allows_null: bool = field(init=False)
    exact_origins: frozenset[str] = field(init=False)
    origin_globs: tuple[OriginPattern, ...] = field(init=False)
    methods_value: str = field(init=False)
    headers_value: str = field(init=False)
    expose_value: str = field(init=False)
    max_age_value: str = field(init=False)
    # Per-request results worth remembering, by kind ("origin", "preflight", "response"):
    # browsers send the same few origins and preflights over and over. Gone with the rule at reload.
    caches: dict[str, dict[Any, Any]] | None = field(init=False)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "caches", None)  # made on first use: most of 10,000 rules never see a flow
        any_origin = "*" in self.allow_origins
        s(self, "any_origin", any_origin)
        s(self, "wildcard_answer", any_origin and not self.allow_credentials)
        s(self, "allows_null", "null" in self.allow_origins)
        exact, globs = _origin_matchers(self.allow_origins)
        s(self, "exact_origins", exact)
        s(self, "origin_globs", globs)
        s(self, "methods_value", ", ".join(self.allow_methods or ()))
        s(self, "headers_value", ", ".join(self.allow_headers or ()))
        s(self, "expose_value", ", ".join(self.expose_headers or ()))
        s(self, "max_age_value", str(self.max_age))

    def allowed_origin(self, origin: str) -> str | None:
        """The `Access-Control-Allow-Origin` value for this origin, or None when
        the rule does not allow it (`origin` is the one `Origin` header)."""
        answers = self.cache("origin")
        if origin in answers:
            return answers[origin]
        return remember(answers, origin, self._allowed_origin(origin))

    def _allowed_origin(self, origin: str) -> str | None:
        if not is_browser_origin(origin):
            return None
        if origin == "null":
            if self.allows_null:
                return "null"
            return "*" if self.wildcard_answer else None
        if self.wildcard_answer:
            return "*"
        if self.any_origin or origin in self.exact_origins:
            return origin
        for glob in self.origin_globs:
            if glob.match(origin):
                return origin
        return None

    def cache(self, kind: str) -> dict[Any, Any]:
        """This rule's answers of one kind already worked out (fill it with `remember`)."""
        caches = self.caches
        if caches is None:
            caches = {}
            object.__setattr__(self, "caches", caches)
        answers = caches.get(kind)
        if answers is None:
            answers = caches[kind] = {}
        return answers

    def matches_path(self, path: str) -> bool:
        if not self.paths:
            return True
        for glob in self.paths:
            if glob.match(path):
                return True
        return False


def remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    """Store `value` in a bounded cache (emptied when full) and return it."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


@functools.lru_cache(maxsize=1024)
def _origin_matchers(allow_origins: tuple[str, ...]) -> tuple[frozenset[str], tuple[OriginPattern, ...]]:
    """Exact origins and glob patterns of an allow_origins list; rules with the same
    list (most share [defaults]) share one copy of both."""
    patterns = [OriginPattern(o) for o in allow_origins if o not in ("*", "null")]
    return frozenset(p.pattern for p in patterns if p.is_exact), tuple(p for p in patterns if not p.is_exact)


HostKey = tuple[str, int]


class RuleSet:
    """The enabled rules of one rules file, indexed by host.

    `match` finds a flow's rule with dictionary lookups keyed by host: exact
    names, then each parent domain for `*.` patterns; it never scans all rules.
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        enabled: bool = True,
        warnings: Sequence[str] = (),
        source: str = "",
    ) -> None:
        self.rules = tuple(rules)
        self.enabled = enabled
        self.warnings = tuple(warnings)
        self.source = source
        self.active = tuple(r for r in self.rules if r.enabled) if enabled else ()
        self.hits = [0] * len(self.rules)
        self._exact: dict[str, list[Rule]] = {}
        self._exact_port: dict[HostKey, list[Rule]] = {}
        self._suffix: dict[str, list[Rule]] = {}
        self._suffix_port: dict[HostKey, list[Rule]] = {}
        self._everywhere: list[Rule] = []  # `*` hosts and filter-only rules
        self._candidates: dict[tuple, tuple[Rule, ...]] = {}
        for rule in self.active:
            if not rule.hosts:
                self._everywhere.append(rule)
            for host in rule.hosts:
                self._index(host, rule)

    def _index(self, host: HostPattern, rule: Rule) -> None:
        if host.kind == "any":
            if rule not in self._everywhere:
                self._everywhere.append(rule)
            return
        if host.kind == "exact":
            table, key = (self._exact, host.name) if host.port is None else (self._exact_port, (host.name, host.port))
        else:
            table, key = (self._suffix, host.name) if host.port is None else (self._suffix_port, (host.name, host.port))
        entries = table.setdefault(key, [])
        if not entries or entries[-1] is not rule:
            entries.append(rule)

    def __len__(self) -> int:
        return len(self.active)

    def match(self, names: Iterable[HostKey], path: str, flow: Any = None) -> Rule | None:
        """The first enabled rule, in file order, whose hosts match any of
        `names` ((host, port) pairs), whose paths match `path` (no query) and
        whose filter accepts `flow`."""
        if not self.active:
            return None
        names = tuple(names)
        candidates = self._candidates.get(names)
        if candidates is None:
            candidates = self._lookup(names)
        for rule in candidates:
            if rule.paths and not rule.matches_path(path):
                continue
            if rule.filter is not None and not rule.filter(flow):
                continue
            return rule
        return None

    def covers(self, host: str, port: int) -> bool:
        """Whether some enabled rule names this host (paths and filters aside)."""
        return bool(self.active) and bool(self._candidates.get(((host, port),)) or self._lookup(((host, port),)))

    def _lookup(self, names: tuple[HostKey, ...]) -> tuple[Rule, ...]:
        found: dict[int, Rule] = {r.index: r for r in self._everywhere}
        for host, port in names:
            host = normalize_host(host)
            for rule in self._exact.get(host, ()):
                found[rule.index] = rule
            for rule in self._exact_port.get((host, port), ()):
                found[rule.index] = rule
            parent = host
            while "." in parent:
                parent = parent.split(".", 1)[1]
                for rule in self._suffix.get(parent, ()):
                    found[rule.index] = rule
                for rule in self._suffix_port.get((parent, port), ()):
                    found[rule.index] = rule
        return remember(self._candidates, names, tuple(found[i] for i in sorted(found)))

    def summary(self) -> str:
        if not self.enabled:
            return "switched off (enabled = false); no rules in force"
        n = len(self.active)
        return f"{n} rule{'' if n == 1 else 's'} enabled" + (
            f" of {len(self.rules)}" if len(self.rules) != n else ""
        )


# ---------------------------------------------------------------------------
# Parsing


def parse_file(path: str, compile_filter: FilterCompiler) -> RuleSet | None:
    """Read and compile a rules file. None when the file is empty (the caller
    keeps the rules in force); RulesError for anything that cannot be applied;
    OSError when the file cannot be read at all."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise RulesError(f"{path}: the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RulesError(f"{path}, line {line}: the file is not UTF-8 text (byte {data[e.start]:#04x})") from None
    if not text.strip():
        return None
    return parse(text, compile_filter, source=path)


def parse(text: str, compile_filter: FilterCompiler, source: str = "rules.toml") -> RuleSet:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RulesError(f"{source}: TOML syntax error: {e}") from None
    lines = _rule_lines(text)
    warnings: list[str] = []

    def fail(where: str, message: str, index: int | None = None) -> RulesError:
        at = f", line {lines[index]}" if index is not None and index < len(lines) else ""
        return RulesError(f"{source}{at}: {where}: {message}")

    for key in doc:
        if key not in TOP_KEYS:
            raise fail("top level", _unknown(key, TOP_KEYS, hint="rule keys go under [[rules]] or [defaults]"))
    enabled = doc.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", f"expected true or false, got {_show(enabled)}")

    defaults = dict(POLICY_DEFAULTS)
    raw_defaults = doc.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise fail("defaults", "expected a table: [defaults]")
    for key, value in raw_defaults.items():
        if key not in POLICY_DEFAULTS:
            why = "only rule policy keys can have defaults" if key in MATCH_KEYS else None
            raise fail("[defaults]", why and f"{key!r} cannot be set here: {why}" or _unknown(key, POLICY_DEFAULTS))
        try:
            _check_policy(key, value)
        except ValueError as e:
            raise fail(f"[defaults] {key}", str(e)) from None
        defaults[key] = value

    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise fail("rules", "expected rule tables: write each rule under [[rules]]")

    rules: list[Rule] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_rules):
        name = raw.get("name", f"rule {i + 1}")
        label = f"rule {name!r}" if isinstance(name, str) else f"rule {i + 1}"
        try:
            rule = _compile_rule(i, raw, defaults, compile_filter, warnings, label)
        except ValueError as e:
            raise fail(label, str(e), i) from None
        if rule.name in names:
            raise fail(label, f"duplicate name {rule.name!r}: give each rule its own name", i)
        names.add(rule.name)
        rules.append(rule)
    return RuleSet(rules, enabled=enabled, warnings=warnings, source=source)


def _compile_rule(
    index: int,
    raw: dict[str, Any],
    defaults: dict[str, Any],
    compile_filter: FilterCompiler,
    warnings: list[str],
    label: str,
) -> Rule:
    for key in raw:
        if key not in RULE_KEYS:
            raise ValueError(_unknown(key, RULE_KEYS))
    name = raw.get("name", f"rule {index + 1}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name: expected a non-empty string, got {_show(name)}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled: expected true or false, got {_show(enabled)}")

    hosts_raw = raw.get("hosts", [])
    if not _is_str_list(hosts_raw):
        raise ValueError(f'hosts: expected a list of host patterns like ["api.example.com"], got {_show(hosts_raw)}')
    hosts = tuple(_keyed("hosts", HostPattern.parse, h) for h in hosts_raw)
    filter_expr = raw.get("filter")
    if filter_expr is not None and (not isinstance(filter_expr, str) or not filter_expr.strip()):
        raise ValueError(f'filter: expected a mitmproxy filter expression like "~m GET", got {_show(filter_expr)}')
    if not hosts and filter_expr is None:
        raise ValueError('needs hosts (a non-empty list, like hosts = ["api.example.com"]) or a filter')
    paths_raw = raw.get("paths", [])
    if not _is_str_list(paths_raw) or ("paths" in raw and not paths_raw):
        raise ValueError(f'paths: expected a non-empty list of path patterns like ["/v1/*"], got {_show(paths_raw)}')
    paths = tuple(_keyed("paths", parse_path_pattern, p) for p in paths_raw)
    predicate = None
    if filter_expr is not None:
        try:
            predicate = compile_filter(filter_expr)
        except ValueError as e:
            raise ValueError(f"filter: {e}") from None

    policy = dict(defaults)
    for key in POLICY_DEFAULTS:
        if key in raw:
            try:
                _check_policy(key, raw[key])
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
            policy[key] = raw[key]

    origins = _origin_list(tuple(policy["allow_origins"]))
    rule = Rule(
        index=index,
        name=name,
        enabled=enabled,
        hosts=hosts,
        paths=paths,
        filter_expr=filter_expr,
        filter=predicate,
        action=policy["action"],
        allow_origins=origins,
        allow_methods=_star_or_tuple(policy["allow_methods"]),
        allow_headers=_star_or_tuple(policy["allow_headers"]),
        expose_headers=_star_or_tuple(policy["expose_headers"]),
        allow_credentials=policy["allow_credentials"],
        max_age=policy["max_age"],
        preflight=policy["preflight"],
        allow_private_network=policy["allow_private_network"],
        upstream_origin=policy["upstream_origin"],
    )
    if enabled:
        _warn(rule, label, warnings)
    return rule


def _warn(rule: Rule, label: str, warnings: list[str]) -> None:
    if any(h.kind == "any" for h in rule.hosts):
        warnings.append(f'{label} applies to every host (hosts = ["*"])')
    if rule.action == "inject" and rule.allow_credentials and rule.any_origin:
        warnings.append(
            f'{label} lets any origin read responses with credentials (allow_origins = ["*"] '
            "and allow_credentials = true): any page you visit can read this API as you"
        )
    if rule.max_age > BROWSER_MAX_AGE:
        warnings.append(f"{label}: max_age = {rule.max_age}, but Chromium caps it at {BROWSER_MAX_AGE} s")


def _check_policy(key: str, value: Any) -> None:
    """Raise ValueError saying what `key` expects when `value` is not that."""
    if key == "action":
        _choice(value, ("inject", "strip"))
    elif key == "preflight":
        _choice(value, ("answer", "forward"))
    elif key in ("allow_credentials", "allow_private_network"):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_show(value)}")
    elif key == "max_age":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"expected a whole number of seconds >= 0, got {_show(value)}")
    elif key == "allow_origins":
        if not _is_str_list(value) or not value:
            raise ValueError(
                f'expected a non-empty list of origins like ["http://localhost:3000"], got {_show(value)} '
                "(to switch a rule off, write enabled = false)"
            )
        for origin in value:
            _origin_entry(origin)
    elif key in ("allow_methods", "allow_headers", "expose_headers"):
        what = "methods" if key == "allow_methods" else "header names"
        if value == "*":
            return
        if not _is_str_list(value):
            raise ValueError(f'expected "*" or a list of {what}, got {_show(value)}')
        for item in value:
            if not is_token(item):
                raise ValueError(f"{item!r} is not a valid HTTP {what[:-1]} (no spaces, commas or quotes)")
    elif key == "upstream_origin":
        if value in ("keep", "drop"):
            return
        if not isinstance(value, str) or not is_browser_origin(value):
            raise ValueError(
                f'expected "keep", "drop" or an origin like "https://app.example.com", got {_show(value)}'
            )


@functools.lru_cache(maxsize=1024)  # rules mostly share one list: one tuple for all of them
def _origin_list(entries: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_origin_entry(o) for o in entries)


@functools.lru_cache(maxsize=1024)  # the same few origins recur in every rule
def _origin_entry(text: str) -> str:
    if text in ("*", "null"):
        return text
    return OriginPattern.parse(text).pattern


def _keyed(key: str, parse_one: Callable[[str], Any], value: str) -> Any:
    try:
        return parse_one(value)
    except PatternError as e:
        raise ValueError(f"{key}: {e}") from None


def _choice(value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"expected {' or '.join(repr(c) for c in choices)}, got {_show(value)}")


def _star_or_tuple(value: Any) -> tuple[str, ...] | None:
    return None if value == "*" else tuple(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _unknown(key: str, known: Iterable[str], hint: str | None = None) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    message = f"unknown key {key!r}"
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    return f"{message} ({hint})" if hint else f"{message}; known keys: {', '.join(known)}"


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 60 else text[:57] + "..."


_RULE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*rules[ \t]*\]\]", re.MULTILINE)


def _rule_lines(text: str) -> list[int]:
    """1-based line of each `[[rules]]` header, so errors can point at the rule."""
    lines, line, pos = [], 1, 0
    for m in _RULE_HEADER.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        lines.append(line)
    return lines
