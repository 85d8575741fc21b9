"""The compiled rules: `Rule`, one `[[rules]]` entry worked out at load, and `RuleSet`,
the rules of one file indexed by host. (`parsing` makes them from the file.)

Pure: imports nothing from mitmproxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .memo import BoundedMemo
from .patterns import (
    MAX_HOST,
    MAX_ORIGIN,
    Glob,
    HostKind,
    HostPattern,
    OriginPattern,
    is_browser_origin,
    normalize_host,
)
from .quote import quote
from .schema import LOCAL_ORIGINS, POLICY_KEYS, Action, Cookies, Preflight, UpstreamOrigin

Predicate = Callable[[Any], bool]


class FilterFailed(Exception):
    """A rule's filter raised while it was evaluated on a flow."""

    def __init__(self, rule: Rule, error: BaseException) -> None:
        super().__init__(f"rule {rule.label}: its filter failed on this flow ({type(error).__name__})")
        self.rule = rule


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One compiled `[[rules]]` entry. Everything that does not depend on the
    request is worked out here, once, at load. The fields from `action` on are
    the policy keys of `schema.KEYS`, by the same names."""

    index: int
    name: str
    enabled: bool
    hosts: tuple[HostPattern, ...]
    paths: tuple[Glob, ...]
    filter_expr: str | None
    filter: Predicate | None
    action: Action
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] | None  # None: "*", reflect the requested method
    allow_headers: tuple[str, ...] | None  # None: "*", reflect the requested headers
    expose_headers: tuple[str, ...] | None  # None: "*", list the response's own headers
    allow_credentials: bool
    max_age: int
    preflight: Preflight
    allow_private_network: bool
    upstream_origin: UpstreamOrigin
    upstream_tls_verify: bool
    cookies: Cookies
    # Derived at load:
    label: str = field(init=False)  # the name, quoted for messages (short, whatever its length)
    any_origin: bool = field(init=False)
    wildcard_answer: bool = field(init=False)  # answers a literal `Access-Control-Allow-Origin: *`
    allows_null: bool = field(init=False)
    exact_origins: frozenset[str] = field(init=False)
    origin_globs: tuple[OriginPattern, ...] = field(init=False)
    methods_value: str = field(init=False)
    headers_value: str = field(init=False)
    expose_value: str = field(init=False)
    max_age_value: str = field(init=False)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "label", quote(self.name))
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

    @property
    def admits_every_origin(self) -> bool:
        """`"*"`, or a glob such as `https://*` that no host name narrows."""
        return self.any_origin or any(glob.admits_any_host for glob in self.origin_globs)

    def matches_path(self, path: str) -> bool:
        if not self.paths:
            return True
        for glob in self.paths:
            if glob.match(path):
                return True
        return False


# Every policy key is a Rule field of the same name: `Rule(**compiled)` relies on it.
assert set(POLICY_KEYS) <= {f.name for f in fields(Rule)}, "a schema key without a Rule field"


Matchers = tuple[frozenset[str], tuple[OriginPattern, ...]]
# At load only: rules with the same allow_origins list (most share [defaults]) share one copy of its matchers.
# 10,000 rules on the default list: a 7.3 MB rule set, not 33 MB, parsed in half the time.
_MATCHERS: BoundedMemo[tuple[str, ...], Matchers] = BoundedMemo()


def _origin_matchers(allow_origins: tuple[str, ...]) -> Matchers:
    """Exact origins and glob patterns of an allow_origins list."""
    found = _MATCHERS.get(allow_origins)
    if found is None:
        patterns = [OriginPattern(o) for o in allow_origins if o not in ("*", "null")]
        exact = frozenset(p.pattern for p in patterns if p.is_exact)
        found = _MATCHERS.remember(allow_origins, (exact, tuple(p for p in patterns if not p.is_exact)))
    return found


class OriginList:
    """An `allow_origins` list, to ask whether it admits a page's origin (`[defaults]`' list tells
    discovery which pages are the user's own)."""

    __slots__ = ("any", "null", "exact", "globs", "answers")

    def __init__(self, origins: Sequence[str]) -> None:
        self.any = "*" in origins
        self.null = "null" in origins
        self.exact, self.globs = _origin_matchers(tuple(origins))
        # Asked for every request with Origin that no rule matches: another site's origin costs a regex
        # and the globs unless remembered (paired A/B, unmatched with Origin: saves 4-7 µs per flow).
        self.answers: BoundedMemo[str, bool] = BoundedMemo()

    def admits(self, origin: str) -> bool:
        answer = self.answers.get(origin)
        if answer is None:
            answer = self._admits(origin)
            if len(origin) <= MAX_ORIGIN:
                self.answers.remember(origin, answer)
        return answer

    def _admits(self, origin: str) -> bool:
        if origin == "null":
            return self.null
        if not is_browser_origin(origin):
            return False
        return self.any or origin in self.exact or any(glob.match(origin) for glob in self.globs)


HostKey = tuple[str, int]


class RuleSet:
    """The rules of one rules file; `active` holds those in force, indexed by host.

    `match` finds a flow's rule with dictionary lookups keyed by host: exact
    names, then each parent domain for `*.` patterns; it never scans all rules.
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        enabled: bool = True,
        warnings: Sequence[str] = (),
        page_origins: Sequence[str] = LOCAL_ORIGINS,
    ) -> None:
        self.rules = tuple(rules)
        self.enabled = enabled
        self.warnings = tuple(warnings)
        self.page_origins = OriginList(page_origins)  # [defaults] allow_origins: the user's own pages
        self.active = tuple(r for r in self.rules if r.enabled) if enabled else ()
        self.hits = [0] * len(self.rules)
        self._exact: dict[str, list[Rule]] = {}
        self._exact_port: dict[HostKey, list[Rule]] = {}
        self._suffix: dict[str, list[Rule]] = {}
        self._suffix_port: dict[HostKey, list[Rule]] = {}
        self._everywhere: list[Rule] = []  # `*` hosts and filter-only rules
        self.skips_some_tls_verify = any(not r.upstream_tls_verify for r in self.active)
        # The rules naming a host: normalising it and walking its parent domains, once per host
        # (paired A/B: saves 2-4 µs per matched flow, 1.5-2 µs per unmatched one).
        self._candidates: BoundedMemo[tuple[HostKey, ...], tuple[Rule, ...]] = BoundedMemo()
        for rule in self.active:
            if not rule.hosts:
                self._everywhere.append(rule)
            for host in rule.hosts:
                self._index(host, rule)

    def _index(self, host: HostPattern, rule: Rule) -> None:
        if host.kind is HostKind.ANY:
            if rule not in self._everywhere:
                self._everywhere.append(rule)
            return
        if host.kind is HostKind.EXACT:
            table, key = (self._exact, host.name) if host.port is None else (self._exact_port, (host.name, host.port))
        else:
            table, key = (self._suffix, host.name) if host.port is None else (self._suffix_port, (host.name, host.port))
        entries = table.setdefault(key, [])
        if not entries or entries[-1] is not rule:
            entries.append(rule)

    def match(self, names: Iterable[HostKey], path: str, flow: Any = None) -> Rule | None:
        """The first enabled rule, in file order, whose hosts match any of
        `names` ((host, port) pairs), whose paths match `path` (no query) and
        whose filter accepts `flow`. Raises FilterFailed when a filter raises:
        the flow is then none of any rule's business."""
        if not self.active:
            return None
        names = tuple(names)
        candidates = self._candidates.get(names)
        if candidates is None:
            candidates = self.candidates(names)
        for rule in candidates:
            if rule.paths and not rule.matches_path(path):
                continue
            if rule.filter is not None:
                try:
                    accepted = rule.filter(flow)
                except Exception as e:
                    raise FilterFailed(rule, e) from e
                if not accepted:
                    continue
            return rule
        return None

    def candidates(self, names: tuple[HostKey, ...]) -> tuple[Rule, ...]:
        """The enabled rules, in file order, whose hosts match any of `names` (paths and filters aside)."""
        found = self._candidates.get(names)
        if found is None:
            found = self._lookup(names)
            if all(len(host) <= MAX_HOST for host, _ in names):  # no memo of what no DNS name can be
                self._candidates.remember(names, found)
        return found

    def covers(self, host: str, port: int) -> bool:
        """Whether some enabled rule names this host (paths and filters aside)."""
        return bool(self.active) and bool(self.candidates(((host, port),)))

    def naming(self, host: str, port: int | None) -> tuple[Rule, ...]:
        """Every rule, enabled or not, in file order, with a host pattern other than `*` that names
        `host` on `port` (None: on some port). A scan of every rule: for commands and first-time
        notices, never per flow."""
        host = normalize_host(host)
        return tuple(r for r in self.rules if any(p.names(host, port) for p in r.hosts))

    def skips_tls_verify(self, names: tuple[HostKey, ...]) -> bool:
        """Whether a rule naming one of these hosts has upstream_tls_verify = false. TLS is per
        connection, not per request: a rule's paths and filter cannot narrow it."""
        return self.skips_some_tls_verify and any(not r.upstream_tls_verify for r in self.candidates(names))

    def _lookup(self, names: tuple[HostKey, ...]) -> tuple[Rule, ...]:
        found: dict[int, Rule] = {r.index: r for r in self._everywhere}
        for host, port in names:
            if len(host) > MAX_HOST:
                continue  # no host pattern but `*` can match it (and its parents would cost quadratic time)
            host = normalize_host(host)
            for rule in self._exact.get(host, ()):
                found[rule.index] = rule
            for rule in self._exact_port.get((host, port), ()):
                found[rule.index] = rule
            dot = host.find(".")
            while dot >= 0:
                parent = host[dot + 1 :]
                dot = host.find(".", dot + 1)
                for rule in self._suffix.get(parent, ()):
                    found[rule.index] = rule
                for rule in self._suffix_port.get((parent, port), ()):
                    found[rule.index] = rule
        return tuple(found[i] for i in sorted(found))

    def summary(self) -> str:
        if not self.enabled:
            return "switched off (enabled = false); no rules in force"
        n = len(self.active)
        return f"{n} rule{'' if n == 1 else 's'} enabled" + (f" of {len(self.rules)}" if len(self.rules) != n else "")
