"""The CORS decisions: what a matched flow gets, and the headers that go with it.

Pure: works on strings and lists of header names; the mitmproxy glue reads them
off the flow and applies the results. One small function per header group, as in
expressjs/cors; everything that does not depend on the request is on the Rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from .patterns import header_list, is_token
from .rules import Rule

# Response headers a script can read without Access-Control-Expose-Headers.
SAFELISTED_RESPONSE = frozenset(
    {"cache-control", "content-language", "content-length", "content-type", "expires", "last-modified", "pragma"}
)
NEVER_READABLE = frozenset({"set-cookie", "set-cookie2"})


class Kind(Enum):
    ANSWER_PREFLIGHT = "answered preflight"
    FORWARD_PREFLIGHT = "forwarded preflight"
    CORS = "CORS response"
    NO_ORIGIN = "request without Origin"
    STRIP = "stripped CORS headers"
    DISALLOWED = "origin not allowed"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the addon does with one flow, fixed when its request headers arrive."""

    rule: Rule
    kind: Kind
    origin: str | None = None  # the request's Origin, when there was exactly one
    allow_origin: str | None = None  # the Access-Control-Allow-Origin to send

    @property
    def changes_response(self) -> bool:
        return self.kind is not Kind.DISALLOWED and self.kind is not Kind.ANSWER_PREFLIGHT

    @property
    def rewrites_origin(self) -> bool:
        """Whether `upstream_origin` applies: an allowed origin's request going upstream."""
        return self.kind in (Kind.CORS, Kind.FORWARD_PREFLIGHT) and self.rule.upstream_origin != "keep"


def decide(rule: Rule, method: str, origins: Sequence[str], preflight_method: str | None) -> Decision:
    """Classify a matched request. `origins` are all its Origin header values;
    `preflight_method` is its Access-Control-Request-Method, if any."""
    if rule.action == "strip":
        return Decision(rule, Kind.STRIP)
    if not origins:
        return Decision(rule, Kind.NO_ORIGIN, allow_origin="*" if rule.wildcard_answer else None)
    origin = origins[0] if len(origins) == 1 else None
    allow_origin = rule.allowed_origin(origin) if origin is not None else None
    if allow_origin is None:
        return Decision(rule, Kind.DISALLOWED, origin=origin if origin is not None else ", ".join(origins))
    if method == "OPTIONS" and preflight_method is not None:
        kind = Kind.ANSWER_PREFLIGHT if rule.preflight == "answer" else Kind.FORWARD_PREFLIGHT
        return Decision(rule, kind, origin, allow_origin)
    return Decision(rule, Kind.CORS, origin, allow_origin)


def preflight_headers(
    decision: Decision,
    request_method: str | None,
    request_headers: str | None,
    private_network: bool,
) -> list[tuple[str, str]]:
    """The CORS headers of a preflight answer. A requested method or header
    outside a configured list is simply not listed: the browser's console then
    names the exact problem."""
    rule = decision.rule
    out = _origin_headers(decision)
    methods = rule.methods_value
    if rule.allow_methods is None:
        methods = request_method if request_method and is_token(request_method) else ""
    if methods:
        out.append(("Access-Control-Allow-Methods", methods))
    allowed = rule.headers_value
    if rule.allow_headers is None:
        allowed = (header_list(request_headers) or "") if request_headers else ""
    if allowed:
        out.append(("Access-Control-Allow-Headers", allowed))
    out.append(("Access-Control-Max-Age", rule.max_age_value))
    if rule.allow_private_network and private_network:
        out.append(("Access-Control-Allow-Private-Network", "true"))
    return out


def response_headers(decision: Decision, response_names: Iterable[str]) -> list[tuple[str, str]]:
    """The CORS headers of an actual (non-preflight) response."""
    if decision.allow_origin is None:
        return []
    out = _origin_headers(decision)
    expose = decision.rule.expose_value
    if decision.rule.expose_headers is None:
        expose = exposable(response_names)
    if expose:
        out.append(("Access-Control-Expose-Headers", expose))
    return out


def _origin_headers(decision: Decision) -> list[tuple[str, str]]:
    out = [("Access-Control-Allow-Origin", decision.allow_origin or "")]
    if decision.rule.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    return out


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


def exposable(names: Iterable[str]) -> str:
    """The response's own header names a script may be allowed to read, for
    `expose_headers = "*"`. Names, never a literal `*`, so it works with credentials."""
    seen: dict[str, str] = {}
    for name in names:
        lower = name.lower()
        if lower in SAFELISTED_RESPONSE or lower in NEVER_READABLE or lower.startswith("access-control-"):
            continue
        if lower not in seen and is_token(name):
            seen[lower] = name
    return ", ".join(seen.values())


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

