"""The addon mitmproxy loads: its options, its commands and the flow hooks.

The decisions live in `policy` and `rules`; the rules file and its watcher in
`rulesfile`. This module reads flows and applies what `policy` decides. A
`RulesError` becomes an `OptionsError` (or one `cors:` log line) here.

Every event mitmproxy dispatches walks every addon object (nested ones included),
and every hook goes through its addon manager. So mitmproxy sees `CorsAddon` alone;
its parts (upstream health, the API check, flow notes, discovery, session cookies,
per-host TLS verification, the browser launcher) are plain objects it calls from its own
hooks: their options are declared from its `load`, their commands registered there
(`register_commands`), `configure` and `done` forwarded. What they share is one
`Shared`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

from mitmproxy import command, ctx, exceptions, http
from mitmproxy.log import ALERT
from mitmproxy.net.http import url

from . import describe, policy
from .apicheck import ApiCheck
from .browser import BrowserCommand
from .cookies import SessionCookies
from .describe import state_line, status_lines
from .discovery import Discovery
from .flownotes import FlowNotes, Notices
from .headerfields import Fields
from .parsing import RulesError
from .patterns import MAX_HOST, parse_port
from .policy import AnswerMemo, Decision, Kind
from .quote import clip, quote
from .responses import make_ok, preflight_response
from .rules import FilterFailed, RuleSet
from .rulesfile import default_path
from .schema import Cookies, OriginMode
from .shared import Shared
from .startup import log_startup_hints
from .upstreams import UpstreamHealth
from .upstreamtls import UpstreamTlsVerify

logger = logging.getLogger(__name__)


class CorsAddon:
    def __init__(self) -> None:
        self.shared = shared = Shared()
        self.enabled = True
        self.is_running = False
        self.decisions: weakref.WeakKeyDictionary[http.HTTPFlow, Decision] = weakref.WeakKeyDictionary()
        self.notices: Notices = shared.notices  # the same objects as shared's, for short
        self.notes: FlowNotes = shared.notes
        self.rules_file = shared.rules_file
        self.health = UpstreamHealth(shared)
        self.api_check = ApiCheck(shared)
        self.discovery = Discovery(shared)
        self.cookies = SessionCookies(shared)
        self.upstream_tls = UpstreamTlsVerify(shared)
        self.browser_command = BrowserCommand()  # cors.browser

    @property
    def ruleset(self) -> RuleSet:
        """The rules in force."""
        return self.shared.ruleset

    @property
    def answers(self) -> AnswerMemo:
        return self.shared.answers

    def put_in_force(self, ruleset: RuleSet) -> None:
        self.shared.put_in_force(ruleset)

    # -- lifecycle ---------------------------------------------------------

    def load(self, loader) -> None:
        loader.add_option("cors_rules", str, default_path(), "CORS rules file (TOML), reloaded on every save.")
        enabled_help = "Apply the CORS rules. When off, flows pass untouched (the rules file is still watched)."
        loader.add_option("cors_enabled", bool, True, enabled_help)
        self.api_check.load(loader)
        self.notes.load(loader)
        self.discovery.load(loader)
        register_commands(loader, self.api_check, self.discovery, self.browser_command)

    def configure(self, updated: set[str]) -> None:
        if "cors_enabled" in updated:
            changed = self.enabled != ctx.options.cors_enabled
            self.enabled = ctx.options.cors_enabled
            if changed:  # ALERT: the console's status bar shows it
                logger.log(ALERT, self.state_line())
        if "cors_rules" in updated:
            try:
                self.rules_file.switch_to(ctx.options.cors_rules, strict=self.is_running)
            except RulesError as e:  # a new path typed at run time (mitmweb's options, `set`): refuse it quietly
                raise exceptions.OptionsError(str(e).splitlines()[0]) from None
        self.notes.configure(updated)
        self.discovery.configure(updated)

    def running(self) -> None:
        self.is_running = True
        log_startup_hints()
        self.rules_file.start_watching()

    def done(self) -> None:
        self.rules_file.stop_watching()
        try:
            self.api_check.done()
        finally:  # the browsers cors.browser started end whatever happened to the report
            self.browser_command.done()

    # -- commands ----------------------------------------------------------

    @command.command("cors.toggle")
    def toggle(self) -> str:
        """Switch the CORS rules on or off; says the new state."""
        ctx.options.update(cors_enabled=not ctx.options.cors_enabled)
        return self.state_line()

    def state_line(self) -> str:
        return state_line(self.enabled, self.ruleset)

    @command.command("cors.reload")
    def reload(self) -> None:
        """Read the rules file again now."""
        try:
            self.rules_file.load(self.rules_file.path)
        except RulesError as e:
            self.rules_file.log_error(e)

    @command.command("cors.status")
    def status(self) -> Sequence[str]:
        """Whether the addon is on, the rules file, and each rule with its state and hits."""
        lines = status_lines(self.ruleset, self.enabled, self.rules_file.path)
        logger.info("\n".join(lines))
        return lines

    # -- flow hooks --------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        ruleset = self.shared.ruleset
        if not ruleset.active or not flow.live:  # like modify_headers: saved flows stay as saved
            return
        request = flow.request
        try:
            rule = ruleset.match(host_names(request), request.path.partition("?")[0], flow)
        except FilterFailed as e:
            self.notices.note(("filter", e.rule.name), f"cors: {e}; such flows pass untouched", logging.WARNING)
            return
        if rule is None:
            return
        if not self.enabled:
            return self.notes.passed_while_off(flow, rule)
        cors = policy.CorsRequest.read(request.headers.fields)
        if flow.is_replay != "request":  # a replay is not another hit
            ruleset.hits[rule.index] += 1
        decision = policy.decide(rule, request.method, cors, self.shared.answers.of(rule))
        self.decisions[flow] = decision
        if decision.kind is Kind.DISALLOWED:
            origin = quote(decision.origin)
            self.notices.note(
                ("origin", rule.name, origin),
                f"cors: rule {rule.label}: origin {origin} is not in allow_origins; "
                f"{clip(request.method)} {clip(request.url)} passed through untouched",
            )
        elif decision.rewrites_origin:
            if rule.upstream_origin.mode is OriginMode.DROP:
                del request.headers["origin"]
            else:
                request.headers["origin"] = rule.upstream_origin.origin

    def request(self, flow: http.HTTPFlow):
        decision = self.decisions.get(flow)
        if decision is None or flow.response:
            return None
        if decision.kind is Kind.ANSWER_PREFLIGHT:
            flow.response = preflight_response(policy.preflight_fields(decision))
        elif (
            self.health.failures
            and decision.kind in (Kind.CORS, Kind.FORWARD_PREFLIGHT)
            and self.health.is_down((flow.request.host, flow.request.port))
        ):
            return self.answer_if_down(flow, decision)  # mitmproxy awaits it
        return None

    async def answer_if_down(self, flow: http.HTTPFlow, decision: Decision) -> None:
        answered = await self.health.answer_if_down(flow, decision)
        if answered is not None:
            self.decisions.pop(flow, None)  # the addon's own answer is final: not the API's to rewrite
            self.notes.answered_for_unreachable(flow, f"{answered} · cors rule {decision.rule.label}")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        decision = self.decisions.get(flow)
        if decision is None:
            if self.discovery.on and self.enabled:  # no rule matched: does the page fail on this API?
                self.discovery.consider(flow)
            return
        if not (decision.request.websocket and handshake_answered(flow, decision, self.notices, self.notes)):
            judged = self.api_check.record(flow, decision)  # on the API's own answer, before it is changed
            replaced, sent = rewrite_response(flow, decision, self.notices) if decision.changes_response else ((), ())
            if judged is None:
                self.notes.decided(flow, decision, replaced, sent)
            else:
                self.notes.decided(flow, decision, replaced, sent, judged.comment, judged.fails)
        if decision.rule.cookies is not Cookies.KEEP:
            self.cookies.apply(flow, decision)

    # -- connection hooks: upstream health, and rule key upstream_tls_verify --

    def server_connect_error(self, data) -> None:
        self.health.server_connect_error(data)

    def tls_failed_server(self, data) -> None:
        self.health.tls_failed_server(data)

    def server_connected(self, data) -> None:
        self.health.server_connected(data)

    def tls_established_server(self, data) -> None:
        self.health.tls_established_server(data)

    def tls_start_server(self, data) -> None:
        self.upstream_tls.tls_start_server(data)


def register_commands(loader, *parts: Any) -> None:
    """The `@command.command` methods of `parts`, which mitmproxy does not collect itself (it
    collects those of the addons in its chain, and the parts are not in it), registered through
    the loader as mitmproxy's `CommandManager.collect_commands` registers an addon's. It reads the
    `command_name` that `command.command` puts on each method: the one place this module relies
    on how mitmproxy marks a command."""
    for part in parts:
        for name, attribute in vars(type(part)).items():
            command_name = getattr(attribute, "command_name", None)
            if isinstance(command_name, str):
                loader.add_command(command_name, getattr(part, name))


def host_names(request: http.Request) -> tuple[tuple[str, int], ...]:
    """The (host, port) the browser asked for and the destination's, for matching."""
    destination = (request.host, request.port)
    authority = request.host_header
    if not authority:
        return (destination,)
    if len(authority) > MAX_HOST + 6:
        return (destination,)  # longer than any host[:port]: it can only match `*`, which needs no name
    host, colon, port = authority.rpartition(":")
    if not colon or "]" in port:  # no port, or the end of a bare [IPv6]
        host, port = authority, ""
    if not port:
        asked = (host, url.default_port(request.scheme) or request.port)
    elif (number := parse_port(port)) is not None:
        asked = (host, number)
    else:
        return (destination,)  # an odd port: match on the destination alone, quietly
    return (asked,) if asked == destination else (asked, destination)


def rewrite_response(flow: http.HTTPFlow, decision: Decision, notices: Notices) -> tuple[list[str], Fields]:
    """Set the response's CORS headers as `decision` says; the names of the API's own it replaced,
    and the CORS fields it set."""
    response = flow.response
    assert response is not None
    if response.status_code == 101:
        return [], ()
    fields, replaced, sent = policy.response_fields(decision, response.headers.fields)
    response.headers.fields = fields
    if decision.kind is Kind.FORWARD_PREFLIGHT and not 200 <= response.status_code < 300:
        make_ok(response)
    elif not response.stream and is_event_stream(fields):
        response.stream = True  # an event stream never ends: buffering it would hold back every event
    if replaced and decision.origin:
        host = clip(flow.request.pretty_host)
        notices.note(
            ("replaced", decision.rule.name, host),
            f"cors: rule {decision.rule.label}: replaced the CORS headers {host} sent ({clip(', '.join(replaced))})",
        )
    return replaced, sent


def handshake_answered(flow: http.HTTPFlow, decision: Decision, notices: Notices, notes: FlowNotes) -> bool:
    """Whether this `Upgrade: websocket` flow is a WebSocket handshake (not a preflight), whose answer
    passes unchanged: CORS does not apply to it (no CORS headers or Vary on a 101, nothing to strip, no
    API check). A 403 to an allowed origin's handshake gets a notice: the server checked the Origin."""
    if decision.kind is Kind.ANSWER_PREFLIGHT or decision.kind is Kind.FORWARD_PREFLIGHT:
        return False
    request, status = flow.request, flow.response.status_code if flow.response else 0
    if status == 403 and decision.kind is Kind.CORS:
        host = clip(request.pretty_host)
        message = describe.handshake_refused(decision, host, describe.own_origin(request.scheme, host, request.port))
        notices.note(("handshake refused", decision.rule.name, host), message, logging.WARNING)
    notes.handshake(flow, decision, status)
    return True


def is_event_stream(fields: Fields) -> bool:
    for name, value in fields:
        if name.lower() == b"content-type":
            return value.lstrip().lower().startswith(b"text/event-stream")
    return False
