"""Driving the addon's hooks in-process, as mitmproxy would (for the tests and `make bench`)."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.test import tflow

LOCAL = "http://localhost:3000"  # the page's origin throughout: a dev server, allowed by the default rules
API = "http://api.example.com/v1/users"


def make_flow(method: str = "GET", url: str = API, headers=(), host_header: str | None = None) -> http.HTTPFlow:
    """A live flow whose request has these headers (pairs of str or bytes) and no response yet."""
    f = tflow.tflow()
    f.request = http.Request.make(method, url, b"", [(_raw(k), _raw(v)) for k, v in headers])
    if host_header:
        f.request.host_header = host_header
    f.response = None
    return f


def _raw(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def upstream_response(status: int = 200, headers=(), body: bytes = b'{"ok": true}') -> http.Response:
    """What the API answers: these headers (pairs of str or bytes), Content-Length added. As mitmproxy
    hands it to `responseheaders`: its body has not arrived yet, so it has no `timestamp_end`."""
    response = http.Response.make(status, body, [(_raw(k), _raw(v)) for k, v in headers])
    response.timestamp_end = None
    return response


def run_hooks(addon, flow: http.HTTPFlow, response: http.Response | None = None) -> http.HTTPFlow:
    """The addon's hooks in mitmproxy's order. `response` plays the API's answer,
    used only when the addon did not answer the request itself."""
    addon.requestheaders(flow)
    request = getattr(addon, "request", None)
    if request is not None:
        request(flow)
    if flow.response is None and response is not None:
        flow.response = response
    if flow.response is not None:
        addon.responseheaders(flow)
    return flow
