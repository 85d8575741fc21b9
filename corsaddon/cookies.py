"""Rule key `cookies`: the API's `Set-Cookie` rewritten so that the browser keeps
the session cookie (see `setcookie` for what changes)."""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import http
from mitmproxy.proxy.mode_specs import ReverseMode

from .flownotes import FlowNotes
from .policy import Decision
from .schema import Cookies
from .setcookie import is_local_host, rewrite


class SessionCookies:
    """Runs after the main addon's `responseheaders`, on the flows a rule decided."""

    def __init__(self, decision_of: Callable[[http.HTTPFlow], Decision | None], notes: FlowNotes) -> None:
        self.decision_of = decision_of
        self.notes = notes

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        decision = self.decision_of(flow)
        if decision is None or decision.rule.cookies is Cookies.KEEP or flow.response is None:
            return
        fields = flow.response.headers.fields
        if not any(name.lower() == b"set-cookie" for name, _ in fields):
            return
        mode = decision.rule.cookies
        secure = browser_side_is_secure(flow)
        rewritten = tuple(
            (name, rewrite(value, mode, secure)) if name.lower() == b"set-cookie" else (name, value)
            for name, value in fields
        )
        if rewritten != fields:
            flow.response.headers.fields = rewritten
            self.notes.append(flow, f"Set-Cookie rewritten (cookies = {mode.value})")


def browser_side_is_secure(flow: http.HTTPFlow) -> bool:
    """Whether the browser reached the proxy over HTTPS, or on a host it treats as secure (localhost)."""
    client = flow.client_conn
    if client.tls_established:
        return True
    if isinstance(client.proxy_mode, ReverseMode):
        # mitmproxy has replaced the Host header with the API's: where the browser connected tells
        return bool(client.sockname) and is_local_host(str(client.sockname[0]))
    return is_local_host(flow.request.pretty_host)
