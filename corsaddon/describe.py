"""What the addon did with a flow, in words short enough for a flow list's comment column,
and the marker that shows it (pure: no mitmproxy).

The decision comes first, the rule last, so a cut-off column still says what happened.
"""

from __future__ import annotations

from collections.abc import Sequence

from .headerfields import CORS_PREFIX
from .patterns import is_browser_origin, origin_of
from .policy import Decision, Kind
from .quote import clip, printable, quote
from .rules import Rule, RuleSet
from .schema import OriginMode

# mitmproxy draws these emoji shortcodes as flow markers (mitmweb, console); each is one glyph.
MARKERS = {
    Kind.ANSWER_PREFLIGHT: ":zap:",  # answered by the proxy, never sent to the API
    Kind.FORWARD_PREFLIGHT: ":white_check_mark:",
    Kind.CORS: ":white_check_mark:",  # the response got CORS headers
    Kind.DISALLOWED: ":no_entry:",  # the origin is not allowed: passed untouched
    Kind.STRIP: ":scissors:",
    Kind.OBSERVE: ":eyes:",
}
FAILS_CHECK = ":warning:"  # an observed answer from the API that the browser refuses
UNREACHABLE = ":electric_plug:"  # the addon answered for an API mitmproxy could not reach
HANDSHAKE = ":handshake:"  # a WebSocket handshake from an allowed origin, accepted


def marker(decision: Decision, check_fails: bool) -> str | None:
    if decision.kind is Kind.OBSERVE and check_fails:
        return FAILS_CHECK
    return MARKERS.get(decision.kind)  # NO_ORIGIN: not a CORS request, nothing to show


def outcome(decision: Decision, replaced: Sequence[str] = (), sent: Sequence[bytes] = ()) -> str:
    """What happened, decision first: 'CORS set for http://localhost:3000: Allow-Origin, Expose-Headers'.
    `replaced`: the API's CORS header names removed; `sent`: the names of the CORS headers set."""
    kind, rule = decision.kind, decision.rule
    origin = shown_origin(decision.origin) if decision.origin else ""
    if kind is Kind.ANSWER_PREFLIGHT:
        text = f"preflight answered for {origin}"
    elif kind is Kind.FORWARD_PREFLIGHT:
        text = f"preflight forwarded, CORS set for {origin}"
    elif kind is Kind.CORS:
        text = f"CORS set for {origin}: {', '.join(short_name(n.decode('latin-1')) for n in sent)}"
    elif kind is Kind.NO_ORIGIN:
        text = "no Origin: " + ("Allow-Origin: * set" if decision.allow_origin else "only Vary: Origin added")
    elif kind is Kind.STRIP:
        text = "CORS stripped" if replaced else "CORS stripped (the API sent none)"
    elif kind is Kind.OBSERVE:
        text = "observed, unchanged"
    else:
        text = f"origin refused: {not_allowed(origin, rule)}"
    if replaced:
        names = clip(", ".join(short_name(n) for n in dict.fromkeys(replaced)), 120)
        text += f"; the API's {names} {'removed' if kind is Kind.STRIP else 'replaced'}"
    return text


def handshake_marker(decision: Decision, status: int) -> str | None:
    """A WebSocket handshake's marker: refused ones stand out where an Origin was sent for a rule to act on."""
    kind = decision.kind
    if kind is Kind.CORS or kind is Kind.OBSERVE:
        return (HANDSHAKE if kind is Kind.CORS else MARKERS[kind]) if status == 101 else FAILS_CHECK
    return MARKERS.get(kind)


def handshake_outcome(decision: Decision, status: int) -> str:
    """What happened to a WebSocket handshake, which the addon never answers with CORS headers:
    'WebSocket handshake from http://localhost:3000: Origin sent upstream as https://x; accepted (101)'."""
    kind, rule = decision.kind, decision.rule
    origin = shown_origin(decision.origin) if decision.origin else ""
    answered = "accepted (101)" if status == 101 else f"refused ({status})"
    if kind is Kind.CORS:
        mode = rule.upstream_origin.mode
        if mode is OriginMode.REPLACE:
            sent = f"Origin sent upstream as {rule.upstream_origin.origin}"
        else:
            sent = (
                "Origin sent upstream unchanged" if mode is OriginMode.KEEP else "Origin dropped (none sent upstream)"
            )
        return f"WebSocket handshake from {origin}: {sent}; {answered}"
    if kind is Kind.DISALLOWED:
        return f"WebSocket handshake passed untouched: {not_allowed(origin, rule)}; {answered}"
    if kind is Kind.OBSERVE:
        return f"WebSocket handshake observed, unchanged; {answered}"
    if kind is Kind.STRIP:
        return f"WebSocket handshake passed untouched (strip: a handshake carries no CORS headers); {answered}"
    return f"WebSocket handshake without Origin passed untouched; {answered}"


def handshake_refused(decision: Decision, host: str, own_origin: str | None) -> str:
    """The notice for a WebSocket handshake from an allowed origin that the API answered with 403.
    `own_origin`: the API's own origin (well-formed), the likeliest one it accepts."""
    rule, origin = decision.rule, shown_origin(decision.origin or "")
    head = f"cors: {host} refused the WebSocket handshake from {origin} (403)"
    mode = rule.upstream_origin.mode
    if mode is OriginMode.KEEP:
        fix = f'= "{own_origin}" (an origin the server accepts)' if own_origin else "to an origin the server accepts,"
        return (
            f"{head}: servers check a handshake's Origin themselves (CORS does not apply to WebSockets); "
            f'set upstream_origin {fix} or "drop" in rule {rule.label}'
        )
    sent = rule.upstream_origin.origin if mode is OriginMode.REPLACE else ""
    example = f' (e.g. "{own_origin}")' if own_origin and own_origin != sent else ""
    if mode is OriginMode.DROP:
        return (
            f'{head}, sent upstream without Origin (upstream_origin = "drop" in rule {rule.label}): '
            f"the server wants an Origin it accepts; set upstream_origin to one{example}"
        )
    return (
        f"{head}, sent upstream with Origin: {sent} (upstream_origin in rule {rule.label}): "
        f'the server does not accept that origin; set upstream_origin to one it accepts{example} or "drop"'
    )


def own_origin(scheme: str, host: str, port: int) -> str | None:
    """The origin of the API itself (`http://api.example.com:8080`), if well-formed: the one a
    WebSocket server that checks Origin is likeliest to accept."""
    origin = origin_of("https" if scheme == "https" else "http", host, port)
    return origin if is_browser_origin(origin) else None


def not_allowed(origin: str, rule: Rule) -> str:
    return f"{origin} is not in allow_origins ({clip(', '.join(rule.allow_origins), 80)})"


def shown_origin(origin: str) -> str:
    """A browser's origin as it is; anything else quoted and cut short."""
    return origin if len(origin) <= 100 and is_browser_origin(origin) else quote(origin)


def short_name(name: str) -> str:
    """'access-control-allow-origin' -> 'Allow-Origin'."""
    if name.lower().startswith(CORS_PREFIX):
        name = name[len(CORS_PREFIX) :]
    return "-".join(part.capitalize() for part in name.split("-"))


def comment(outcome_text: str, rule: Rule, check: str = "") -> str:
    text = f"{outcome_text} · cors rule {rule.label}"
    return f"{text}\n{check}" if check else text


def flow_line(method: str, host: str, path: str, outcome_text: str, rule: Rule, check: str = "") -> str:
    """The per-flow log line: 'cors: OPTIONS api.example.com/v1/users: preflight answered for ... (rule 'api')'."""
    target = printable(f"{clip(method, 20)} {clip(host)}{clip(path.partition('?')[0])}")
    line = f"cors: {target}: {outcome_text} (rule {rule.label})"
    return f"{line}; {check}" if check else line


def state_line(enabled: bool, ruleset: RuleSet) -> str:
    if enabled:
        return f"cors: on; {ruleset.summary()}"
    return "cors: off (cors_enabled = false): every flow passes untouched; cors.toggle switches it on"


def status_lines(ruleset: RuleSet, enabled: bool, path: str) -> list[str]:
    """cors.status: the addon's state, the file, and each rule with its state and hits."""
    state = "on" if enabled else "off (cors_enabled = false: every flow passes untouched)"
    lines = [f"cors: {state}; {path}: {ruleset.summary()}"]
    for rule in ruleset.rules:
        if not enabled:
            state = "off (cors_enabled is off)"
        elif not ruleset.enabled:
            state = "off (the file says enabled = false)"
        else:
            state = "on" if rule.enabled else "off (enabled = false)"
        hits = ruleset.hits[rule.index]
        lines.append(f"rule {rule.label}: {state}, {rule.action}, {hits} hit{'' if hits == 1 else 's'}")
    return lines
