"""The CORS decisions: what a matched flow gets, and the headers that go with it.

Pure: works on strings and on raw header fields (tuples of bytes pairs, as
mitmproxy keeps them), which the glue takes off the flow and puts back, one pass
each way. One small function per header group, as in expressjs/cors; everything
that does not depend on the request is worked out once, on the Rule, and answers
that depend on it are memoised per rule in the `AnswerMemo` of each rule set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from .headerfields import CORS_PREFIX, CORS_PREFIX_BYTES, Fields, encode, rewrite_fields
from .memo import BoundedMemo
from .patterns import MAX_ORIGIN, MAX_REFLECTED, header_list, header_names, is_browser_origin, is_token
from .rules import Rule, RuleSet
from .schema import Action, OriginMode, Preflight
from .verdict import CorsAsk

# Response headers a script can read without Access-Control-Expose-Headers.
SAFELISTED_RESPONSE = frozenset(
    {"cache-control", "content-language", "content-length", "content-type", "expires", "last-modified", "pragma"}
)
NEVER_READABLE = frozenset({"set-cookie", "set-cookie2"})
# Longest requested method and headers, together, whose preflight answer is remembered:
# browsers send short lists; a longer one is answered all the same, just not kept.
MEMO_KEY_CHARS = 512


class Kind(Enum):
    ANSWER_PREFLIGHT = "answered preflight"
    FORWARD_PREFLIGHT = "forwarded preflight"
    CORS = "CORS response"
    NO_ORIGIN = "request without Origin"
    STRIP = "stripped CORS headers"
    OBSERVE = "observed"
    DISALLOWED = "origin not allowed"


class CorsRequest(NamedTuple):
    """The request headers CORS decisions read, taken in one pass over the raw fields. Immutable: it is
    part of the preflight memo's key (a tuple: hashed and compared in C)."""

    origins: tuple[str, ...] = ()
    method: str | None = None  # Access-Control-Request-Method
    headers: str | None = None  # Access-Control-Request-Headers
    private_network: bool = False  # Access-Control-Request-Private-Network: true
    websocket: bool = False
    # Carries Cookie: only credentials mode "include" sends one cross-origin. An Authorization header
    # alone is a token the page set itself, sent in the default mode, where `*` is fine.
    credentials: bool = False

    @classmethod
    def read(cls, fields: Fields) -> CorsRequest:
        origins: list[str] = []
        requested: list[bytes] = []
        method = None
        private_network = websocket = credentials = False
        for name, value in fields:
            name = name.lower()
            if name == b"origin":
                origins.append(value[: MAX_ORIGIN + 1].decode("latin-1"))  # longer: not an origin anyway
            elif name.startswith(CORS_PREFIX_BYTES):
                if name == b"access-control-request-method":
                    method = value[: MAX_REFLECTED + 1].decode("latin-1")
                elif name == b"access-control-request-headers":
                    requested.append(value)  # joined once below: repeated fields cost linear time
                elif name == b"access-control-request-private-network":
                    private_network = value.strip().lower() == b"true"
            elif name == b"upgrade":
                websocket = value.strip().lower() == b"websocket"
            elif name == b"cookie":
                credentials = True
        if not (origins or method or requested or private_network or websocket):
            return NO_CORS_HEADERS
        headers = b",".join(requested)[: MAX_REFLECTED + 1].decode("latin-1") if requested else None
        # tuple.__new__: a NamedTuple's own __new__ is a Python-level call
        return _new_tuple(cls, (tuple(origins), method, headers, private_network, websocket, credentials))

    def ask(self, method: str, credentials: bool) -> CorsAsk:
        """What the page asked of the API, as the browser checks the answer. `method`: the request's
        own; `credentials`: the page sends them (a Cookie, or what the rule says)."""
        preflight = method == "OPTIONS" and self.method is not None
        requested = header_names(self.headers) if preflight and self.headers else None
        return CorsAsk(
            origin=", ".join(self.origins),
            credentials=credentials,
            preflight=preflight,
            method=self.method or "" if preflight else "",
            headers=tuple(sorted({h.lower() for h in requested})) if requested else (),
            private_network=preflight and self.private_network,
        )


_new_tuple = tuple.__new__
NO_CORS_HEADERS = CorsRequest()


class RuleAnswers:
    """What one rule has already answered: browsers send the same few origins and
    preflights over and over. Gone with its rule set at reload."""

    __slots__ = ("allow_origin", "preflight")

    def __init__(self) -> None:
        # Each kept for what a paired A/B (python -m bench.ab) shows it saves per flow:
        self.allow_origin: BoundedMemo[str, str | None] = BoundedMemo()  # by Origin: 3-4 µs (the regex, the globs)
        self.preflight: BoundedMemo[tuple[str | None, CorsRequest], Fields] = BoundedMemo()  # 7 µs per preflight
        # Not remembered: an actual response's CORS fields (a memo saved 0.5-0.9 µs, under the 1 µs a memo must save).


class AnswerMemo:
    """The `RuleAnswers` of every rule of one rule set, each made on first use
    (most of 10,000 rules never see a flow)."""

    __slots__ = ("_by_rule",)

    def __init__(self, ruleset: RuleSet) -> None:
        self._by_rule: list[RuleAnswers | None] = [None] * len(ruleset.rules)

    def of(self, rule: Rule) -> RuleAnswers:
        answers = self._by_rule[rule.index]
        if answers is None:
            answers = self._by_rule[rule.index] = RuleAnswers()
        return answers


@dataclass(slots=True)
class Decision:
    """What the addon does with one flow, fixed when its request headers arrive."""

    rule: Rule
    kind: Kind
    answers: RuleAnswers
    request: CorsRequest = NO_CORS_HEADERS
    # The request's Origin headers joined by ", " (a browser sends one); None without, and for STRIP, which reads none.
    origin: str | None = None
    allow_origin: str | None = None  # the Access-Control-Allow-Origin to send

    @property
    def changes_response(self) -> bool:
        return self.kind not in _LEFT_ALONE

    @property
    def rewrites_origin(self) -> bool:
        """Whether `upstream_origin` applies: an allowed origin's request going upstream."""
        return self.kind in _GOING_UPSTREAM and self.rule.upstream_origin.mode is not OriginMode.KEEP


# Tuples, not sets: `in` on a tuple compares by identity first and never hashes (an Enum's hash is a
# Python-level call); a tuple built once is also faster than one written in the test (40 ns, not 110).
_LEFT_ALONE = (Kind.DISALLOWED, Kind.ANSWER_PREFLIGHT, Kind.OBSERVE)  # the response is not the addon's to change
_GOING_UPSTREAM = (Kind.CORS, Kind.FORWARD_PREFLIGHT)  # an allowed origin's request that reaches the API


def decide(rule: Rule, method: str, request: CorsRequest, answers: RuleAnswers | None = None) -> Decision:
    """Classify a matched request by its method and CORS request headers.
    `answers`: the rule's memo in the rule set in force (a fresh one if None)."""
    if answers is None:
        answers = RuleAnswers()
    if rule.action is Action.STRIP:
        return Decision(rule, Kind.STRIP, answers, request)
    origins = request.origins
    origin = origins[0] if len(origins) == 1 else None  # the one a browser sends
    shown = origin if origin is not None else ", ".join(origins) or None
    if rule.action is Action.OBSERVE:
        return Decision(rule, Kind.OBSERVE, answers, request, shown)
    if not origins:
        return Decision(rule, Kind.NO_ORIGIN, answers, request, allow_origin="*" if rule.wildcard_answer else None)
    allow_origin = allowed_origin(rule, origin, answers) if origin is not None else None
    if allow_origin is None:
        return Decision(rule, Kind.DISALLOWED, answers, request, shown)
    if method == "OPTIONS" and request.method is not None:
        kind = Kind.ANSWER_PREFLIGHT if rule.preflight is Preflight.ANSWER else Kind.FORWARD_PREFLIGHT
        return Decision(rule, kind, answers, request, origin, allow_origin)
    return Decision(rule, Kind.CORS, answers, request, origin, allow_origin)


def allowed_origin(rule: Rule, origin: str, answers: RuleAnswers) -> str | None:
    """`rule.allowed_origin(origin)`, remembered for well-formed origins (so no
    request can fill the memo with long or junk values)."""
    if len(origin) > MAX_ORIGIN:
        return None  # no origin is that long
    memo = answers.allow_origin
    if origin in memo:
        return memo[origin]
    answer = rule.allowed_origin(origin)
    if answer is not None or is_browser_origin(origin):
        memo.remember(origin, answer)
    return answer


def preflight_headers(decision: Decision) -> list[tuple[str, str]]:
    """The CORS headers of a preflight answer. A requested method or header
    outside a configured list is simply not listed: the browser's console then
    names the exact problem."""
    rule, request = decision.rule, decision.request
    out = _origin_headers(decision)
    methods = rule.methods_value
    if rule.allow_methods is None:
        methods = request.method if request.method and is_token(request.method) else ""
    if methods:
        out.append(("Access-Control-Allow-Methods", methods))
    allowed = rule.headers_value
    if rule.allow_headers is None:
        allowed = (header_list(request.headers) or "") if request.headers else ""
    if allowed:
        out.append(("Access-Control-Allow-Headers", allowed))
    out.append(("Access-Control-Max-Age", rule.max_age_value))
    if rule.allow_private_network and request.private_network:
        out.append(("Access-Control-Allow-Private-Network", "true"))
    return out


def response_headers(decision: Decision, response_names: Iterable[str]) -> list[tuple[str, str]]:
    """The CORS headers of an actual (non-preflight) response."""
    if decision.allow_origin is None:
        return []
    out = _origin_headers(decision)
    expose = decision.rule.expose_value
    if decision.rule.expose_headers is None:
        expose = ", ".join(exposable(response_names))
    if expose:
        out.append(("Access-Control-Expose-Headers", expose))
    return out


def _origin_headers(decision: Decision) -> list[tuple[str, str]]:
    out = [("Access-Control-Allow-Origin", decision.allow_origin or "")]
    if decision.rule.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    return out


def preflight_fields(decision: Decision) -> Fields:
    """The header fields of a preflight answered locally."""
    memo = decision.answers.preflight
    key = (decision.allow_origin, decision.request)
    fields = memo.get(key)
    if fields is None:
        fields, _ = rewrite_fields((), encode(preflight_headers(decision)), preflight_vary(decision.rule))
        if len(decision.request.method or "") + len(decision.request.headers or "") <= MEMO_KEY_CHARS:
            memo.remember(key, fields)
    return fields


def response_fields(decision: Decision, fields: Fields) -> tuple[Fields, list[str], Fields]:
    """A response's header fields with its CORS headers replaced as `decision` says, the names
    of the upstream's own CORS headers that were removed, and the CORS fields that were set."""
    rule = decision.rule
    if decision.kind is Kind.STRIP:
        cors: Fields = ()
        return *rewrite_fields(fields, cors, ()), cors
    if decision.kind is Kind.FORWARD_PREFLIGHT:
        cors = encode(preflight_headers(decision))
        return *rewrite_fields(fields, cors, preflight_vary(rule)), cors
    names: Iterable[str] = ()  # the response's own header names: only for expose_headers = "*"
    if rule.expose_headers is None and decision.allow_origin is not None:
        names = [name.decode("latin-1") for name, _ in fields]
    cors = encode(response_headers(decision, names))
    return *rewrite_fields(fields, cors, response_vary(rule)), cors


def preflight_vary(rule: Rule) -> tuple[str, ...]:
    """The request headers a preflight answer depends on."""
    vary = [] if rule.wildcard_answer else ["Origin"]
    if rule.allow_methods is None:
        vary.append("Access-Control-Request-Method")
    if rule.allow_headers is None:
        vary.append("Access-Control-Request-Headers")
    if rule.allow_private_network:
        vary.append("Access-Control-Request-Private-Network")
    return tuple(vary)


def response_vary(rule: Rule) -> tuple[str, ...]:
    return () if rule.wildcard_answer else ("Origin",)


def exposable(names: Iterable[str]) -> tuple[str, ...]:
    """The response's own header names a script may be allowed to read, for
    `expose_headers = "*"`. Names, never a literal `*`, so it works with credentials."""
    seen: dict[str, str] = {}
    for name in names:
        lower = name.lower()
        if lower in SAFELISTED_RESPONSE or lower in NEVER_READABLE or lower.startswith(CORS_PREFIX):
            continue
        if lower not in seen and is_token(name):
            seen[lower] = name
    return tuple(seen.values())
