import pytest

from corsaddon import headerfields
from corsaddon.headerfields import encode, list_elements, rewrite_fields
from corsaddon.parsing import parse
from corsaddon.policy import (
    MEMO_KEY_CHARS,
    CorsRequest,
    Kind,
    RuleAnswers,
    allowed_origin,
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
    assert decide_for(r, "GET", [LOCAL], "PUT").kind is Kind.CORS  # Access-Control-Request-Method on a GET
    observed = decide_for(rule(action='"observe"'), "OPTIONS", [LOCAL, "null"], "PUT")
    assert observed.kind is Kind.OBSERVE and observed.origin == f"{LOCAL}, null" and observed.allow_origin is None
    assert not observed.changes_response and not decide_for(r, "GET", ["http://evil.example"]).changes_response


def test_upstream_origin_applies_to_allowed_requests_that_reach_the_api():
    drop = rule(upstream_origin='"drop"', preflight='"forward"')
    assert decide_for(drop, "GET", [LOCAL]).rewrites_origin
    assert decide_for(drop, "OPTIONS", [LOCAL], "PUT").rewrites_origin  # a forwarded preflight
    assert not decide_for(rule(upstream_origin='"drop"'), "OPTIONS", [LOCAL], "PUT").rewrites_origin  # answered
    assert not decide_for(drop, "GET", ["http://evil.example"]).rewrites_origin
    assert not decide_for(drop, "GET", []).rewrites_origin
    assert not decide_for(rule(), "GET", [LOCAL]).rewrites_origin  # keep


def test_without_origin_star_rules_still_answer_star():
    assert decide_for(rule(allow_origins='["*"]'), "GET", [], None).allow_origin == "*"
    assert decide_for(rule(allow_origins='["*"]', allow_credentials="true"), "GET", [], None).allow_origin is None
    assert decide_for(rule(), "GET", [], None).allow_origin is None


def test_the_origin_memo_keeps_browser_origins_only():
    r, answers = rule(), RuleAnswers()
    for junk in ("http://localhost:3000/", "HTTP://LOCALHOST:3000", "x" * 100):
        assert allowed_origin(r, junk, answers) is None
    assert answers.allow_origin == {}
    assert allowed_origin(r, LOCAL, answers) == LOCAL and allowed_origin(r, "http://evil.example", answers) is None
    assert answers.allow_origin == {LOCAL: LOCAL, "http://evil.example": None}


def test_remembered_preflight_answers_depend_on_what_was_asked():
    r, answers = rule(), RuleAnswers()

    def fields(origin, method, headers=None, private_network=False):
        request = cors([origin], method, headers, private_network)
        return dict(preflight_fields(decide(r, "OPTIONS", request, answers)))

    assert fields(LOCAL, "PUT", "x-a")[b"Access-Control-Allow-Methods"] == b"PUT"
    assert fields(LOCAL, "PATCH", "x-a")[b"Access-Control-Allow-Methods"] == b"PATCH"
    assert fields(LOCAL, "PUT", "x-b")[b"Access-Control-Allow-Headers"] == b"x-b"
    assert fields("http://localhost:8080", "PUT", "x-a")[b"Access-Control-Allow-Origin"] == b"http://localhost:8080"
    assert len(answers.preflight) == 4
    long = "x-" + "a" * MEMO_KEY_CHARS
    assert fields(LOCAL, "PUT", long)[b"Access-Control-Allow-Headers"] == long.encode()
    assert len(answers.preflight) == 4  # answered all the same, not kept


def test_remembered_response_fields_depend_on_the_origin():
    r, answers = rule(allow_origins='["http://localhost:*"]'), RuleAnswers()
    for origin in (LOCAL, "http://localhost:8080", LOCAL):
        out, _, _ = response_fields(decide(r, "GET", cors([origin]), answers), ())
        assert dict(out)[b"Access-Control-Allow-Origin"] == origin.encode()


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
    assert exposable(["X A", "X-B\r\nSet-Cookie: a", "X-\xe9", ""]) == ()  # never a name that is not a token
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


def test_only_short_vary_values_are_remembered():
    memo = headerfields._MISSING_VARY
    memo.clear()
    assert headerfields.missing_vary((b"Accept-Encoding",), ("Origin",)) == ("Origin",)
    assert len(memo) == 1
    long = b", ".join(b"X-%d" % i for i in range(100))
    assert headerfields.missing_vary((long + b", origin",), ("Origin",)) == ()
    assert len(memo) == 1


@pytest.mark.parametrize(
    "value, elements",
    [
        ("a, b,c", ["a", "b", "c"]),
        (" a ,\t, ,b,", ["a", "b"]),  # RFC 9110 5.6.1: empty elements are ignored
        ("a,\r\n b", ["a", "b"]),  # an obs-fold, as mitmproxy keeps it
        ("", []),
        (b"Accept-Encoding, , Origin", [b"Accept-Encoding", b"Origin"]),
        (b"x\xa0, y\x85", [b"x\xa0", b"y\x85"]),  # only ASCII white space is stripped
    ],
)
def test_list_elements(value, elements):
    assert list_elements(value) == elements


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


@pytest.mark.parametrize(
    "fields, expected",
    [
        (((b"Access-Control-Request-Private-Network", b" TRUE "),), {"private_network": True}),
        (((b"Access-Control-Request-Private-Network", b"false"), (b"Origin", b"x")), {"private_network": False}),
        (((b"Upgrade", b"websocket"),), {"websocket": True}),
        (((b"Origin", LOCAL.encode()), (b"Upgrade", b"h2c")), {"websocket": False}),
        (((b"Origin", LOCAL.encode()), (b"Cookie", b"a=b")), {"credentials": True}),
        (((b"Origin", LOCAL.encode()), (b"Authorization", b"Bearer x")), {"credentials": False}),
        (((b"Access-Control-Request-Method", b"PUT"),), {"method": "PUT", "origins": ()}),  # no Origin: still read
        (((b"Access-Control-Request-Headers", b"x-a"),), {"headers": "x-a"}),
        (((b"Cookie", b"a=b"),), {"credentials": False}),  # nothing CORS asks: no CORS request at all
    ],
)
def test_each_cors_request_header_is_read_for_what_it_says(fields, expected):
    read = CorsRequest.read(fields)
    assert {name: getattr(read, name) for name in expected} == expected


def test_what_the_page_asked_is_a_preflight_only_for_options_with_a_method():
    asked = cors([LOCAL], "PUT", "X-B, x-a,x-b", private_network=True)
    preflight = asked.ask("OPTIONS", credentials=True)
    assert (preflight.preflight, preflight.method, preflight.headers) == (True, "PUT", ("x-a", "x-b"))
    assert preflight.private_network and preflight.credentials and preflight.origin == LOCAL
    for method, request in (("GET", asked), ("OPTIONS", cors([LOCAL], None, "x-a", private_network=True))):
        ask = request.ask(method, credentials=False)
        assert not ask.preflight and ask.method == "" and ask.headers == () and not ask.private_network
    assert cors([LOCAL], "PUT", "x a").ask("OPTIONS", False).headers == ()  # not a list of names: none asked
    assert cors([LOCAL, "null"]).ask("GET", False).origin == f"{LOCAL}, null"


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
