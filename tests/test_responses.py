"""The responses the addon builds itself, checked against mitmproxy's public API on the running
mitmproxy version: `preflight_response` reaches into mitmproxy's internals, so a change there
must break this test, not a user's proxy."""

from __future__ import annotations

from mitmproxy import http

from corsaddon.responses import make_ok, preflight_response

FIELDS = (
    (b"Access-Control-Allow-Origin", b"http://localhost:3000"),
    (b"Access-Control-Allow-Methods", b"PUT"),
    (b"Vary", b"Origin"),
)


def made(fields) -> http.Response:
    """What Response.make gives, without the Content-Length that a 204 must not carry (RFC 9110)."""
    response = http.Response.make(204, b"", fields)
    del response.headers["content-length"]
    return response


def test_preflight_response_equals_what_response_make_builds():
    ours, theirs = preflight_response(FIELDS), made(FIELDS)
    assert (ours.http_version, ours.status_code, ours.reason, ours.content, ours.trailers) == (
        theirs.http_version, theirs.status_code, theirs.reason, theirs.content, theirs.trailers)  # fmt: skip
    assert ours.headers == theirs.headers and ours.headers.fields == FIELDS
    assert isinstance(ours.headers, http.Headers) and ours.headers["vary"] == "Origin"
    assert ours.timestamp_start is not None and ours.timestamp_end >= ours.timestamp_start
    assert set(vars(ours.data)) == set(vars(theirs.data))
    assert ours.get_state() | {"timestamp_start": 0, "timestamp_end": 0} == theirs.get_state() | {
        "timestamp_start": 0, "timestamp_end": 0}  # fmt: skip


def test_preflight_responses_share_nothing_that_changes():
    first = preflight_response(FIELDS)
    first.headers["X-Changed"] = "1"
    first.status_code = 200
    second = preflight_response(FIELDS)
    assert second.status_code == 204 and "X-Changed" not in second.headers
    assert second.headers.fields == FIELDS


def test_a_refused_preflight_becomes_an_ok_answer_without_a_body():
    response = http.Response.make(405, b"Method Not Allowed", {"Content-Type": "text/plain", "Allow": "GET"})
    make_ok(response)
    assert (response.status_code, response.reason) == (204, "No Content")
    assert list(response.headers.items()) == [("Allow", "GET")]
    assert response.stream(b"any chunk") == b""
