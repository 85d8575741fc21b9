"""Discovery's words for a host no rule names, and the rule `cors.allow` appends to the rules file.

Pure: imports nothing from mitmproxy. The new rule is text appended to what the user wrote (no byte
of it changes), checked by reading the whole file back: `AppendRefused` says why it cannot be.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from .parsing import FilterCompiler, RulesError, parse
from .patterns import DEFAULT_PORTS, MAX_HOST, HostKind, HostPattern, PatternError
from .quote import clip, quote
from .rules import Rule, RuleSet
from .schema import KEYS, Action


class AppendRefused(RulesError):
    """`cors.allow` cannot add the rule; the message says why and what to do instead."""


def host_text(scheme: str, host: str, port: int) -> str:
    """How `hosts` names this host: `api.example.com`, or `localhost:8000` off the scheme's default port."""
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return name if DEFAULT_PORTS.get(scheme) == port else f"{name}:{port}"


def parse_host(text: str) -> HostPattern:
    """The host `cors.allow` was given: one name, with a port or not."""
    try:
        pattern = HostPattern.parse(text)
    except PatternError as e:
        raise AppendRefused(f"cors.allow: {e}") from None
    if len(pattern.name) > MAX_HOST:
        raise AppendRefused(f"cors.allow: {quote(text)} is longer than any host name")
    if pattern.kind is not HostKind.EXACT:
        raise AppendRefused(
            f"cors.allow takes one host, like api.example.com or localhost:8000, not {quote(text)}: "
            "write patterns into the rules file"
        )
    return pattern


def what_rule_decides(rule: Rule) -> str:
    """'strips the API's CORS headers', 'sets CORS for http://localhost:* (paths /v1/*)'."""
    if rule.action is Action.STRIP:
        text = 'strips the API\'s CORS headers (action = "strip")'
    elif rule.action is Action.OBSERVE:
        text = 'only observes (action = "observe")'
    else:
        text = f"sets CORS for {clip(', '.join(rule.allow_origins), 100)}"
    narrowed = [f"paths {clip(', '.join(g.pattern for g in rule.paths), 80)}"] if rule.paths else []
    narrowed += [f"filter {quote(rule.filter_expr)}"] if rule.filter_expr else []
    return f"{text}, only for {' and '.join(narrowed)}" if narrowed else text


def discovery_line(host: str, origin: str, reason: str, naming: Sequence[Rule], cookies: bool = False) -> str:
    """The one log line for a host that fails CORS for the user's page and is no rule's business.
    `cookies`: the call carried cookies, so the rule needs allow_credentials (cors.allow adds it)."""
    head = f"cors: {host} fails CORS for {origin} ({reason})"
    enabled = [r for r in naming if r.enabled]
    if enabled:
        rule = enabled[0]
        return f"{head}: rule {rule.label} names it but leaves this request out: it {what_rule_decides(rule)}"
    if naming:
        return f"{head} and only the disabled rule {naming[0].label} names it: set enabled = true in that rule"
    line = f"{head} and no rule names it: run cors.allow {host}, or add hosts = [{json.dumps(host)}] to a rule"
    return f"{line} with allow_credentials = true (the call carried cookies)" if cookies else line


def nameable(host: str) -> bool:
    """Whether `cors.allow` would take `host` (host_text's form): the only hosts discovery names."""
    try:
        parse_host(host)
    except AppendRefused:
        return False
    return True


def host_keys(host: str) -> tuple[tuple[str, int], ...]:
    """The (host, port) pairs a rule must match to name `host` (host_text's form; no port: 80 or 443);
    none for what is not a host."""
    try:
        pattern = HostPattern.parse(host)
    except PatternError:
        return ()
    return ((pattern.name, pattern.port),) if pattern.port else ((pattern.name, 80), (pattern.name, 443))


def discovery_comment(origin: str, findings: str, host: str) -> str:
    """The comment on such a flow: the verdict first, then the fix."""
    return f"fails CORS for {origin}: {clip(findings, 300)}; no rule matched it: cors.allow {host}"


def refusal(ruleset: RuleSet, pattern: HostPattern, path: str) -> str | None:
    """Why `cors.allow` must not append a rule for `pattern` to the file `ruleset` was read from, if so."""
    host = str(pattern)
    if not ruleset.enabled:
        return f"{path} is switched off (enabled = false at its top): set enabled = true there first"
    # Rules that name the host on every port the new rule would: one on another port leaves room for it.
    naming = [r for r in ruleset.naming(pattern.name, pattern.port) if _covers(r, pattern)]
    for rule in naming:
        if rule.enabled:
            return f"rule {rule.label} already names {host}: it {what_rule_decides(rule)}; change that rule instead"
    if naming:
        return f"rule {naming[0].label} names {host} but is disabled: set enabled = true in that rule"
    for rule in ruleset.active:
        if any(p.kind is HostKind.ANY for p in rule.hosts) and not rule.paths and rule.filter is None:
            every = 'applies to every host (hosts = ["*"]) and comes first'
            return f"rule {rule.label} {every}: a rule after it would never apply"
    return None


def _covers(rule: Rule, pattern: HostPattern) -> bool:
    return any(p.names(pattern.name, pattern.port) and (p.port is None or pattern.port is not None) for p in rule.hosts)


def rule_block(name: str, pattern: HostPattern, origins: Sequence[str], credentials: bool, added: str) -> list[str]:
    """The lines of the new rule, a comment saying when and by what first."""
    lines = [f"# {added}", "[[rules]]", f"name = {json.dumps(name)}", f"hosts = [{json.dumps(str(pattern))}]"]
    if origins:
        lines.append(f"allow_origins = [{', '.join(json.dumps(o) for o in origins)}]")
    if credentials:
        lines.append("allow_credentials = true  # the calls seen carried cookies")
    return lines


def appended(
    text: str,
    path: str,
    pattern: HostPattern,
    origins: Sequence[str],
    credentials: bool,
    added: str,
    compile_filter: FilterCompiler,
) -> str:
    """`text`, the rules file at `path`, with a rule for `pattern` appended; AppendRefused when it
    cannot take one. `added`: the comment line's text (when, by what)."""
    try:
        KEYS["allow_origins"].compile(list(origins)) if origins else None
    except ValueError as e:
        raise AppendRefused(f"cors.allow: {e}") from None
    try:
        current = parse(text, compile_filter, source=path) if text.strip() else RuleSet()
    except RulesError as e:
        raise AppendRefused(f"cors.allow: {e}; fix the file first") from None
    why = refusal(current, pattern, path)
    if why:
        raise AppendRefused(f"cors.allow: {why}")
    taken = {r.name for r in current.rules}
    name = str(pattern)
    number = 2
    while name in taken:
        name, number = f"{pattern} ({number})", number + 1
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = rule_block(name, pattern, origins, credentials, added)
    head = "" if not text else (newline if text.endswith("\n") else newline * 2)
    result = text + head + newline.join(lines) + newline
    try:
        after = parse(result, compile_filter, source=path)
    except RulesError as e:
        raise AppendRefused(
            f"cors.allow: {path} is not a plain [[rules]] file the addon can append to ({e}); add the rule by hand"
        ) from None
    added_rule = after.rules[-1] if len(after.rules) == len(current.rules) + 1 else None
    if added_rule is None or added_rule.name != name or added_rule.hosts != (pattern,):
        raise AppendRefused(
            f"cors.allow: {path} is not a plain [[rules]] file the addon can append to "
            "(a rule appended at its end would not be read as one); add the rule by hand"
        )
    return result
