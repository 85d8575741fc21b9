import pytest

from corsaddon.headerfields import encode, rewrite_fields
from corsaddon.parsing import parse
from corsaddon.policy import (
    CorsRequest,
    Kind,
    decide,
    exposable,
    preflight_fields,
    preflight_headers,
    preflight_vary,
    response_fields,
    response_headers,
    response_vary,
)

from .flows import LOCAL


def rule(**keys):
    body = "\n".join(f"{k} = {v}" for k, v in keys.items())
    return parse(f'[[rules]]\nhosts = ["api.example.com"]\n{body}', lambda e: None).rules[0]


def cors(origins=(), method=None, headers=None, private_network=False):
    return CorsRequest(tuple(origins), method, headers, private_network)


def answer(r, method, headers=None, private_network=False):
    """The preflight answer's CORS headers for a preflight from LOCAL."""
    return preflight_headers(decide_for(r, "OPTIONS", [LOCAL], method, headers, private_network))


def decide_for(r, method, origins, preflight_method=None, headers=None, private_network=False):
    return decide(r, method, cors(origins, preflight_method, headers, private_network))


@pytest.mark.parametrize(
    "origins, credentials, origin, expected",
    [
        ('["http://localhost:*"]', "false", LOCAL, LOCAL),
        ('["http://localhost:*"]', "false", "http://evil.example", None),
        ('["https://app.example.com"]', "true", "https://app.example.com", "https://app.example.com"),
        ('["*"]', "false", LOCAL, "*"),
        ('["*"]', "true", LOCAL, LOCAL),  # `*` cannot be used with credentials: reflect
        ('["*"]', "false", "null", "*"),  # the browser accepts `*` for null
        ('["*"]', "true", "null", None),  # null is never reflected unless listed
        ('["null"]', "true", "null", "null"),
        ('["http://localhost:*"]', "false", "null", None),
        ('["*"]', "false", "http://localhost:80", None),  # not how a browser writes it
        ('["*"]', "true", "HTTP://LOCALHOST:3000", None),
        ('["*"]', "false", "http://localhost:3000/", None),
    ],
)
def test_allowed_origin_gives_the_allow_origin_value(origins, credentials, origin, expected):
    assert rule(allow_origins=origins, allow_credentials=credentials).allowed_origin(origin) == expected


def test_decide_classifies_matched_requests():
    r = rule()
    assert decide_for(r, "OPTIONS", [LOCAL], "PUT").kind is Kind.ANSWER_PREFLIGHT
    assert decide_for(rule(preflight='"forward"'), "OPTIONS", [LOCAL], "PUT").kind is Kind.FORWARD_PREFLIGHT
    assert decide_for(r, "OPTIONS", [LOCAL], None).kind is Kind.CORS  # OPTIONS without the method: not a preflight
    assert decide_for(r, "GET", [LOCAL], None).kind is Kind.CORS
    assert decide_for(r, "GET", [LOCAL], None).allow_origin == LOCAL
    assert decide_for(r, "GET", [], None).kind is Kind.NO_ORIGIN
    assert decide_for(r, "GET", ["http://evil.example"], None).kind is Kind.DISALLOWED
    assert decide_for(r, "OPTIONS", ["http://evil.example"], "PUT").kind is Kind.DISALLOWED
    assert decide_for(r, "GET", [LOCAL, LOCAL], None).kind is Kind.DISALLOWED  # one Origin header only
    assert decide_for(rule(action='"strip"'), "OPTIONS", [LOCAL], "PUT").kind is Kind.STRIP


def test_without_origin_star_rules_still_answer_star():
    assert decide_for(rule(allow_origins='["*"]'), "GET", [], None).allow_origin == "*"
    assert decide_for(rule(allow_origins='["*"]', allow_credentials="true"), "GET", [], None).allow_origin is None
    assert decide_for(rule(), "GET", [], None).allow_origin is None


def test_preflight_answer_reflects_method_and_headers_when_star():
    d = decide_for(rule(), "OPTIONS", [LOCAL], "PUT", "content-type,x-custom")
    assert preflight_headers(d) == [
        ("Access-Control-Allow-Origin", LOCAL),
        ("Access-Control-Allow-Methods", "PUT"),
        ("Access-Control-Allow-Headers", "content-type,x-custom"),
        ("Access-Control-Max-Age", "5"),
    ]
    assert preflight_vary(d.rule) == ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers")


def test_preflight_answer_lists_configured_methods_and_headers_only():
    r = rule(
        allow_methods='["GET", "PUT"]',
        allow_headers='["Authorization"]',
        allow_credentials="true",
        max_age="600",
        allow_private_network="true",
    )
    assert answer(r, "DELETE", "x-other", True) == [
        ("Access-Control-Allow-Origin", LOCAL),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "GET, PUT"),  # DELETE not listed: the browser names it
        ("Access-Control-Allow-Headers", "Authorization"),
        ("Access-Control-Max-Age", "600"),
        ("Access-Control-Allow-Private-Network", "true"),
    ]
    assert preflight_vary(r) == ("Origin", "Access-Control-Request-Private-Network")


def test_private_network_answered_only_when_allowed_and_asked():
    assert ("Access-Control-Allow-Private-Network", "true") not in answer(rule(allow_private_network="true"), "GET")
    assert ("Access-Control-Allow-Private-Network", "true") not in answer(rule(), "GET", None, True)


def test_empty_lists_send_no_methods_or_headers():
    names = [n for n, _ in answer(rule(allow_methods="[]", allow_headers="[]"), "PUT", "x-a")]
    assert "Access-Control-Allow-Methods" not in names and "Access-Control-Allow-Headers" not in names


@pytest.mark.parametrize("method", ["PUT DELETE", "GET\r\nSet-Cookie: a=b", "", "X" * 5000, "GÉT"])
def test_malformed_requested_method_is_never_reflected(method):
    assert [n for n, _ in answer(rule(), method)] == [
        "Access-Control-Allow-Origin",
        "Access-Control-Max-Age",
    ]


@pytest.mark.parametrize("requested", ["x-a,;,x-b", "x-a\r\nSet-Cookie: a=b", "x a", "x-a\x00"])
def test_malformed_requested_headers_are_never_reflected(requested):
    assert "Access-Control-Allow-Headers" not in dict(answer(rule(), "PUT", requested))


def test_wildcard_rule_answers_star_and_does_not_vary_on_origin():
    r = rule(allow_origins='["*"]', allow_methods='["GET"]', allow_headers='["X-A"]')
    assert dict(answer(r, "GET"))["Access-Control-Allow-Origin"] == "*"
    assert preflight_vary(r) == ()
    assert response_vary(r) == ()


def test_actual_response_headers():
    d = decide_for(rule(expose_headers='["X-Request-Id"]', allow_credentials="true"), "GET", [LOCAL], None)
    assert response_headers(d, ["Content-Type"]) == [
        ("Access-Control-Allow-Origin", LOCAL),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", "X-Request-Id"),
    ]
    assert response_vary(d.rule) == ("Origin",)


def test_expose_star_lists_the_response_headers_by_name_never_a_literal_star():
    d = decide_for(rule(expose_headers='"*"', allow_credentials="true"), "GET", [LOCAL], None)
    names = ["Content-Type", "X-Request-Id", "Set-Cookie", "set-cookie2", "Access-Control-Allow-Origin", "ETag", "etag"]
    assert dict(response_headers(d, names))["Access-Control-Expose-Headers"] == "X-Request-Id, ETag"
    assert exposable(["Content-Length", "Set-Cookie"]) == ()
    assert exposable(["X-A", "x-a", "ETag"]) == ("X-A", "ETag")
    only_safe = decide_for(rule(expose_headers='"*"'), "GET", [LOCAL], None)
    assert "Access-Control-Expose-Headers" not in dict(response_headers(only_safe, ["Content-Type"]))


def test_no_origin_and_not_star_adds_no_cors_headers():
    assert response_headers(decide_for(rule(), "GET", [], None), ["X-A"]) == []
    star = decide_for(rule(allow_origins='["*"]'), "GET", [], None)
    assert response_headers(star, []) == [("Access-Control-Allow-Origin", "*")]


@pytest.mark.parametrize(
    "existing, add, expected",
    [
        ([], ("Origin",), [b"Origin"]),
        ([b"Accept-Encoding"], ("Origin",), [b"Accept-Encoding, Origin"]),
        ([b"Accept-Encoding", b"Cookie"], ("Origin",), [b"Accept-Encoding, Origin", b"Cookie"]),
        ([b"accept-encoding, origin"], ("Origin",), [b"accept-encoding, origin"]),
        ([b"Cookie", b"ORIGIN"], ("Origin",), [b"Cookie", b"ORIGIN"]),
        ([b"*"], ("Origin",), [b"*"]),
        ([b"Origin"], ("Origin", "Access-Control-Request-Method"), [b"Origin, Access-Control-Request-Method"]),
        ([b" , "], ("Origin",), [b" , , Origin"]),
        ([b""], ("Origin",), [b"Origin"]),
        # The API's own bytes stay: obs-fold, NBSP and NEL are not unfolded or dropped.
        ([b"Accept-Encoding,\r\n Cookie\xa0\x85"], ("Origin",), [b"Accept-Encoding,\r\n Cookie\xa0\x85, Origin"]),
    ],
)
def test_vary_only_gets_what_is_missing_appended(existing, add, expected):
    fields, _ = rewrite_fields(tuple((b"Vary", v) for v in existing), (), add)
    assert [value for _, value in fields] == expected


def test_cors_request_headers_are_read_in_one_pass_from_raw_fields():
    fields = (
        (b"Host", b"api.example.com"),
        (b"origin", b"http://localhost:3000"),
        (b"Access-Control-Request-Method", b"PUT"),
        (b"Access-Control-Request-Headers", b"content-type"),
        (b"access-control-request-headers", b"x-a"),
        (b"Access-Control-Request-Private-Network", b"true"),
    )
    assert CorsRequest.read(fields) == CorsRequest((LOCAL,), "PUT", "content-type,x-a", True, False)
    assert CorsRequest.read(((b"Upgrade", b"WebSocket"),)).websocket is True
    assert CorsRequest.read(((b"Origin", b"a"), (b"ORIGIN", b"b"))).origins == ("a", "b")
    assert CorsRequest.read(((b"Accept", b"*/*"),)) == CorsRequest()
    assert CorsRequest.read(((b"Origin", b"http://\xe9.example"),)).origins == ("http://\xe9.example",)


def test_rewrite_fields_drops_cors_fields_appends_to_the_first_vary_and_appends_cors():
    fields = (
        (b"Content-Type", b"text/plain"),
        (b"Access-Control-Allow-Origin", b"*"),
        (b"Vary", b"Accept-Encoding"),
        (b"access-control-allow-origin", b"https://x.example"),
        (b"vary", b"Cookie"),
        (b"X-A", b"1"),
    )
    out, removed = rewrite_fields(fields, encode([("Access-Control-Allow-Origin", LOCAL)]), ("Origin",))
    assert out == (
        (b"Content-Type", b"text/plain"),
        (b"Vary", b"Accept-Encoding, Origin"),
        (b"vary", b"Cookie"),
        (b"X-A", b"1"),
        (b"Access-Control-Allow-Origin", LOCAL.encode()),
    )
    assert removed == ["Access-Control-Allow-Origin", "access-control-allow-origin"]


def test_rewrite_fields_leaves_vary_alone_when_nothing_is_missing():
    fields = ((b"Vary", b"Origin"), (b"Vary", b"Cookie"))
    assert rewrite_fields(fields, (), ("Origin",)) == (fields, [])
    assert rewrite_fields(((b"Vary", b"*"),), (), ("Origin",)) == (((b"Vary", b"*"),), [])
    assert rewrite_fields((), ((b"A", b"1"),), ("Origin",))[0] == ((b"A", b"1"), (b"Vary", b"Origin"))


def test_response_fields_for_each_kind():
    fields = ((b"Access-Control-Allow-Origin", b"*"), (b"X-Request-Id", b"7"), (b"Set-Cookie", b"a=b"))
    strip = decide_for(rule(action='"strip"'), "GET", [LOCAL])
    assert response_fields(strip, fields) == (fields[1:], ["Access-Control-Allow-Origin"], ())
    star = decide_for(rule(expose_headers='"*"'), "GET", [LOCAL])
    out, _, sent = response_fields(star, fields)
    assert dict(out)[b"Access-Control-Expose-Headers"] == b"X-Request-Id"
    assert [name for name, _ in sent] == [b"Access-Control-Allow-Origin", b"Access-Control-Expose-Headers"]
    forward = decide_for(rule(preflight='"forward"'), "OPTIONS", [LOCAL], "PATCH")
    out, _, _ = response_fields(forward, ())
    assert dict(out)[b"Access-Control-Allow-Methods"] == b"PATCH"
    assert preflight_fields(forward) == out
