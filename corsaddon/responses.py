"""Responses the addon gives or reshapes itself (the locally answered preflight,
a readable error, a refused preflight turned into an ok one).

`preflight_response` is the one place that reaches into mitmproxy's internals
(for the hook-cost target); tests/test_responses.py proves, on each supported
mitmproxy, that what it builds equals what `Response.make` would.
"""

from __future__ import annotations

import time

from mitmproxy import http

from .headerfields import Fields

# A 204 built once and copied per answer: Response.make() runs mitmproxy's type
# checks on every call, which cost more than everything else the addon does per flow.
_NO_CONTENT = http.Response.make(204)
del _NO_CONTENT.headers["content-length"]  # RFC 9110: no Content-Length on a 204


def preflight_response(fields: Fields) -> http.Response:
    """A 204 with these header fields: `Response.make(204, b"", fields)` without
    its Content-Length, at a tenth of the cost."""
    response = _shallow_copy(_NO_CONTENT)
    response.data = _shallow_copy(_NO_CONTENT.data)
    headers = object.__new__(http.Headers)  # fields from policy are bytes pairs: skip re-checking them
    headers.fields = fields
    response.data.headers = headers
    response.timestamp_start = response.timestamp_end = time.time()
    return response


def _shallow_copy(obj):
    """copy.copy for plain objects, without copyreg's detour (several µs per call)."""
    clone = object.__new__(type(obj))
    clone.__dict__.update(obj.__dict__)
    return clone


def text_response(status: int, text: str, fields: Fields) -> http.Response:
    """A plain-text answer with exactly these header fields (Content-Type and Content-Length included)."""
    response = http.Response.make(status, text.encode())
    response.headers.fields = fields
    return response


def make_ok(response: http.Response) -> None:
    """Turn a refused forwarded preflight into a 204: a preflight needs an ok
    status, and the browser never reads its body."""
    response.status_code = 204
    response.reason = "No Content"
    for name in ("content-length", "transfer-encoding", "content-type", "content-encoding"):
        response.headers.pop(name, None)
    response.stream = discard_body


def discard_body(chunk: bytes) -> bytes:
    return b""
