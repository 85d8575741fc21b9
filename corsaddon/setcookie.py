"""Rewriting a `Set-Cookie` value for rule key `cookies` (pure: no mitmproxy).

"same-site": the cookie is for the host the browser called, not the API's real
domain: `Domain` goes, and `Secure` goes only where the browser could not store
it (plain HTTP to a host that is not local). "cross-site": `SameSite=None;
Secure`, for browsers that still send third-party cookies.
"""

from __future__ import annotations

import ipaddress

from .patterns import MAX_HOST, normalize_host
from .schema import Cookies


def rewrite(value: bytes, mode: Cookies, secure_context: bool) -> bytes:
    """`value` rewritten for `mode`; `secure_context`: the browser's side is HTTPS or a local host.
    One pass over the value's attributes."""
    name_value, *attributes = value.split(b";")
    kept: list[bytes] = []
    drop_secure = mode is Cookies.SAME_SITE and not secure_context
    for attribute in attributes:
        key = attribute.split(b"=", 1)[0].strip().lower()
        if key == b"domain" and mode is Cookies.SAME_SITE:
            continue
        if key == b"secure" and (drop_secure or mode is Cookies.CROSS_SITE):
            continue
        if key == b"samesite":
            if mode is Cookies.CROSS_SITE:
                continue
            if drop_secure and attribute.split(b"=", 1)[-1].strip().lower() == b"none":
                continue  # SameSite=None without Secure is refused; the default (Lax) suits same-site calls
        kept.append(attribute)
    if mode is Cookies.CROSS_SITE:
        kept += (b" SameSite=None", b" Secure")
    return b";".join((name_value, *kept))


def is_local_host(host: str) -> bool:
    """Hosts browsers treat as secure contexts over plain HTTP (and so keep `Secure` cookies from)."""
    if len(host) > MAX_HOST:
        return False
    host = normalize_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
