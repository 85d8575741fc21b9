"""The browser's verdict on the API's own answers: each reason once present, once absent."""

from __future__ import annotations

import pytest

from corsaddon.verdict import CorsAsk, Reason, check, cors_fields

from .flows import LOCAL


def fields(*pairs: tuple[str, str]):
    return tuple((name.encode(), value.encode()) for name, value in pairs)


def reasons(ask: CorsAsk, status: int = 200, *pairs: tuple[str, str]) -> list[Reason]:
    return [f.reason for f in check(ask, status, fields(*pairs))]


GET = CorsAsk(LOCAL, credentials=False)
GET_WITH_COOKIES = CorsAsk(LOCAL, credentials=True)
ALLOW = ("Access-Control-Allow-Origin", LOCAL)
VARY = ("Vary", "Origin")


def preflight(method="PUT", headers=("content-type", "x-custom"), credentials=False, private_network=False):
    return CorsAsk(LOCAL, credentials, True, method, headers, private_network)


def test_a_correct_answer_passes():
    assert reasons(GET, 200, ALLOW, VARY) == []
    assert reasons(GET, 200, ("Access-Control-Allow-Origin", "*")) == []
    assert reasons(GET_WITH_COOKIES, 200, ALLOW, ("Access-Control-Allow-Credentials", "true"), VARY) == []
    ok = [
        ALLOW,
        VARY,
        ("Access-Control-Allow-Methods", "PUT"),
        ("Access-Control-Allow-Headers", "Content-Type, X-Custom"),
    ]
    assert reasons(preflight(), 204, *ok) == []


def test_no_allow_origin():
    assert reasons(GET, 200) == [Reason.NO_ALLOW_ORIGIN]
    assert reasons(GET, 200, ("Access-Control-Allow-Methods", "GET")) == [Reason.NO_ALLOW_ORIGIN]


@pytest.mark.parametrize(
    "sent",
    [
        [("Access-Control-Allow-Origin", "https://elsewhere.example")],
        [ALLOW, ALLOW],  # two fields combine into "a, a"
        [("Access-Control-Allow-Origin", LOCAL + "/")],
        [("Access-Control-Allow-Origin", "*"), ALLOW],
    ],
)
def test_an_allow_origin_that_is_not_the_page_s_origin(sent):
    (finding,) = check(GET, 200, fields(*sent))
    assert finding.reason is Reason.ALLOW_ORIGIN_MISMATCH
    assert LOCAL in finding.detail


def test_wildcard_with_credentials():
    assert reasons(GET_WITH_COOKIES, 200, ("Access-Control-Allow-Origin", "*")) == [Reason.WILDCARD_WITH_CREDENTIALS]
    assert reasons(GET, 200, ("Access-Control-Allow-Origin", "*")) == []


def test_allow_credentials_must_be_exactly_true_with_credentials():
    assert reasons(GET_WITH_COOKIES, 200, ALLOW, VARY) == [Reason.NO_ALLOW_CREDENTIALS]
    (finding,) = check(GET_WITH_COOKIES, 200, fields(ALLOW, VARY, ("Access-Control-Allow-Credentials", "True")))
    assert finding.reason is Reason.NO_ALLOW_CREDENTIALS and "'True'" in finding.detail
    assert reasons(GET, 200, ALLOW, VARY) == []


def test_a_preflight_needs_an_ok_status():
    allowing = [ALLOW, VARY, ("Access-Control-Allow-Methods", "*"), ("Access-Control-Allow-Headers", "*")]
    assert reasons(preflight(), 405, *allowing) == [Reason.PREFLIGHT_STATUS]
    assert reasons(preflight(), 302, *allowing) == [Reason.PREFLIGHT_STATUS]
    assert reasons(preflight(), 200, *allowing) == []


def test_the_requested_method_must_be_allowed():
    assert reasons(preflight(headers=()), 204, ALLOW, VARY) == [Reason.METHOD_NOT_ALLOWED]
    assert reasons(preflight(headers=()), 204, ALLOW, VARY, ("Access-Control-Allow-Methods", "GET, put")) == [
        Reason.METHOD_NOT_ALLOWED  # methods are case-sensitive
    ]
    assert reasons(preflight("POST", headers=()), 204, ALLOW, VARY) == []  # safelisted
    assert reasons(preflight(headers=()), 204, ALLOW, VARY, ("Access-Control-Allow-Methods", "*")) == []
    star_with_credentials = [
        ALLOW,
        VARY,
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Allow-Methods", "*"),
    ]
    assert reasons(preflight(headers=(), credentials=True), 204, *star_with_credentials) == [Reason.METHOD_NOT_ALLOWED]


def test_every_requested_header_must_be_allowed():
    base = [ALLOW, VARY, ("Access-Control-Allow-Methods", "PUT")]
    assert reasons(preflight(), 204, *base, ("Access-Control-Allow-Headers", "content-type")) == [
        Reason.HEADER_NOT_ALLOWED
    ]
    assert reasons(preflight(), 204, *base, ("Access-Control-Allow-Headers", "X-CUSTOM,Content-Type")) == []
    assert reasons(preflight(), 204, *base, ("Access-Control-Allow-Headers", "*")) == []
    # `*` never covers Authorization, and is a literal name with credentials.
    assert reasons(preflight(headers=("authorization",)), 204, *base, ("Access-Control-Allow-Headers", "*")) == [
        Reason.HEADER_NOT_ALLOWED
    ]
    credentialed = [*base, ("Access-Control-Allow-Credentials", "true"), ("Access-Control-Allow-Headers", "*")]
    assert reasons(preflight(credentials=True), 204, *credentialed) == [Reason.HEADER_NOT_ALLOWED]


def test_private_network_access_must_be_allowed_when_asked():
    base = [ALLOW, VARY, ("Access-Control-Allow-Methods", "PUT"), ("Access-Control-Allow-Headers", "*")]
    assert reasons(preflight(private_network=True), 204, *base) == [Reason.PRIVATE_NETWORK_NOT_ALLOWED]
    assert reasons(preflight(private_network=True), 204, *base, ("Access-Control-Allow-Private-Network", "true")) == []
    assert reasons(preflight(), 204, *base) == []


def test_warnings_do_not_fail():
    assert reasons(GET, 200, ALLOW) == [Reason.NO_VARY_ORIGIN]
    assert reasons(GET, 200, ALLOW, ("Vary", "Accept-Encoding, origin")) == []
    assert reasons(GET, 200, ALLOW, ("Vary", "Cookie"), ("vary", " ,*")) == []  # `*`: it varies on everything
    assert reasons(GET, 200, ALLOW, ("Vary", "Accept-Encoding,\r\n Origin")) == []  # an obs-fold is white space
    assert reasons(GET, 200, ("Access-Control-Allow-Origin", "*")) == []  # `*` does not depend on the origin
    null = CorsAsk("null", credentials=False)
    assert reasons(null, 200, ("Access-Control-Allow-Origin", "null"), VARY) == [Reason.NULL_REFLECTED]
    assert not Reason.NO_VARY_ORIGIN.fails and not Reason.NULL_REFLECTED.fails
    assert all(r.fails for r in Reason if r not in (Reason.NO_VARY_ORIGIN, Reason.NULL_REFLECTED))


def test_the_verdict_keeps_the_cors_fields_and_vary():
    sent = ((b"Content-Type", b"text/plain"), (b"VARY", b"Origin"), (b"Access-Control-Allow-Origin", b"*"), (b"X", b""))
    assert cors_fields(sent) == ((b"vary", b"Origin"), (b"access-control-allow-origin", b"*"))
    assert [f.reason for f in check(GET, 200, cors_fields(fields(ALLOW, VARY)))] == []


def test_findings_quote_long_values_briefly():
    (finding,) = check(GET, 200, fields(("Access-Control-Allow-Origin", "x" * 100_000)))
    assert len(str(finding)) < 400
