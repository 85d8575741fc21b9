"""Rewriting a `Set-Cookie` value for rule key `cookies` (pure: no mitmproxy).

"same-site": the cookie is for the host the browser called, not the API's real
domain: `Domain` goes, and `Secure` goes wherever the browser reached the proxy
over plain HTTP, localhost included: Safari refuses `Secure` cookies from
`http://localhost` (WebKit bug 281149), where Chromium and Firefox keep them.
"cross-site": `SameSite=None; Secure`, for browsers that still send third-party
cookies.
"""

from __future__ import annotations

from .schema import Cookies

# Browsers refuse a cookie with one of these name prefixes unless it is Secure (matched case-insensitively).
SECURE_PREFIXES = (b"__secure-", b"__host-")


def rewrite(value: bytes, mode: Cookies, over_https: bool) -> bytes:
    """`value` rewritten for `mode`; `over_https`: the browser reached the proxy over HTTPS.
    One pass over the value's attributes."""
    name_value, *attributes = value.split(b";")
    kept: list[bytes] = []
    drop_secure = mode is Cookies.SAME_SITE and not over_https and not needs_secure(name_value)
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


def needs_secure(name_value: bytes) -> bool:
    """Whether the cookie (`name=value`, or the whole Set-Cookie value) is named `__Secure-…` or
    `__Host-…`: such a cookie cannot live without `Secure`, so over plain HTTP it keeps it."""
    return name_value[:16].lstrip().lower().startswith(SECURE_PREFIXES)


def cookie_name(value: bytes) -> str:
    """The cookie's name, for a message (the caller quotes it)."""
    return value.split(b";", 1)[0].split(b"=", 1)[0].strip().decode("latin-1")
