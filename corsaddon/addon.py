"""mitmproxy glue: options, hooks, commands and the rules-file watcher.

The decisions live in `policy` and `rules`; this module reads flows, applies
what they decide, and keeps the rule set in step with the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
import weakref
from pathlib import Path
from typing import NamedTuple

from mitmproxy import command, ctx, exceptions, flowfilter, http
from mitmproxy.net.http import url

from . import policy
from .policy import Decision, Kind
from .rules import RuleSet, RulesError, parse_file

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # a save is read after two quiet polls: well within a second
NOTE_LIMIT = 1000  # distinct notable events logged at info per rule set


def default_rules_path() -> str:
    """`rules.toml` in the current directory, else the one beside cors_addon.py."""
    if Path("rules.toml").exists():
        return "rules.toml"
    beside = Path(__file__).resolve().parent.parent / "rules.toml"
    return str(beside) if beside.exists() else "rules.toml"


def compile_filter(expression: str) -> flowfilter.TFilter:
    return flowfilter.parse(expression)  # raises ValueError with mitmproxy's own message


def file_signature(path: str) -> tuple[int, ...] | None:
    """What changes when a file is saved, in place or by rename; None if absent."""
    try:
        st = os.stat(path)  # follows a symlink: saves to its target count
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CorsAddon:
    def __init__(self) -> None:
        self.ruleset = RuleSet()
        self.enabled = True
        self.path = ""  # absolute path of the rules file being watched
        self.loaded_signature: tuple[int, ...] | None = None
        self.decisions: weakref.WeakKeyDictionary[http.HTTPFlow, Decision] = weakref.WeakKeyDictionary()
        self.noted: set[tuple[str, ...]] = set()
        self.watcher: asyncio.Task | None = None
        self.is_running = False
        self.unreachable = UnreachableUpstreams()

    # -- lifecycle ---------------------------------------------------------

    def load(self, loader) -> None:
        loader.add_option(
            "cors_rules",
            str,
            default_rules_path(),
            "CORS rules file (TOML), reloaded on every save.",
        )
        loader.add_option(
            "cors_enabled",
            bool,
            True,
            "Apply the CORS rules. When off, flows pass untouched (the rules file is still watched).",
        )

    def configure(self, updated: set[str]) -> None:
        if "cors_enabled" in updated:
            if self.enabled != ctx.options.cors_enabled:
                logger.info(f"cors: {'enabled' if ctx.options.cors_enabled else 'disabled'}")
            self.enabled = ctx.options.cors_enabled
        if "cors_rules" in updated:
            path = os.path.abspath(os.path.expanduser(ctx.options.cors_rules))
            if path != self.path or self.loaded_signature is None:
                self.path = path
                error = self.reload_from(path)
                if error and self.is_running:
                    # A new path set at run time (mitmweb's options, `set`): refuse it, keep the old one.
                    raise exceptions.OptionsError(error)
                # At startup the error logged above makes mitmproxy exit with it.

    def running(self) -> None:
        self.is_running = True
        if getattr(ctx.options, "connection_strategy", "lazy") == "eager":
            logger.info(
                "cors: connection_strategy is eager: in reverse mode and for HTTPS, mitmproxy connects "
                "to the API before a preflight can be answered, so preflights fail while the API is down; "
                "start with --set connection_strategy=lazy to answer them regardless"
            )
        if listens_on_all_interfaces():
            logger.warning(
                "cors: mitmproxy listens on all network interfaces: anyone who can reach this machine can "
                "use the proxy, and your CORS rules let their pages read the APIs they name; "
                "start it with --listen-host 127.0.0.1"
            )
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self.watch(), name="cors rules watcher")

    def done(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None

    # -- rules file --------------------------------------------------------

    def reload_from(self, path: str) -> str | None:
        """Read `path` and, if it is good, put its rules in force. Returns the
        error message when it is not (the rules in force stay)."""
        signature = file_signature(path)
        result = read_rules(path)
        return self.apply(path, signature, result)

    def apply(self, path: str, signature, result: RuleSet | str | None) -> str | None:
        self.loaded_signature = signature
        kept = f"keeping the {self.ruleset.summary()}" if self.ruleset.active else "no rules in force"
        if signature is None:
            logger.warning(f"cors: {path} not found; {kept}; it is read as soon as it appears")
            return None
        if result is None:
            logger.warning(f"cors: {path} is empty; {kept} (to switch everything off, write enabled = false)")
            return None
        if isinstance(result, str):
            logger.error(f"cors: {result}; {kept}")
            return result
        self.ruleset = result
        self.noted.clear()
        for warning in result.warnings:
            logger.warning(f"cors: {path}: {warning}")
        logger.info(f"cors: loaded {path}: {result.summary()}")
        return None

    async def watch(self) -> None:
        pending = None
        while True:
            await asyncio.sleep(POLL_SECONDS)
            path = self.path
            signature = file_signature(path)
            if signature == self.loaded_signature:
                pending = None
                continue
            if signature is None:
                self.apply(path, None, None)
                continue
            if signature != pending:
                pending = signature  # still being written: read it once it holds still
                continue
            pending = None
            result = await asyncio.to_thread(read_rules, path)
            if path == self.path:
                self.apply(path, signature, result)

    # -- commands ----------------------------------------------------------

    @command.command("cors.toggle")
    def toggle(self) -> None:
        """Switch the CORS rules on or off."""
        ctx.options.update(cors_enabled=not ctx.options.cors_enabled)

    @command.command("cors.reload")
    def reload(self) -> None:
        """Read the rules file again now."""
        self.reload_from(self.path)

    @command.command("cors.status")
    def status(self) -> str:
        """The rules file, whether the addon is on, and each rule with its hit count."""
        rs = self.ruleset
        lines = [f"cors: {'on' if self.enabled else 'off (cors_enabled = false)'}; {self.path}: {rs.summary()}"]
        for rule in rs.rules:
            state = "on " if rs.enabled and rule.enabled else "off"
            lines.append(f"  [{state}] {rule.name}: {rule.action}, {rs.hits[rule.index]} hits")
        text = "\n".join(lines)
        logger.info(text)
        return text

    # -- hooks -------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        ruleset = self.ruleset
        if not self.enabled or not ruleset.active:
            return
        request = flow.request
        rule = ruleset.match(host_names(request), request.path.partition("?")[0], flow)
        if rule is None:
            return
        cors = policy.CorsRequest.read(request.headers.fields)
        if cors.websocket:
            return
        ruleset.hits[rule.index] += 1
        decision = policy.decide(rule, request.method, cors)
        self.decisions[flow] = decision
        if decision.kind is Kind.DISALLOWED:
            self.note(
                ("origin", rule.name, decision.origin or ""),
                f"cors: rule {rule.name!r}: origin {decision.origin!r} is not in allow_origins; "
                f"{request.method} {request.pretty_url} passed through untouched",
            )
        elif decision.rewrites_origin:
            if rule.upstream_origin == "drop":
                del request.headers["origin"]
            else:
                request.headers["origin"] = rule.upstream_origin
        add_comment(flow, f"cors: rule {rule.name!r}: {decision.kind.value}")

    def request(self, flow: http.HTTPFlow):
        decision = self.decisions.get(flow)
        if decision is None or flow.response:
            return None
        if decision.kind is Kind.ANSWER_PREFLIGHT:
            flow.response = preflight_response(decision)
        elif self.unreachable.failures and decision.kind in (Kind.CORS, Kind.FORWARD_PREFLIGHT):
            address = (flow.request.host, flow.request.port)
            if address in self.unreachable.failures:
                return self.answer_if_unreachable(flow, decision, address)  # mitmproxy awaits it
        return None

    async def answer_if_unreachable(self, flow: http.HTTPFlow, decision: Decision, address: tuple[str, int]) -> None:
        """The upstream failed before: check it now, and if it is still down answer
        with a readable error the page's JavaScript can see (mitmproxy's own error
        page carries no CORS headers, so the browser would report a CORS failure)."""
        failure = await self.unreachable.check(address, flow.request.scheme == "https", flow.request.host)
        if failure is None:
            return
        if decision.kind is Kind.FORWARD_PREFLIGHT:
            flow.response = preflight_response(decision)  # so the actual request can show the error
            return
        flow.response = unreachable_response(decision, address, failure)
        add_comment(flow, f"cors: {address[0]}:{address[1]} unreachable ({failure.reason}): answered {failure.status}")

    # -- upstream connection events (they feed `unreachable`) --------------

    def server_connect_error(self, data) -> None:
        self.connection_failed(data.server, "connection failed", tls=False)

    def server_connected(self, data) -> None:
        if self.unreachable.failures and data.server.address:
            self.unreachable.reached(tuple(data.server.address[:2]), tls=False)

    def tls_failed_server(self, data) -> None:
        self.connection_failed(data.conn, "TLS handshake failed", tls=True)

    def connection_failed(self, server, fallback_reason: str, tls: bool) -> None:
        if server.address:
            address = tuple(server.address[:2])
            ruled = self.ruleset.covers(*address)
            self.unreachable.failed(address, server.error or fallback_reason, tls=tls, ruled=ruled)

    def tls_established_server(self, data) -> None:
        if self.unreachable.failures and data.conn.address:
            self.unreachable.reached(tuple(data.conn.address[:2]), tls=True)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        decision = self.decisions.get(flow)
        if decision is None or not decision.changes_response:
            return
        response = flow.response
        assert response is not None
        if response.status_code == 101:
            return
        fields, replaced = policy.response_fields(decision, response.headers.fields)
        response.headers.fields = fields
        if decision.kind is Kind.FORWARD_PREFLIGHT and not 200 <= response.status_code < 300:
            make_ok(response)
        elif not response.stream and is_event_stream(fields):
            response.stream = True  # an event stream never ends: buffering it would hold back every event
        if replaced and decision.origin:
            self.note(
                ("replaced", decision.rule.name, flow.request.pretty_host),
                f"cors: rule {decision.rule.name!r}: replaced the CORS headers {flow.request.pretty_host} "
                f"sent ({', '.join(replaced)})",
            )

    def note(self, key: tuple[str, ...], message: str) -> None:
        """Log a notable decision at info the first time, at debug after that."""
        if key in self.noted:
            logger.debug(message)
            return
        if len(self.noted) < NOTE_LIMIT:
            self.noted.add(key)
        logger.info(message)


def listens_on_all_interfaces() -> bool:
    options = ctx.options
    if getattr(options, "listen_host", "127.0.0.1") in ("", "0.0.0.0", "::"):
        return True
    # A mode may name its own address: reverse:http://x@0.0.0.0:8080
    return any(m.rsplit("@", 1)[-1].startswith(("0.0.0.0", "[::]", "::")) for m in getattr(options, "mode", ()) if "@" in m)


class Failure(NamedTuple):
    reason: str
    status: int  # 502, or 504 when the upstream did not answer in time


class UnreachableUpstreams:
    """Upstreams mitmproxy failed to reach, until a connection to them succeeds again.

    Only these are checked before a matched request is forwarded, so a healthy
    upstream costs no extra connection.
    """

    def __init__(self) -> None:
        self.failures: dict[tuple[str, int], tuple[str, bool]] = {}  # address -> (reason, over TLS)

    def failed(self, address: tuple[str, int], reason: str, tls: bool, ruled: bool) -> None:
        """`ruled`: a rule names this host, so the user should hear about it (else debug)."""
        if address not in self.failures:
            host, port = address
            logger.log(
                logging.WARNING if ruled else logging.DEBUG,
                f"cors: mitmproxy cannot reach {host}:{port}: {reason}. The browser reports this request as a "
                "CORS error, because mitmproxy's own error page carries no CORS headers; from now on, while "
                f"{host}:{port} stays down, the addon answers its matched requests with a readable "
                f"502 (or 504) saying why"
            )
        if len(self.failures) < 1000:
            self.failures[address] = (reason, tls)

    def reached(self, address: tuple[str, int], tls: bool) -> None:
        failure = self.failures.get(address)
        if failure is not None and (tls or not failure[1]):
            del self.failures[address]
            logger.info(f"cors: {address[0]}:{address[1]} is reachable again")

    async def check(self, address: tuple[str, int], use_tls: bool, server_name: str) -> Failure | None:
        """None if `address` can be reached now (and the failure is forgotten)."""
        reason, tls_failed = self.failures.get(address, ("", False))
        context = upstream_tls_context() if use_tls and tls_failed else None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(*address, ssl=context, server_hostname=server_name if context else None),
                PROBE_SECONDS,
            )
        except TimeoutError:
            return Failure(f"no answer within {PROBE_SECONDS:g} s", 504)
        except ssl.SSLError as e:
            return Failure(f"TLS handshake failed: {e.reason or e}", 502)
        except ConnectionRefusedError:
            return Failure("connection refused (is the API running?)", 502)
        except socket.gaierror as e:
            return Failure(f"DNS lookup of {address[0]} failed: {e.strerror}", 502)
        except OSError as e:
            return Failure(e.strerror or str(e), 502)
        writer.close()
        self.failures.pop(address, None)
        logger.info(f"cors: {address[0]}:{address[1]} is reachable again")
        return None


PROBE_SECONDS = 3.0


def upstream_tls_context() -> ssl.SSLContext:
    """Verification as mitmproxy's options set it, for checking an upstream whose TLS failed."""
    options = ctx.options
    if getattr(options, "ssl_insecure", False):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = getattr(options, "ssl_verify_upstream_trusted_ca", None) or None
    cadir = getattr(options, "ssl_verify_upstream_trusted_confdir", None) or None
    return ssl.create_default_context(cafile=cafile, capath=cadir)


def unreachable_response(decision: Decision, address: tuple[str, int], failure: Failure) -> http.Response:
    host, port = address
    body = (
        f"cors-addon: mitmproxy could not reach {host}:{port}: {failure.reason}.\n"
        "This answer comes from the proxy, not from the API; it was checked again just now.\n"
    ).encode()
    fields = ((b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", str(len(body)).encode()))
    fields, _ = policy.response_fields(decision, fields)
    response = http.Response.make(failure.status, body)
    response.headers.fields = fields
    return response


def read_rules(path: str) -> RuleSet | str | None:
    """The rule set in `path`, None when the file is empty, or an error message."""
    try:
        return parse_file(path, compile_filter)
    except RulesError as e:
        return str(e)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{path}: cannot read the rules file: {e.strerror or e}"


def host_names(request: http.Request) -> tuple[tuple[str, int], ...]:
    """The (host, port) the browser asked for and the destination's, for matching."""
    destination = (request.host, request.port)
    authority = request.host_header
    if not authority:
        return (destination,)
    host, colon, port = authority.rpartition(":")
    if not colon or "]" in port:  # no port, or the end of a bare [IPv6]
        host, port = authority, ""
    if not port:
        asked = (host, url.default_port(request.scheme) or request.port)
    elif port.isdigit():
        asked = (host, int(port))
    else:
        return (destination,)
    return (asked,) if asked == destination else (asked, destination)


# A 204 built once and copied per answer: Response.make() runs mitmproxy's type
# checks on every call, which cost more than everything else the addon does per flow.
_NO_CONTENT = http.Response.make(204)
del _NO_CONTENT.headers["content-length"]  # RFC 9110: no Content-Length on a 204


def preflight_response(decision: Decision) -> http.Response:
    response = shallow_copy(_NO_CONTENT)
    response.data = shallow_copy(_NO_CONTENT.data)
    headers = object.__new__(http.Headers)  # fields from policy are bytes pairs: skip re-checking them
    headers.fields = policy.preflight_fields(decision)
    response.data.headers = headers
    response.timestamp_start = response.timestamp_end = time.time()
    return response


def shallow_copy(obj):
    """copy.copy for plain objects, without copyreg's detour (several µs per call)."""
    clone = object.__new__(type(obj))
    clone.__dict__.update(obj.__dict__)
    return clone


def make_ok(response: http.Response) -> None:
    """Turn a refused forwarded preflight into a 204: a preflight needs an ok
    status, and the browser never reads its body."""
    response.status_code = 204
    response.reason = "No Content"
    for name in ("content-length", "transfer-encoding", "content-type", "content-encoding"):
        response.headers.pop(name, None)
    response.stream = discard_body


def is_event_stream(fields: policy.Fields) -> bool:
    for name, value in fields:
        if name.lower() == b"content-type":
            return value.lstrip().lower().startswith(b"text/event-stream")
    return False


def discard_body(chunk: bytes) -> bytes:
    return b""


def add_comment(flow: http.HTTPFlow, text: str) -> None:
    flow.comment = f"{flow.comment}\n{text}" if flow.comment else text
