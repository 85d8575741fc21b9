"""Rule key `cookies`: the API's `Set-Cookie` rewritten so that the browser keeps
the session cookie (see `setcookie` for what changes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mitmproxy import http
from mitmproxy.proxy.mode_specs import ReverseMode

from .policy import Decision
from .quote import clip, quote
from .schema import Cookies
from .setcookie import cookie_name, needs_secure, rewrite

if TYPE_CHECKING:
    from .shared import Shared


class SessionCookies:
    """Called at the end of the main addon's `responseheaders`, on the flows a rule decided."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared

    def apply(self, flow: http.HTTPFlow, decision: Decision) -> None:
        if decision.rule.cookies is Cookies.KEEP or flow.response is None:
            return
        fields = flow.response.headers.fields
        if not any(name.lower() == b"set-cookie" for name, _ in fields):
            return
        mode = decision.rule.cookies
        # Where the browser reached the proxy: in reverse mode on localhost, plain HTTP unless it used https://.
        over_https = flow.client_conn.tls_established
        rewritten = tuple(
            (name, rewrite(value, mode, over_https)) if name.lower() == b"set-cookie" else (name, value)
            for name, value in fields
        )
        if rewritten != fields:
            flow.response.headers.fields = rewritten
            self.shared.notes.append(flow, f"Set-Cookie rewritten (cookies = {mode.value})")
        if mode is Cookies.SAME_SITE and not over_https:
            for name, value in fields:
                if name.lower() == b"set-cookie" and needs_secure(value):
                    self.note_secure_only(flow, decision, cookie_name(value))

    def note_secure_only(self, flow: http.HTTPFlow, decision: Decision, name: str) -> None:
        host, cookie = clip(flow.request.pretty_host), quote(name)
        client = flow.client_conn
        if isinstance(client.proxy_mode, ReverseMode) and client.sockname:
            where = f"in reverse mode open https://localhost:{client.sockname[1]}"
        else:
            where = f"call https://{host}"
        self.shared.notices.note(
            ("secure-only cookie", decision.rule.name, cookie),
            f"cors: rule {decision.rule.label}: the cookie {cookie} from {host} keeps Secure: a cookie named "
            "__Secure-… or __Host-… cannot live without it, and browsers refuse Secure cookies over plain "
            f"HTTP (Safari even on localhost); call the proxy over HTTPS: {where}, where mitmproxy answers TLS "
            "with its own CA (which make browser trusts), from a page served over HTTPS too (http:// and "
            "https:// are different sites)",
        )
