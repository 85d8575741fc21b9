"""Property tests: random rules, requests and upstream responses through the addon's hooks.

The oracle for "is this response readable by the page" is the Fetch standard's CORS check,
written out here independently of the code under test."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import http

from corsaddon.addon import CorsAddon
from corsaddon.parsing import parse
from corsaddon.rules import RuleSet
from corsaddon.rulesfile import compile_filter

from .flows import LOCAL, make_flow, run_hooks, upstream_response

ORIGINS = [
    "http://localhost:3000", "https://app.example.com", "https://a.b.example.com", "null",
    "http://127.0.0.1:5173", "http://[::1]:8080", "https://evil.example",
]  # fmt: skip
BAD_ORIGINS = [
    "", " ", "http://localhost:3000/", "HTTP://LOCALHOST:3000", "http://localhost:80", "https://x:443",
    "http://localhost:3000\r\nSet-Cookie: a=b", "http://a\x00b", "null ", "http://é.example", "x" * 70_000,
]  # fmt: skip
PATTERNS = ["*", "null", "http://localhost:*", "https://*.example.com", "https://app.example.com", "http://127.0.0.1:*"]
TOKENS = ["GET", "PUT", "DELETE", "PATCH", "X-Custom", "Authorization", "Content-Type", "x-request-id"]
NAMES = [
    "Content-Type", "Vary", "vary", "Access-Control-Allow-Origin", "access-control-allow-credentials",
    "Access-Control-Expose-Headers", "Set-Cookie", "X-Request-Id", "ETag", "Cache-Control",
]  # fmt: skip
SAFELISTED_METHODS = {"GET", "HEAD", "POST"}
SAFELISTED_HEADERS = {"accept", "accept-language", "content-language", "content-type", "range"}

any_text = st.text(st.characters(codec="latin-1"), max_size=30)
# Upstream values never hold CR, LF or NUL: the HTTP parser rejects them before any hook runs.
clean_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\0"), max_size=30)
header_value = st.one_of(
    st.sampled_from(["", "*", "Origin", "Accept-Encoding, Origin", " , ", "true", "null"]), clean_text
)


@st.composite
def rules(draw):
    def listed(options):
        return draw(st.one_of(st.just('"*"'), st.lists(st.sampled_from(options), unique=True).map(_toml_list)))

    keys = {
        "action": draw(st.sampled_from(['"inject"', '"inject"', '"strip"'])),
        "allow_origins": _toml_list(draw(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3, unique=True))),
        "allow_credentials": draw(st.sampled_from(["true", "false"])),
        "allow_methods": listed(TOKENS[:4]),
        "allow_headers": listed(TOKENS[4:]),
        "expose_headers": listed(["X-Request-Id", "ETag"]),
        "preflight": draw(st.sampled_from(['"answer"', '"forward"'])),
        "allow_private_network": draw(st.sampled_from(["true", "false"])),
        "max_age": str(draw(st.integers(0, 100_000))),
    }
    body = "\n".join(f"{k} = {v}" for k, v in keys.items())
    return parse(f'[[rules]]\nhosts = ["api.example.com"]\n{body}\n', compile_filter).rules[0]


def _toml_list(items):
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT", "OPTIONS", "OPTIONS", "DELETE"]),
        "origins": st.lists(st.one_of(st.sampled_from(ORIGINS), st.sampled_from(BAD_ORIGINS), any_text), max_size=2),
        "acrm": st.one_of(st.none(), st.sampled_from(TOKENS[:4] + ["get", "PUT\r\nX: y", "", "GE T"]), any_text),
        "acrh": st.one_of(
            st.none(),
            st.lists(st.sampled_from([t.lower() for t in TOKENS[4:]]), max_size=3).map(",".join),
            st.sampled_from(["x-a,,x-b", "x-a\r\nx-b: c", "x a", "x" * 5000]),
            any_text,
        ),
        "pna": st.booleans(),
    }
)
responses = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 204, 302, 404, 405, 500]),
        "fields": st.lists(st.tuples(st.sampled_from(NAMES), header_value), max_size=8),
        "content_type": st.sampled_from(["application/json", "text/event-stream", "text/html"]),
    }
)


def encode(value: str) -> bytes:
    return value.encode("latin-1")


def run_flow(rule, request, response):
    addon = CorsAddon()
    addon.put_in_force(RuleSet([rule]))
    fields = [(b"Host", b"api.example.com")]
    fields += [(b"Origin", encode(o)) for o in request["origins"]]
    if request["acrm"] is not None:
        fields.append((b"Access-Control-Request-Method", encode(request["acrm"])))
    if request["acrh"] is not None:
        fields.append((b"Access-Control-Request-Headers", encode(request["acrh"])))
    if request["pna"]:
        fields.append((b"Access-Control-Request-Private-Network", b"true"))
    flow = make_flow(request["method"], "https://api.example.com/v1/x", fields)
    sent_request = flow.request.headers.fields
    upstream_fields = tuple(
        [(b"Content-Type", encode(response["content_type"]))] + [(encode(n), encode(v)) for n, v in response["fields"]]
    )
    upstream = upstream_response(response["status"], (), b"body")
    upstream.headers.fields = upstream_fields
    run_hooks(addon, flow, upstream)
    answered_locally = flow.response is not upstream
    return addon, flow, sent_request, upstream_fields, answered_locally


def origin_allowed_by(patterns, origin, credentials) -> bool:
    """Independent oracle: does an allow_origins list admit this (well-formed) origin?"""
    if origin == "null":
        return "null" in patterns or ("*" in patterns and not credentials)
    if "*" in patterns:
        return True
    return any(re.fullmatch(re.escape(p).replace(r"\*", "[^/]*"), origin) for p in patterns if p not in ("*", "null"))


def cors_check(headers, origin, credentials) -> bool:
    """The Fetch standard's CORS check."""
    allow = headers.get_all("access-control-allow-origin")
    if len(allow) != 1:
        return False
    if allow[0] == "*" and not credentials:
        return True
    if allow[0] != origin:
        return False
    return not credentials or headers.get("access-control-allow-credentials") == "true"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules(), requests, responses)
def test_cors_invariants(rule, request, response):
    addon, flow, sent_request, upstream_fields, answered_locally = run_flow(rule, request, response)
    headers = flow.response.headers
    credentials = rule.allow_credentials

    # No output header carries CR, LF or NUL.
    for name, value in headers.fields:
        assert not re.search(rb"[\r\n\0]", name + value), (name, value)
    allow = headers.get_all("access-control-allow-origin")

    decision = addon.decisions.get(flow)
    assert decision is not None  # every flow here matches the rule
    origins = request["origins"]
    one_origin = origins[0] if len(origins) == 1 else None

    if rule.action == "strip":
        assert not any(n.lower().startswith(b"access-control-") for n, _ in headers.fields)
        return
    allowed = one_origin is not None and rule.allowed_origin(one_origin) is not None
    if origins and not allowed:
        # A disallowed (or malformed, or repeated) origin: exactly as the upstream sent it.
        assert not answered_locally
        assert flow.request.headers.fields == sent_request
        assert headers.fields == upstream_fields
        return
    # What the addon sends: at most one Allow-Origin, never `*` with credentials...
    assert len(allow) <= 1
    if headers.get("access-control-allow-credentials") == "true":
        assert allow != ["*"]
    # ...and an origin reflected only if the rule allows it.
    if allow and allow[0] != "*":
        assert allow[0] == one_origin and origin_allowed_by(rule.allow_origins, one_origin, credentials)
    if not origins:
        return
    assert origin_allowed_by(rule.allow_origins, one_origin, credentials)
    # Every allowed CORS request gets headers that pass the CORS check...
    assert cors_check(headers, one_origin, credentials)
    is_preflight = request["method"] == "OPTIONS" and request["acrm"] is not None
    if not is_preflight:
        return
    # ...and a preflight passes the preflight check whenever the rule allows what was asked.
    assert 200 <= flow.response.status_code < 300
    method, asked = request["acrm"], request["acrh"]
    method_ok = rule.allow_methods is None or method in rule.allow_methods
    names = [h.strip().lower() for h in asked.split(",")] if asked else []
    listed = {h.lower() for h in rule.allow_headers or ()}
    headers_ok = rule.allow_headers is None or all(h in listed or h in SAFELISTED_HEADERS for h in names)
    if (
        method_ok
        and headers_ok
        and re.fullmatch(r"[A-Za-z]+", method)
        and all(re.fullmatch(r"[a-z-]+", h) for h in names)
    ):
        allowed_methods = [m.strip() for m in (headers.get("access-control-allow-methods") or "").split(",")]
        assert method in SAFELISTED_METHODS or method in allowed_methods
        allowed_headers = {h.strip().lower() for h in (headers.get("access-control-allow-headers") or "").split(",")}
        assert all(h in allowed_headers or h in SAFELISTED_HEADERS for h in names)


ANY_BYTES = st.binary(max_size=300) | st.sampled_from([b"", b"\xff\xfe", "²".encode(), b"a." * 200, b"9" * 5000])
RULES_FOR_BYTES = parse(
    """
    [[rules]]
    name = "api"
    hosts = ["api.example.com", "*.example.org"]
    expose_headers = "*"
    [[rules]]
    name = "credentials"
    hosts = ["127.0.0.1"]
    allow_credentials = true
    allow_origins = ["*", "null"]
    preflight = "forward"
    """,
    compile_filter,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    host=ANY_BYTES,
    destination=st.sampled_from(["api.example.com", "127.0.0.1", "x.example.org"]),
    origins=st.lists(ANY_BYTES | st.sampled_from([LOCAL.encode(), b"null"]), max_size=2),
    acrm=st.none() | ANY_BYTES,
    acrh=st.none() | ANY_BYTES,
    target=ANY_BYTES,
    method=st.sampled_from([b"GET", b"OPTIONS", b"PUT"]),
    upstream_fields=st.lists(st.tuples(st.sampled_from(NAMES).map(str.encode) | ANY_BYTES, ANY_BYTES), max_size=6),
)
def test_no_bytes_in_a_request_or_response_make_a_hook_raise(
    host, destination, origins, acrm, acrh, target, method, upstream_fields
):
    fields = [(b"Host", host)] + [(b"Origin", o) for o in origins]
    if acrm is not None:
        fields.append((b"Access-Control-Request-Method", acrm))
    if acrh is not None:
        fields.append((b"Access-Control-Request-Headers", acrh))
    addon = CorsAddon()
    addon.put_in_force(RULES_FOR_BYTES)
    flow = make_flow()
    flow.request = http.Request(
        destination, 80, method, b"http", b"", b"/" + target, b"HTTP/1.1", http.Headers(fields), b"", None, 0, 0
    )
    upstream = upstream_response(200, (), b"body")
    upstream.headers.fields = tuple(upstream_fields)
    run_hooks(addon, flow, upstream)  # raises if a hook does

    headers = flow.response.headers
    cors = [(n, v) for n, v in headers.fields if n.lower().startswith(b"access-control-")]
    if flow.response is upstream and cors == [
        f for f in upstream_fields if f[0].lower().startswith(b"access-control-")
    ]:
        return  # passed through as the API sent it
    for name, value in cors:  # the addon's own: never a CR, LF or NUL
        assert not re.search(rb"[\r\n\0]", name + value), (name, value)
    assert len(headers.get_all("access-control-allow-origin")) <= 1
    if headers.get("access-control-allow-credentials") == "true":
        assert headers.get_all("access-control-allow-origin") != ["*"]
