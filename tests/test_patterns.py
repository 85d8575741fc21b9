import pytest

from corsaddon.patterns import (
    Glob,
    HostKind,
    HostPattern,
    OriginPattern,
    PatternError,
    header_list,
    is_browser_origin,
    is_token,
    normalize_host,
    parse_path_pattern,
)


@pytest.mark.parametrize(
    "pattern, subject, expected",
    [
        ("/v1/*", "/v1/users/7", True),
        ("/v1/*", "/v1/", True),
        ("/v1/*", "/v1", False),
        ("/v1/*", "/v2/users", False),
        ("*", "", True),
        ("/a*b*c", "/a-x-b-y-c", True),
        ("/a*b*c", "/a-x-c-y-b", False),
        ("/ab*ba", "/aba", False),  # prefix and suffix may not overlap
        ("/exact", "/exact", True),
        ("/exact", "/exact/", False),
        ("/**/x", "/x", False),
        ("/**/x", "//x", True),
        ("/CASE", "/case", False),
    ],
)
def test_glob_star_matches_any_run_including_slash(pattern, subject, expected):
    assert Glob(pattern).match(subject) is expected


def test_glob_with_many_stars_on_long_input_does_not_backtrack():
    # A backtracking regex needs on the order of n**k steps here; this returns at once.
    glob = Glob("/" + "*a" * 30 + "*b")
    assert glob.match("/" + "a" * 100_000) is False
    assert glob.match("/" + "a" * 100_000 + "b") is True


@pytest.mark.parametrize(
    "text, kind, name, port",
    [
        ("api.example.com", "exact", "api.example.com", None),
        ("API.Example.COM.", "exact", "api.example.com", None),
        ("api.example.com:8443", "exact", "api.example.com", 8443),
        ("*.example.com", "suffix", "example.com", None),
        ("*.example.com:8443", "suffix", "example.com", 8443),
        ("*", "any", "", None),
        ("[::1]", "exact", "::1", None),
        ("[::1]:8000", "exact", "::1", 8000),
        ("127.0.0.1:8000", "exact", "127.0.0.1", 8000),
        ("bücher.example", "exact", "xn--bcher-kva.example", None),
        ("localhost", "exact", "localhost", None),
    ],
)
def test_host_patterns_are_normalised(text, kind, name, port):
    assert HostPattern.parse(text) == HostPattern(HostKind(kind), name, port)


@pytest.mark.parametrize(
    "text, message",
    [
        ("https://api.example.com/v1", "write 'api.example.com'"),
        ("api.example.com/v1", "has a path"),
        ("api.*.example.com", "'*' is allowed only"),
        ("*example.com", "'*' is allowed only"),
        ("api.example.com:0", "port must be a number"),
        ("api.example.com:http", "port must be a number"),
        ("::1", "brackets"),
        ("[::1", "unclosed"),
        ("", "not a host name"),
        ("a..b", "not a host name"),
        ("api example", "not a host name"),
    ],
)
def test_bad_host_patterns_say_what_is_wrong(text, message):
    with pytest.raises(PatternError, match=message):
        HostPattern.parse(text)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("http://localhost:3000", True),
        ("https://app.example.com", True),
        ("http://[::1]:8080", True),
        ("null", True),
        ("chrome-extension://abcdef", True),
        ("http://localhost:80", False),  # browsers omit the default port
        ("https://app.example.com:443", False),
        ("https://app.example.com/", False),
        ("https://app.example.com/path", False),
        ("HTTPS://app.example.com", False),
        ("https://App.example.com", False),
        ("Null", False),
        ("", False),
        ("http://localhost:99999", False),
        ("http://localhost:03000", False),
        ("http://local host", False),
        ("http://localhost:3000\r\nX: y", False),
        ("http://exämple.com", False),
        ("http://" + "a" * 5000 + ".com", False),
    ],
)
def test_only_origins_in_the_form_browsers_send_count(value, expected):
    assert is_browser_origin(value) is expected


@pytest.mark.parametrize(
    "pattern, origin, expected",
    [
        ("http://localhost:*", "http://localhost:3000", True),
        ("http://localhost:*", "http://localhost", False),
        ("http://localhost:*", "https://localhost:3000", False),
        ("https://*.example.com", "https://app.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://example.com.evil.net", False),
        ("https://app.example.com", "https://app.example.com", True),
        ("*://localhost:3000", "http://localhost:3000", True),
    ],
)
def test_origin_patterns_glob_without_crossing_slashes(pattern, origin, expected):
    assert OriginPattern.parse(pattern).match(origin) is expected


def test_origin_star_never_spans_the_scheme_separator():
    with pytest.raises(PatternError, match="is not an origin"):
        OriginPattern.parse("http*localhost:3000")
    assert OriginPattern.parse("http://*:3000").match("http://a/b:3000") is False


@pytest.mark.parametrize(
    "text, message",
    [
        ("http://localhost:3000/", "no path or trailing slash: write 'http://localhost:3000'"),
        ("https://app.example.com/app", "write 'https://app.example.com'"),
        ("localhost:3000", "is not an origin"),
        ("https://app.example.com:443", "never send the default port"),
        ("http://", "has no host"),
    ],
)
def test_bad_origin_patterns_say_how_to_write_them(text, message):
    with pytest.raises(PatternError, match=message):
        OriginPattern.parse(text)


def test_origin_patterns_are_lowercased():
    assert OriginPattern.parse("HTTPS://App.Example.com").match("https://app.example.com")


def test_path_patterns_must_be_paths():
    assert parse_path_pattern("/v1/*").match("/v1/x")
    with pytest.raises(PatternError, match="start with '/'"):
        parse_path_pattern("v1/*")
    with pytest.raises(PatternError, match="without the query"):
        parse_path_pattern("/v1?x=1")


def test_tokens_and_header_lists():
    assert is_token("PATCH") and is_token("X-Custom_1")
    assert not is_token("GET POST") and not is_token("") and not is_token("a\r\nb") and not is_token("é")
    assert header_list("content-type,x-foo") == "content-type,x-foo"
    assert header_list(" content-type , authorization ") == "content-type,authorization"
    assert header_list("content-type,,x") == "content-type,x"  # RFC 9110 5.6.1: empty elements are ignored
    assert header_list("x-a, , x-b,") == "x-a,x-b"
    for bad in ("x-foo\r\nset-cookie: a", "x y", "x\x00", "a," * 3000):
        assert header_list(bad) is None


def test_hosts_from_flows_are_normalised_like_patterns():
    assert normalize_host("API.Example.com.") == "api.example.com"
    assert normalize_host("[::1]") == "::1"
    assert normalize_host("bücher.example") == "xn--bcher-kva.example"


def test_a_default_port_written_out_is_not_a_browser_origin_for_any_scheme():
    for origin in ("http://a.example:80", "https://a.example:443", "ws://a.example:80", "wss://a.example:443"):
        assert not is_browser_origin(origin)
    assert is_browser_origin("wss://a.example:8443")
