"""Discovery: the APIs the user's pages fail on that no rule names, and `cors.allow`, which adds the rule.

Observe only: the API's answer to a request no rule matched is checked as the browser would
(`verdict.check`, as for matched flows) when the request comes from one of the user's pages (an
`Origin` that `[defaults] allow_origins` admits) and is cross-origin. A failure gets a marker and a
comment on the flow, one `cors:` line per host and reason, and a place in the report. Nothing in the
traffic changes. The main addon calls `consider` for each answer no rule decided.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mitmproxy import command, ctx, exceptions, flow, http
from mitmproxy.proxy.mode_specs import ReverseMode

from . import describe
from .allowrule import (
    AppendRefused,
    appended,
    discovery_comment,
    discovery_line,
    host_text,
    nameable,
    parse_host,
)
from .apicheck import answered_in_mitmproxy
from .parsing import RulesError
from .patterns import HostPattern, is_host_name, normalize_host, origin_of
from .policy import CorsRequest
from .quote import clip, printable
from .rulesfile import compile_filter, default_path, rewrite_rules_file
from .verdict import check, cors_fields

if TYPE_CHECKING:
    from .shared import Shared

logger = logging.getLogger(__name__)


class Discovery:
    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.report = shared.report
        self.on = True

    def load(self, loader) -> None:
        loader.add_option(
            "cors_discover",
            bool,
            True,
            "Check the answers to your pages' cross-origin calls that no rule matches, and name the APIs that "
            "fail CORS (log line, flow marker, report); nothing in the traffic changes.",
        )

    def configure(self, updated: set[str]) -> None:
        if "cors_discover" in updated:
            self.on = ctx.options.cors_discover

    def consider(self, flow: http.HTTPFlow) -> None:
        """Judge the API's answer to a request no rule matched (at `responseheaders`)."""
        request, response = flow.request, flow.response
        origin = only_origin(request.headers.fields)
        if origin is None or response is None:
            return  # most requests: not a page's cross-origin call
        ruleset = self.shared.ruleset
        if not ruleset.page_origins.admits(origin) or not ruleset.enabled:
            return  # another site's page, or CORS switched off in the file
        host = request.pretty_host
        if not is_host_name(host) or same_origin(flow, origin, host):
            return  # no host name (no rule can name it, and it is not written anywhere); or not cross-origin
        cors = CorsRequest.read(request.headers.fields)
        if cors.websocket or answered_in_mitmproxy(flow):
            return  # CORS does not apply to a handshake; an answer from mitmproxy says nothing of the API
        mode = request.headers.get("sec-fetch-mode")
        if mode and mode.lower() != "cors":
            return  # a navigation (a form's POST), a no-cors fetch or a beacon: the page reads no answer
        ask = cors.ask(request.method, cors.credentials)
        findings = [f for f in check(ask, response.status_code, cors_fields(response.headers.fields)) if f.reason.fails]
        if not findings:
            return
        name = rule_host(request, host)
        if name not in self.report.unnamed and not nameable(name):
            return  # not what a rule's hosts can hold (".", "[::1"): nothing to name
        if flow.is_replay == "request":  # a replay is not another call
            new = []
        else:
            example = printable(f"{clip(request.method, 20)} {clip(request.path)} from {origin}")
            new = self.report.record_unnamed(name, ask, findings, example)
        text = "; ".join(str(f) for f in findings)
        self.shared.notes.write(flow, discovery_comment(origin, text, name), describe.FAILS_CHECK)
        if new:  # one line per host and reason: those of this call not logged before
            reasons = "; ".join(reason.value for reason in new)
            naming = ruleset.naming(host, request.port)
            logger.info(discovery_line(name, origin, reasons, naming, ask.credentials))

    # -- cors.allow ----------------------------------------------------------

    @command.command("cors.allow")
    def allow(self, host: str, *origins: str) -> str:
        """Add a rule for HOST (or for the host of the flows @spec names) to the rules file, allowing
        ORIGINs (else [defaults]' allow_origins); it takes effect within a second."""
        if host.startswith("@") or host.startswith("~"):
            try:
                flows = ctx.master.commands.call("view.flows.resolve", host)
            except exceptions.CommandError:
                raise exceptions.CommandError(
                    f"cors.allow: {clip(host)} names flows, and only mitmproxy and mitmweb keep flows to name; "
                    "give the host instead"
                ) from None
            return self.allow_flow(flows, *origins)
        return self.add_rule(host, origins)

    @command.command("cors.allow.flow")
    def allow_flow(self, flows: Sequence[flow.Flow], *origins: str) -> str:
        """Add a rule for the host of these flows (one host) to the rules file, allowing ORIGINs."""
        hosts = {rule_host(f.request, f.request.pretty_host) for f in flows if isinstance(f, http.HTTPFlow)}
        if len(hosts) != 1:
            if not hosts:
                raise exceptions.CommandError("cors.allow: no HTTP flow given: name one, like @focus")
            found = printable(clip(", ".join(sorted(hosts)), 100))
            raise exceptions.CommandError(
                f"cors.allow: one host at a time: these flows name {len(hosts)} hosts ({found})"
            )
        return self.add_rule(hosts.pop(), origins)

    def add_rule(self, host: str, origins: Sequence[str]) -> str:
        try:
            pattern = parse_host(host)
            seen = self.report.unnamed.get(str(pattern))
            message = add_rule(
                self.shared.rules_file.path, pattern, origins, seen is not None and seen.credentials, "cors.allow"
            )
        except RulesError as e:
            raise exceptions.CommandError(str(e)) from None
        self.report.unnamed.pop(str(pattern), None)  # named now: its calls go to the API check
        logger.info(message)
        return message


def add_rule(path: str, pattern: HostPattern, origins: Sequence[str], credentials: bool, by: str) -> str:
    """Append the rule to the rules file at `path`; what was done, or RulesError (the file unchanged)."""
    added = f"added by {by} (cors-addon) on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    try:
        written = rewrite_rules_file(
            path, lambda text: appended(text, path, pattern, origins, credentials, added, compile_filter)
        )
    except AppendRefused:
        raise
    except RulesError as e:
        raise RulesError(f"cors.allow: {e}; the file is unchanged") from None
    where = path if written == path else f"{path} (written to {written})"
    cookies = ", allow_credentials = true (the calls seen carried cookies)" if credentials else ""
    return f"cors: added a rule for {pattern}{cookies} to {where}; it takes effect within a second"


def rule_host(request: http.Request, host: str) -> str:
    """How a rule's `hosts` names the API `request` went to (`host`: its `pretty_host`)."""
    return host_text(request.scheme, normalize_host(host), request.port)


def only_origin(fields) -> str | None:
    """The request's one `Origin` value (cut at a length no origin has), or None. One pass, for every
    request no rule matches: a header lookup by mitmproxy's `Headers` costs more."""
    found = None
    for name, value in fields:
        if len(name) == 6 and name.lower() == b"origin":
            if found is not None:
                return None  # several: never a browser's
            found = value
    return None if found is None else found[:400].decode("latin-1")


def same_origin(flow: http.HTTPFlow, origin: str, host: str) -> bool:
    """Whether `origin` is the request's own (`host`: its `pretty_host`), as the browser sees it: a
    same-origin call with `Origin` (a POST) is not CORS."""
    request, client = flow.request, flow.client_conn
    if isinstance(client.proxy_mode, ReverseMode) and client.sockname:
        # The browser called the proxy, whose Host mitmproxy replaced by the API's: scheme and port tell.
        host = origin.partition("://")[2]
        if ":" in host and not host.endswith("]"):
            host = host.rpartition(":")[0]
        return origin == origin_of("https" if client.tls else "http", host.strip("[]"), client.sockname[1])
    return origin == origin_of(request.scheme, host, request.port)


def main(argv: Sequence[str] | None = None) -> int:
    """`make allow HOST=...`: cors.allow for mitmdump, which takes no commands. The running proxy
    reads the new rule within a second, as after any save."""
    parser = argparse.ArgumentParser(prog="make allow", description="Add a rule for HOST to the rules file.")
    parser.add_argument("host", help="the API's host, as the discovery line names it (api.example.com, localhost:8000)")
    parser.add_argument("origins", nargs="*", help="pages that may read it (default: [defaults] allow_origins)")
    parser.add_argument("--rules", default=default_path(), help="the rules file (default: %(default)s)")
    parser.add_argument("--credentials", action="store_true", help="allow_credentials = true: the page sends cookies")
    args = parser.parse_args(argv)
    try:
        print(add_rule(args.rules, parse_host(args.host), args.origins, args.credentials, "make allow"))
    except RulesError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
