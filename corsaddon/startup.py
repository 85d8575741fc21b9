"""What the addon says once the proxy runs: mitmproxy settings that work against it, and a proxy
that anyone on the network can use."""

from __future__ import annotations

import logging

from mitmproxy import ctx

logger = logging.getLogger(__name__)


def log_startup_hints() -> None:
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


def listens_on_all_interfaces() -> bool:
    options = ctx.options
    if getattr(options, "listen_host", "127.0.0.1") in ("", "0.0.0.0", "::"):
        return True
    # A mode may name its own address: reverse:http://x@0.0.0.0:8080
    return any(
        m.rsplit("@", 1)[-1].startswith(("0.0.0.0", "[::]", "::")) for m in getattr(options, "mode", ()) if "@" in m
    )
