"""Upstream health: APIs mitmproxy failed to reach, and a readable 502/504 for them.

mitmproxy answers a request it cannot forward with its own error page, which no
hook sees and which carries no CORS headers, so the browser reports a CORS error
and hides the cause. `UpstreamHealth` is a part the main addon calls: from mitmproxy's
connection hooks it notes which upstreams failed; while one stays down, the flow hooks
ask it to check that upstream before a matched request goes there, and it answers with
a readable error the page's JavaScript can see. A healthy upstream is never checked.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import TYPE_CHECKING, NamedTuple

from mitmproxy import ctx, http

from . import policy
from .patterns import MAX_HOST
from .policy import Decision, Kind
from .quote import clip
from .responses import preflight_response, text_response

if TYPE_CHECKING:
    from .shared import Shared

logger = logging.getLogger(__name__)

TRUST_FIXES = (
    "set upstream_tls_verify = false in the rule for {host}, or start mitmproxy with "
    "--set ssl_verify_upstream_trusted_ca=PATH (the API's CA certificate, e.g. mkcert's rootCA.pem)"
)
PROBE_SECONDS = 3.0  # longer than this without an answer: 504
MAX_TRACKED = 1000  # upstreams remembered as down at once

Address = tuple[str, int]


class ConnectFailure(NamedTuple):
    """Why mitmproxy could not reach an upstream."""

    reason: str
    over_tls: bool  # the TLS handshake failed (the TCP connection worked)


class ProbeFailure(NamedTuple):
    """Why the upstream could not be reached just now, and the status that says so."""

    reason: str
    status: int  # 502, or 504 when the upstream did not answer in time
    untrusted: bool = False  # the upstream answered with a certificate mitmproxy does not trust


class UpstreamHealth:
    """Upstreams mitmproxy failed to reach, until a connection to them succeeds again.

    A failure is worth a warning when a rule in force names the host (else it is
    logged at debug); the probe checks the certificate unless the rule says not to
    (rule key upstream_tls_verify).
    """

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.failures: dict[Address, ConnectFailure] = {}

    def is_down(self, address: Address) -> bool:
        return address in self.failures

    # -- mitmproxy's connection hooks, called by the main addon's --------------

    def server_connect_error(self, data) -> None:
        self._failed(data.server, "connection failed", over_tls=False)

    def tls_failed_server(self, data) -> None:
        self._failed(data.conn, "TLS handshake failed", over_tls=True)

    def server_connected(self, data) -> None:
        if self.failures and data.server.address:
            self._reached(_address(data.server), over_tls=False)

    def tls_established_server(self, data) -> None:
        if self.failures and data.conn.address:
            self._reached(_address(data.conn), over_tls=True)

    def _failed(self, server, fallback_reason: str, over_tls: bool) -> None:
        if not server.address:
            return
        address = _address(server)
        if len(address[0]) > MAX_HOST:
            return  # no DNS name is that long: mitmproxy's own error page says enough
        host, port = clip(address[0]), address[1]
        reason = clip(server.error or fallback_reason, 300)
        if address not in self.failures:
            level = logging.WARNING if self.shared.ruleset.covers(host, port) else logging.DEBUG
            if reason.startswith("Certificate verify failed"):
                logger.log(
                    level,
                    f"cors: mitmproxy does not trust the certificate of {host}:{port} ({reason}) and refused "
                    "the request; the browser reports it as a CORS error. To accept the certificate, "
                    + TRUST_FIXES.format(host=host)
                    + ". Meanwhile the addon answers the matched requests to it with a readable 502 saying this",
                )
            else:
                logger.log(
                    level,
                    f"cors: mitmproxy cannot reach {host}:{port}: {reason}. The browser "
                    "reports this request as a CORS error, because mitmproxy's own error page carries no CORS "
                    f"headers; from now on, while {host}:{port} stays down, the addon answers its matched requests "
                    "with a readable 502 (or 504) saying why",
                )
        if len(self.failures) < MAX_TRACKED:
            self.failures[address] = ConnectFailure(reason, over_tls)

    def _reached(self, address: Address, over_tls: bool) -> None:
        failure = self.failures.get(address)
        # A TCP connection proves nothing about a TLS failure; a TLS handshake proves both.
        if failure is not None and (over_tls or not failure.over_tls):
            self._forget(address)

    def _forget(self, address: Address) -> None:
        """`address` was reached: no longer down."""
        if self.failures.pop(address, None) is not None:
            logger.info(f"cors: {clip(address[0])}:{address[1]} is reachable again")

    # -- called by the flow hooks ------------------------------------------

    async def answer_if_down(self, flow: http.HTTPFlow, decision: Decision) -> str | None:
        """Check the flow's upstream, which failed before. If it is still down, answer the flow
        and return what happened, for its comment: a forwarded preflight gets the usual preflight
        answer (so the actual request can show the error), anything else a readable error.
        None: the upstream is reachable again."""
        request = flow.request
        address = (request.host, request.port)
        failure = await self.probe(address, request.scheme == "https", request.host)
        if failure is None:
            return None
        where = f"{clip(address[0])}:{address[1]}"
        if decision.kind is Kind.FORWARD_PREFLIGHT:
            flow.response = preflight_response(policy.preflight_fields(decision))
            return f"preflight answered: {where} is down ({failure.reason})"
        flow.response = unreachable_response(decision, address, failure)
        reason = failure.reason if failure.untrusted else f"unreachable ({failure.reason})"
        return f"answered {failure.status}: {where} {reason}"

    async def probe(self, address: Address, use_tls: bool, server_name: str) -> ProbeFailure | None:
        """None if `address` can be reached now (and the failure is forgotten)."""
        known = self.failures.get(address)
        context = None
        if use_tls and known is not None and known.over_tls:
            context = upstream_tls_context(verify=not self.shared.ruleset.skips_tls_verify((address,)))
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(*address, ssl=context, server_hostname=server_name if context else None),
                PROBE_SECONDS,
            )
        except TimeoutError:
            return ProbeFailure(f"no answer within {PROBE_SECONDS:g} s", 504)
        except ssl.SSLCertVerificationError as e:
            return ProbeFailure(f"certificate not trusted: {e.verify_message or e.reason}", 502, untrusted=True)
        except ssl.SSLError as e:
            return ProbeFailure(f"TLS handshake failed: {e.reason or e}", 502)
        except ConnectionRefusedError:
            return ProbeFailure("connection refused (is the API running?)", 502)
        except socket.gaierror as e:
            return ProbeFailure(f"DNS lookup of {clip(address[0])} failed: {e.strerror}", 502)
        except OSError as e:
            return ProbeFailure(e.strerror or str(e), 502)
        writer.close()
        self._forget(address)
        return None


def _address(connection) -> Address:
    return tuple(connection.address[:2])  # type: ignore[return-value]


def upstream_tls_context(verify: bool = True) -> ssl.SSLContext:
    """Verification as mitmproxy's options (and the rule) set it, for checking an upstream whose TLS failed."""
    options = ctx.options
    if not verify or getattr(options, "ssl_insecure", False):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cafile = getattr(options, "ssl_verify_upstream_trusted_ca", None) or None
    cadir = getattr(options, "ssl_verify_upstream_trusted_confdir", None) or None
    return ssl.create_default_context(cafile=cafile, capath=cadir)


def unreachable_response(decision: Decision, address: Address, failure: ProbeFailure) -> http.Response:
    host, port = clip(address[0]), address[1]
    if failure.untrusted:
        text = (
            f"cors-addon: mitmproxy does not trust the certificate of {host}:{port}: {failure.reason}.\n"
            "This answer comes from the proxy, not from the API; it was checked again just now.\n"
            f"To accept the certificate, {TRUST_FIXES.format(host=host)}.\n"
        )
    else:
        text = (
            f"cors-addon: mitmproxy could not reach {host}:{port}: {failure.reason}.\n"
            "This answer comes from the proxy, not from the API; it was checked again just now.\n"
        )
    fields = ((b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", str(len(text.encode())).encode()))
    fields, _, _ = policy.response_fields(decision, fields)
    return text_response(failure.status, text, fields)
