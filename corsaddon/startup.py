"""What the addon says once the proxy runs: mitmproxy settings that work against it, and a proxy
that anyone on the network can use."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable

from mitmproxy import ctx
from mitmproxy.proxy.mode_specs import ProxyMode

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
    """Whether some proxy mode listens on every interface: the mode's own address
    (`regular@0.0.0.0:8080`), else --listen-host, as mitmproxy itself decides it."""
    options = ctx.options
    if not getattr(options, "server", True):  # --no-server: nothing listens
        return False
    return any(is_every_interface(host) for host in listen_hosts(options.mode, options.listen_host))


def listen_hosts(modes: Iterable[str], listen_host: str) -> list[str]:
    """The address each mode that opens a socket listens on ("" is every interface), as mitmproxy's
    servers take it: `mode.listen_host(options.listen_host)`. Local and tun modes open no socket."""
    hosts = []
    for spec in modes:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError:  # mitmproxy refuses it at startup
            continue
        if mode.default_port is not None:
            hosts.append(mode.listen_host(listen_host))
    return hosts


def is_every_interface(host: str) -> bool:
    """ "", 0.0.0.0 or :: in any spelling ("0", "::0"): a socket bound to it listens on every interface."""
    if not host:
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        pass
    try:
        return socket.inet_aton(host) == bytes(4)  # the resolver's shorthands: "0", "0x0"
    except (OSError, ValueError):  # a name: it resolves to some address of this machine
        return False
