import pytest

from corsaddon.policy import (
    Kind,
    decide,
    exposable,
    merge_vary,
    preflight_headers,
    preflight_vary,
    response_headers,
    response_vary,
)
from corsaddon.rules import parse


def rule(**keys):
    body = "\n".join(f"{k} = {v}" for k, v in keys.items())
    return parse(f'[[rules]]\nhosts = ["api.example.com"]\n{body}', lambda e: None).rules[0]


LOCAL = "http://localhost:3000"


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
    assert decide(r, "OPTIONS", [LOCAL], "PUT").kind is Kind.ANSWER_PREFLIGHT
    assert decide(rule(preflight='"forward"'), "OPTIONS", [LOCAL], "PUT").kind is Kind.FORWARD_PREFLIGHT
    assert decide(r, "OPTIONS", [LOCAL], None).kind is Kind.CORS  # OPTIONS without the method: not a preflight
    assert decide(r, "GET", [LOCAL], None) == decide(r, "GET", [LOCAL], None)
    assert decide(r, "GET", [LOCAL], None).allow_origin == LOCAL
    assert decide(r, "GET", [], None).kind is Kind.NO_ORIGIN
    assert decide(r, "GET", ["http://evil.example"], None).kind is Kind.DISALLOWED
    assert decide(r, "OPTIONS", ["http://evil.example"], "PUT").kind is Kind.DISALLOWED
    assert decide(r, "GET", [LOCAL, LOCAL], None).kind is Kind.DISALLOWED  # one Origin header only
    assert decide(rule(action='"strip"'), "OPTIONS", [LOCAL], "PUT").kind is Kind.STRIP


def test_without_origin_star_rules_still_answer_star():
    assert decide(rule(allow_origins='["*"]'), "GET", [], None).allow_origin == "*"
    assert decide(rule(allow_origins='["*"]', allow_credentials="true"), "GET", [], None).allow_origin is None
    assert decide(rule(), "GET", [], None).allow_origin is None


def test_preflight_answer_reflects_method_and_headers_when_star():
    d = decide(rule(), "OPTIONS", [LOCAL], "PUT")
    assert preflight_headers(d, "PUT", "content-type,x-custom", False) == [
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
    d = decide(r, "OPTIONS", [LOCAL], "DELETE")
    assert preflight_headers(d, "DELETE", "x-other", True) == [
        ("Access-Control-Allow-Origin", LOCAL),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "GET, PUT"),  # DELETE not listed: the browser names it
        ("Access-Control-Allow-Headers", "Authorization"),
        ("Access-Control-Max-Age", "600"),
        ("Access-Control-Allow-Private-Network", "true"),
    ]
    assert preflight_vary(r) == ("Origin", "Access-Control-Request-Private-Network")


def test_private_network_answered_only_when_allowed_and_asked():
    d = decide(rule(allow_private_network="true"), "OPTIONS", [LOCAL], "GET")
    assert ("Access-Control-Allow-Private-Network", "true") not in preflight_headers(d, "GET", None, False)
    d = decide(rule(), "OPTIONS", [LOCAL], "GET")
    assert ("Access-Control-Allow-Private-Network", "true") not in preflight_headers(d, "GET", None, True)


def test_empty_lists_send_no_methods_or_headers():
    d = decide(rule(allow_methods="[]", allow_headers="[]"), "OPTIONS", [LOCAL], "PUT")
    names = [n for n, _ in preflight_headers(d, "PUT", "x-a", False)]
    assert "Access-Control-Allow-Methods" not in names and "Access-Control-Allow-Headers" not in names


@pytest.mark.parametrize("method", ["PUT DELETE", "GET\r\nSet-Cookie: a=b", "", "X" * 5000, "GÉT"])
def test_malformed_requested_method_is_never_reflected(method):
    d = decide(rule(), "OPTIONS", [LOCAL], method)
    assert [n for n, _ in preflight_headers(d, method, None, False)] == [
        "Access-Control-Allow-Origin",
        "Access-Control-Max-Age",
    ]


@pytest.mark.parametrize("requested", ["x-a,,x-b", "x-a\r\nSet-Cookie: a=b", "x a", "x-a\x00"])
def test_malformed_requested_headers_are_never_reflected(requested):
    d = decide(rule(), "OPTIONS", [LOCAL], "PUT")
    assert "Access-Control-Allow-Headers" not in dict(preflight_headers(d, "PUT", requested, False))


def test_wildcard_rule_answers_star_and_does_not_vary_on_origin():
    r = rule(allow_origins='["*"]', allow_methods='["GET"]', allow_headers='["X-A"]')
    d = decide(r, "OPTIONS", [LOCAL], "GET")
    assert dict(preflight_headers(d, "GET", None, False))["Access-Control-Allow-Origin"] == "*"
    assert preflight_vary(r) == ()
    assert response_vary(r) == ()


def test_actual_response_headers():
    d = decide(rule(expose_headers='["X-Request-Id"]', allow_credentials="true"), "GET", [LOCAL], None)
    assert response_headers(d, ["Content-Type"]) == [
        ("Access-Control-Allow-Origin", LOCAL),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Expose-Headers", "X-Request-Id"),
    ]
    assert response_vary(d.rule) == ("Origin",)


def test_expose_star_lists_the_response_headers_by_name_never_a_literal_star():
    d = decide(rule(expose_headers='"*"', allow_credentials="true"), "GET", [LOCAL], None)
    names = ["Content-Type", "X-Request-Id", "Set-Cookie", "set-cookie2", "Access-Control-Allow-Origin", "ETag", "etag"]
    assert dict(response_headers(d, names))["Access-Control-Expose-Headers"] == "X-Request-Id, ETag"
    assert exposable(["Content-Length", "Set-Cookie"]) == ""
    only_safe = decide(rule(expose_headers='"*"'), "GET", [LOCAL], None)
    assert "Access-Control-Expose-Headers" not in dict(response_headers(only_safe, ["Content-Type"]))


def test_no_origin_and_not_star_adds_no_cors_headers():
    assert response_headers(decide(rule(), "GET", [], None), ["X-A"]) == []
    star = decide(rule(allow_origins='["*"]'), "GET", [], None)
    assert response_headers(star, []) == [("Access-Control-Allow-Origin", "*")]


@pytest.mark.parametrize(
    "existing, add, expected",
    [
        ([], ("Origin",), "Origin"),
        (["Accept-Encoding"], ("Origin",), "Accept-Encoding, Origin"),
        (["Accept-Encoding", "Cookie"], ("Origin",), "Accept-Encoding, Cookie, Origin"),
        (["accept-encoding, origin"], ("Origin",), None),
        (["*"], ("Origin",), None),
        (["Origin"], ("Origin", "Access-Control-Request-Method"), "Origin, Access-Control-Request-Method"),
        ([" , "], ("Origin",), "Origin"),
    ],
)
def test_vary_is_merged_never_replaced_or_repeated(existing, add, expected):
    assert merge_vary(existing, add) == expected
