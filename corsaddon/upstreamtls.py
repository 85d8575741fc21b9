"""Rule key `upstream_tls_verify = false`: accept any certificate from that rule's hosts.

For an HTTPS API on the developer's own machine with a self-signed certificate
(mkcert, `dotnet dev-certs`, Vite's basic-ssl). Only the connections to the
rule's hosts skip verification: mitmproxy's global `ssl_insecure` stays off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mitmproxy import ctx, tls
from OpenSSL import SSL

if TYPE_CHECKING:
    from .shared import Shared

logger = logging.getLogger(__name__)


class UpstreamTlsVerify:
    """Called from the main addon's `tls_start_server`."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def tls_start_server(self, data: tls.TlsData) -> None:
        ruleset = self.shared.ruleset
        if not ruleset.skips_some_tls_verify or data.ssl_conn is not None or data.is_dtls:
            return
        server = data.conn
        if not server.address:
            return
        host, port = server.address[:2]
        names = ((host, port),) if not server.sni or server.sni == host else ((host, port), (server.sni, port))
        if ruleset.skips_tls_verify(names):
            start_tls_without_verify(data)


def start_tls_without_verify(data: tls.TlsData) -> None:
    """mitmproxy's own TLS setup for this server connection, with certificate verification off.

    Script addons run before mitmproxy's `tlsconfig` addon, which leaves alone a
    connection an addon has already set up: so this runs tlsconfig's hook (every
    option it honours, SNI and ALPN included) and then relaxes that one connection.
    tests/test_upstreamtls.py checks this on each supported mitmproxy.
    """
    tlsconfig = ctx.master.addons.get("tlsconfig")
    if tlsconfig is None:
        return
    tlsconfig.tls_start_server(data)
    if data.ssl_conn is not None:
        data.ssl_conn.set_verify(SSL.VERIFY_NONE)
