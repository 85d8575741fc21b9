"""What the addon did with a flow, in words short enough for a flow list's comment column,
and the marker that shows it (pure: no mitmproxy).

The decision comes first, the rule last, so a cut-off column still says what happened.
"""

from __future__ import annotations

from collections.abc import Sequence

from .patterns import is_browser_origin
from .policy import Decision, Kind
from .quote import clip, quote
from .rules import Rule, RuleSet

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
ALL_MARKERS = frozenset((*MARKERS.values(), FAILS_CHECK, UNREACHABLE))


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
        text = f"origin refused: {origin} is not in allow_origins ({clip(', '.join(rule.allow_origins), 80)})"
    if replaced:
        names = clip(", ".join(short_name(n) for n in dict.fromkeys(replaced)), 120)
        text += f"; the API's {names} {'removed' if kind is Kind.STRIP else 'replaced'}"
    return text


def shown_origin(origin: str) -> str:
    """A browser's origin as it is; anything else quoted and cut short."""
    return origin if len(origin) <= 100 and is_browser_origin(origin) else quote(origin)


def short_name(name: str) -> str:
    """'access-control-allow-origin' -> 'Allow-Origin'."""
    if name.lower().startswith("access-control-"):
        name = name[len("access-control-") :]
    return "-".join(part.capitalize() for part in name.split("-"))


def comment(outcome_text: str, rule: Rule, check: str = "") -> str:
    text = f"{outcome_text} · cors rule {rule.label}"
    return f"{text}\n{check}" if check else text


def flow_line(method: str, host: str, path: str, outcome_text: str, rule: Rule, check: str = "") -> str:
    """The per-flow log line: 'cors: OPTIONS api.example.com/v1/users: preflight answered for ... (rule 'api')'."""
    line = f"cors: {clip(method, 20)} {clip(host)}{clip(path.partition('?')[0])}: {outcome_text} (rule {rule.label})"
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
