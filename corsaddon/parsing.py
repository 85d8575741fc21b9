"""Reading a rules file: TOML, validated against the schema, compiled into a RuleSet.

Pure: imports nothing from mitmproxy. A mitmproxy filter expression is compiled
by a function the caller passes in. Every problem is a `RulesError` whose message
names the file, the line, the rule and the key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable
from typing import Any

from .patterns import HostKind
from .quote import clip, quote
from .rules import Rule, RuleSet
from .schema import KEYS, MATCH_KEYS, POLICY_KEYS, Action

FilterCompiler = Callable[[str], Callable[[Any], bool]]

BROWSER_MAX_AGE = 7200  # Chromium's cap; Firefox allows 86,400
MAX_FILE_BYTES = 8 * 1024 * 1024
TOP_KEYS = ("enabled", "defaults", "rules")


class RulesError(ValueError):
    """A rules file that cannot be applied. The message is one line a user can act on."""


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
        raise RulesError(f"{source}: TOML syntax error: {clip(str(e), 200)}") from None
    except RecursionError:
        raise RulesError(f"{source}: the file nests arrays or tables too deeply to be read") from None
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
        raise fail("enabled", f"expected true or false, got {quote(enabled)}")

    raw_defaults = doc.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise fail("defaults", "expected a table: [defaults]")
    for key in raw_defaults:
        if key not in POLICY_KEYS:
            why = "only rule policy keys can have defaults" if key in MATCH_KEYS else None
            raise fail("[defaults]", why and f"{quote(key)} cannot be set here: {why}" or _unknown(key, POLICY_KEYS))
    defaults = {}
    for name in POLICY_KEYS:
        try:
            defaults[name] = KEYS[name].compile(raw_defaults.get(name, KEYS[name].default))
        except ValueError as e:
            raise fail(f"[defaults] {name}", str(e)) from None

    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise fail("rules", "expected rule tables: write each rule under [[rules]]")

    rules: list[Rule] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_rules):
        name = raw.get("name", f"rule {i + 1}")
        label = f"rule {quote(name)}" if isinstance(name, str) else f"rule {i + 1}"
        try:
            rule = _compile_rule(i, raw, defaults, compile_filter)
        except ValueError as e:
            raise fail(label, str(e), i) from None
        if rule.name in names:
            raise fail(label, f"duplicate name {quote(rule.name)}: give each rule its own name", i)
        names.add(rule.name)
        rules.append(rule)
        if rule.enabled:
            warnings.extend(_warnings(rule, label))
    return RuleSet(rules, enabled=enabled, warnings=warnings, page_origins=defaults["allow_origins"])


def _compile_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """The values of `raw`'s keys as a Rule holds them, checked in the schema's order."""
    compiled = {}
    for name, key in KEYS.items():
        if name in raw:
            try:
                compiled[name] = key.compile(raw[name])
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
    return compiled


def _compile_rule(index: int, raw: dict[str, Any], defaults: dict[str, Any], compile_filter: FilterCompiler) -> Rule:
    for key in raw:
        if key not in KEYS:
            raise ValueError(_unknown(key, KEYS))
    values = defaults | _compile_keys(raw)
    filter_expr = values.pop("filter", None)
    if not values.get("hosts") and filter_expr is None:
        raise ValueError('needs hosts (a non-empty list, like hosts = ["api.example.com"]) or a filter')
    predicate = None
    if filter_expr is not None:
        try:
            predicate = compile_filter(filter_expr)
        except ValueError as e:
            raise ValueError(f"filter: {e}") from None
    values.setdefault("name", f"rule {index + 1}")
    values.setdefault("enabled", True)
    values.setdefault("hosts", ())
    values.setdefault("paths", ())
    return Rule(index=index, filter_expr=filter_expr, filter=predicate, **values)


def _warnings(rule: Rule, label: str) -> list[str]:
    warnings = []
    if any(h.kind is HostKind.ANY for h in rule.hosts):
        warnings.append(f'{label} applies to every host (hosts = ["*"])')
    if rule.action is Action.INJECT and rule.allow_credentials and rule.admits_every_origin:
        admits = ", ".join(quote(o) for o in rule.allow_origins if o == "*" or "*" in o.partition("://")[2])
        warnings.append(
            f"{label} lets any origin read responses with credentials (allow_origins has {admits} "
            "and allow_credentials = true): any page you visit can read this API as you"
        )
    if rule.max_age > BROWSER_MAX_AGE:
        warnings.append(f"{label}: max_age = {rule.max_age}, but Chromium caps it at {BROWSER_MAX_AGE} s")
    return warnings


def _unknown(key: str, known: Iterable[str], hint: str | None = None) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    message = f"unknown key {quote(key)}"
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    return f"{message} ({hint})" if hint else f"{message}; known keys: {', '.join(known)}"


_RULE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*rules[ \t]*\]\]", re.MULTILINE)


def _rule_lines(text: str) -> list[int]:
    """1-based line of each `[[rules]]` header, so errors can point at the rule."""
    lines, line, pos = [], 1, 0
    for m in _RULE_HEADER.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        lines.append(line)
    return lines
