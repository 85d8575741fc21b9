"""mitmproxy script for the tests' mitmdump: refuse every server connection that is not on loopback.

The tests run on machines whose only network is loopback, and Chromium sends its own background
requests (sign-in, updates) through the proxy. mitmproxy calls `server_connect` just before it
opens a server connection (mitmproxy 11 and 12 alike: `ConnectionHandler.open_connection` in
proxy/server.py), after the request hooks (map_remote) and reverse mode have set the address and
before any name is resolved (asyncio.open_connection resolves it afterwards). An error set there
means the connection is never attempted: mitmproxy logs "server connection to ... killed before
connect" and answers the request with its own 502.

Only 127.0.0.0/8, ::1 and the name `localhost` pass; every other name is refused unresolved.
"""

from __future__ import annotations

import ipaddress
import logging

from mitmproxy.proxy import server_hooks

logger = logging.getLogger(__name__)

MAX_LOGGED = 50  # refused hosts named in the log; after that, one line says the rest go unlogged
MAX_HOST = 100  # characters of a host quoted in the log
REFUSED = "refused by the tests' loopback guard: {host} is not on loopback"

_logged: set[str] = set()


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`; never a name that would have to be resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def server_connect(data: server_hooks.ServerConnectionHookData) -> None:
    server = data.server
    if server.error or not server.address:
        return  # refused already (mitmproxy's self-connect check), or mitmproxy refuses it itself
    host, port = server.address[:2]
    if is_loopback(str(host)):
        return
    shown = f"{str(host)[:MAX_HOST]}:{port}"
    server.error = REFUSED.format(host=shown)
    if shown in _logged or len(_logged) > MAX_LOGGED:
        return
    _logged.add(shown)
    if len(_logged) > MAX_LOGGED:
        logger.warning("loopback guard: more hosts refused; no more of them are logged")
    else:
        logger.warning(f"loopback guard: refused a connection to {shown} (not on loopback)")
