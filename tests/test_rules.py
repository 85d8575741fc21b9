import pytest

from corsaddon.parsing import RulesError, parse, parse_file
from corsaddon.rules import OriginList, RuleSet
from corsaddon.schema import LOCAL_ORIGINS, OriginMode, UpstreamOrigin


def no_filter(expression):
    raise AssertionError("no filter expected")


def simple_filter(expression):
    """Stands in for mitmproxy's compiler: `method=GET` matches flows whose .method is GET."""
    key, sep, value = expression.partition("=")
    if not sep:
        raise ValueError(f"Invalid filter expression: {expression!r}")
    return lambda flow: getattr(flow, key) == value


def rules(text, compile_filter=simple_filter):
    return parse(text, compile_filter, source="rules.toml")


def one(text, compile_filter=simple_filter):
    return rules(text, compile_filter).rules[0]


def error(text):
    with pytest.raises(RulesError) as e:
        rules(text)
    return str(e.value)


def test_defaults_when_nothing_is_set():
    rule = one('[[rules]]\nhosts = ["api.example.com"]')
    assert rule.name == "rule 1"
    assert rule.enabled and rule.action == "inject" and rule.preflight == "answer"
    assert rule.allow_origins == LOCAL_ORIGINS
    assert rule.allow_methods is None and rule.allow_headers is None  # "*": reflect
    assert rule.expose_headers == ()
    assert rule.allow_credentials is False and rule.max_age == 5
    assert rule.allow_private_network is False and rule.upstream_origin == UpstreamOrigin(OriginMode.KEEP)
    assert rule.paths == () and rule.filter is None


def test_defaults_table_applies_to_rules_that_do_not_set_the_key():
    rs = rules(
        """
        [defaults]
        allow_origins = ["https://app.example.com"]
        max_age = 60
        [[rules]]
        hosts = ["a.example"]
        [[rules]]
        hosts = ["b.example"]
        max_age = 0
        """
    )
    a, b = rs.rules
    assert a.allow_origins == b.allow_origins == ("https://app.example.com",)
    assert (a.max_age, b.max_age) == (60, 0)


def test_every_rule_key_is_read():
    rule = one(
        """
        [[rules]]
        name = "api"
        enabled = false
        hosts = ["api.example.com"]
        paths = ["/v1/*"]
        filter = "method=GET"
        action = "strip"
        allow_origins = ["http://localhost:*", "null"]
        allow_methods = ["GET", "PUT"]
        allow_headers = ["Authorization", "X-Custom"]
        expose_headers = "*"
        allow_credentials = true
        max_age = 600
        preflight = "forward"
        allow_private_network = true
        upstream_origin = "https://api.example.com"
        """
    )
    assert rule.name == "api" and not rule.enabled
    assert rule.paths[0].pattern == "/v1/*" and rule.filter_expr == "method=GET"
    assert rule.action == "strip" and rule.preflight == "forward"
    assert rule.allow_origins == ("http://localhost:*", "null")
    assert rule.methods_value == "GET, PUT" and rule.headers_value == "Authorization, X-Custom"
    assert rule.expose_headers is None
    assert rule.allow_credentials and rule.max_age == 600 and rule.allow_private_network
    assert rule.upstream_origin == UpstreamOrigin(OriginMode.REPLACE, "https://api.example.com")


def test_empty_lists_are_valid_and_mean_none_beyond_the_safelist():
    rule = one('[[rules]]\nhosts = ["a"]\nallow_methods = []\nallow_headers = []\nexpose_headers = []')
    assert rule.allow_methods == () and rule.allow_headers == () and rule.expose_headers == ()
    assert rule.methods_value == rule.headers_value == rule.expose_value == ""


@pytest.mark.parametrize(
    "body, expected",
    [
        ("hosts = []", "needs hosts"),
        ('name = "x"', "needs hosts"),
        ('hosts = "api.example.com"', 'hosts: expected a list of host patterns like ["api.example.com"]'),
        ('hosts = ["https://api.example.com"]', "hosts: hosts are names, not URLs: write 'api.example.com'"),
        ('hosts = ["a"]\npaths = ["v1"]', "paths: 'v1': path patterns start with '/'"),
        ('hosts = ["a"]\npaths = []', "paths: expected a non-empty list"),
        ('hosts = ["a"]\nfilter = "nonsense"', "filter: Invalid filter expression: 'nonsense'"),
        ('hosts = ["a"]\nfilter = ""', "filter: expected a mitmproxy filter expression"),
        ('hosts = ["a"]\naction = "allow"', "action: expected 'inject', 'strip' or 'observe', got 'allow'"),
        ('hosts = ["a"]\npreflight = true', "preflight: expected 'answer' or 'forward', got true"),
        ('hosts = ["a"]\nallow_origins = []', "allow_origins: expected a non-empty list of origins"),
        ('hosts = ["a"]\nallow_origins = "*"', "allow_origins: expected a non-empty list of origins"),
        ('hosts = ["a"]\nallow_origins = ["http://localhost:3000/"]', "no path or trailing slash"),
        ('hosts = ["a"]\nallow_methods = ["GET POST"]', "allow_methods: 'GET POST' is not a valid HTTP method"),
        ('hosts = ["a"]\nallow_headers = "any"', 'allow_headers: expected "*" or a list of header names'),
        ('hosts = ["a"]\nexpose_headers = [1]', 'expose_headers: expected "*" or a list of header names'),
        ('hosts = ["a"]\nallow_credentials = "yes"', "allow_credentials: expected true or false, got 'yes'"),
        ('hosts = ["a"]\nallow_private_network = 1', "allow_private_network: expected true or false"),
        ('hosts = ["a"]\nmax_age = -1', "max_age: expected a whole number of seconds >= 0, got -1"),
        ('hosts = ["a"]\nmax_age = 1.5', "max_age: expected a whole number"),
        ('hosts = ["a"]\nmax_age = true', "max_age: expected a whole number"),
        ('hosts = ["a"]\nupstream_origin = "http://x/"', 'upstream_origin: expected "keep", "drop" or an origin'),
        ('hosts = ["a"]\nenabled = "no"', "enabled: expected true or false"),
        ('hosts = ["a"]\nname = ""', "name: expected a non-empty string"),
        ('hosts = ["a"]\nallow_origin = ["x"]', "unknown key 'allow_origin' (did you mean 'allow_origins'?)"),
        ('hosts = ["a"]\nhost = ["x"]', "unknown key 'host' (did you mean 'hosts'?)"),
    ],
)
def test_a_bad_rule_names_the_file_line_rule_key_and_what_is_expected(body, expected):
    message = error(f'enabled = true\n\n[[rules]]\nname = "first"\nhosts = ["ok"]\n\n[[rules]]\n{body}\n')
    assert message.startswith("rules.toml, line 7: rule ")
    assert expected in message
    assert "\n" not in message


def test_toml_syntax_errors_carry_toml_line():
    message = error('[[rules]]\nhosts = ["a",, "b"]\n')
    assert message.startswith("rules.toml: TOML syntax error: ")
    assert "line 2" in message


def test_unknown_top_level_and_defaults_keys_are_errors_with_suggestions():
    assert "unknown key 'rule' (did you mean 'rules'?)" in error('[[rule]]\nhosts = ["a"]')
    assert "[defaults]: unknown key 'max_ages' (did you mean 'max_age'?)" in error("[defaults]\nmax_ages = 1")
    assert "'hosts' cannot be set here" in error('[defaults]\nhosts = ["a"]')
    assert "[defaults] max_age: expected a whole number" in error("[defaults]\nmax_age = -5")
    assert "unknown key 'allow_origins' (rule keys go under [[rules]] or [defaults])" in error('allow_origins = ["*"]')


def test_duplicate_rule_names_are_an_error():
    message = error('[[rules]]\nname = "api"\nhosts = ["a"]\n[[rules]]\nname = "api"\nhosts = ["b"]')
    assert "line 4: rule 'api': duplicate name 'api'" in message
    assert "duplicate name" in error('[[rules]]\nhosts = ["a"]\n[[rules]]\nname = "rule 1"\nhosts = ["b"]')


def test_warnings_for_every_host_any_origin_with_credentials_and_long_max_age():
    rs = rules(
        """
        [[rules]]
        name = "all"
        hosts = ["*"]
        [[rules]]
        name = "open"
        hosts = ["a"]
        allow_origins = ["*"]
        allow_credentials = true
        [[rules]]
        name = "long"
        hosts = ["b"]
        max_age = 86400
        """
    )
    text = "\n".join(rs.warnings)
    assert "rule 'all' applies to every host" in text
    assert "rule 'open' lets any origin read responses with credentials" in text
    assert "rule 'long': max_age = 86400, but Chromium caps it at 7200 s" in text
    assert len(rs.rules) == 3


@pytest.mark.parametrize(
    "origins, warned",
    [
        ('["https://*", "http://*"]', "'https://*', 'http://*'"),
        ('["*://*"]', "'*://*'"),
        ('["http://*:3000"]', "'http://*:3000'"),
        ('["https://*.*"]', "'https://*.*'"),
        ('["*"]', "'*'"),
    ],
)
def test_any_list_that_admits_every_host_with_credentials_is_warned_about(origins, warned):
    rs = rules(f'[[rules]]\nname = "open"\nhosts = ["a"]\nallow_origins = {origins}\nallow_credentials = true')
    (warning,) = rs.warnings
    assert warning.startswith("rule 'open' lets any origin read responses with credentials")
    assert f"allow_origins has {warned} and allow_credentials = true" in warning


@pytest.mark.parametrize("origins", ['["https://*.example.com"]', '["http://localhost:*"]', '["https://*.example.*"]'])
def test_origin_globs_narrowed_by_a_name_are_not_warned_about(origins):
    rs = rules(f'[[rules]]\nhosts = ["a"]\nallow_origins = {origins}\nallow_credentials = true')
    assert rs.warnings == ()


def test_file_level_switch_turns_every_rule_off():
    rs = rules('enabled = false\n[[rules]]\nhosts = ["a"]')
    assert not rs.enabled and rs.active == ()
    assert rs.match([("a", 80)], "/") is None
    assert rs.summary() == "switched off (enabled = false); no rules in force"


def names(host, port=443):
    return [(host, port)]


def test_first_enabled_rule_in_file_order_decides():
    rs = rules(
        """
        [[rules]]
        name = "off"
        enabled = false
        hosts = ["api.example.com"]
        [[rules]]
        name = "wild"
        hosts = ["*.example.com"]
        [[rules]]
        name = "exact"
        hosts = ["api.example.com"]
        """
    )
    assert rs.match(names("api.example.com"), "/").name == "wild"
    assert rs.summary() == "2 rules enabled of 3"


@pytest.mark.parametrize(
    "pattern, host, port, expected",
    [
        ("api.example.com", "api.example.com", 443, True),
        ("api.example.com", "api.example.com", 8443, True),
        ("api.example.com", "API.Example.com.", 443, True),
        ("api.example.com", "x.api.example.com", 443, False),
        ("api.example.com:8443", "api.example.com", 8443, True),
        ("api.example.com:8443", "api.example.com", 443, False),
        ("*.example.com", "a.example.com", 443, True),
        ("*.example.com", "a.b.c.example.com", 443, True),
        ("*.example.com", "example.com", 443, False),
        ("*.example.com", "badexample.com", 443, False),
        ("*.example.com:8443", "a.example.com", 8443, True),
        ("*.example.com:8443", "a.example.com", 443, False),
        ("[::1]", "::1", 8000, True),
        ("[::1]:8000", "::1", 8000, True),
        ("[::1]:8000", "::1", 9000, False),
        ("localhost:8000", "localhost", 8000, True),
        ("*", "anything.at.all", 1, True),
        ("bücher.example", "xn--bcher-kva.example", 443, True),
        ("xn--bcher-kva.example", "bücher.example", 443, True),
    ],
)
def test_host_patterns_match(pattern, host, port, expected):
    rs = rules(f'[[rules]]\nhosts = ["{pattern}"]')
    assert (rs.match([(host, port)], "/") is not None) is expected


def test_a_rule_matches_either_the_host_asked_for_or_the_destination():
    rs = rules('[[rules]]\nhosts = ["api.example.com"]')
    # reverse mode with keep_host_header: asked for localhost:8080, going to the API
    assert rs.match([("localhost", 8080), ("api.example.com", 443)], "/").name == "rule 1"
    assert rs.match([("localhost", 8080), ("other.example", 443)], "/") is None


def test_paths_match_the_path_as_sent_case_sensitively():
    rs = rules('[[rules]]\nhosts = ["a"]\npaths = ["/v1/*", "/health"]')
    assert rs.match(names("a"), "/v1/users/7")
    assert rs.match(names("a"), "/health")
    assert rs.match(names("a"), "/v1") is None
    assert rs.match(names("a"), "/V1/users") is None
    assert rs.rules[0].matches_path("/health") and not rs.rules[0].matches_path("/healthz")
    assert one('[[rules]]\nhosts = ["a"]').matches_path("/anything")  # no paths: every path


def test_path_mismatch_falls_through_to_later_rules():
    rs = rules('[[rules]]\nhosts = ["a"]\npaths = ["/v1/*"]\n[[rules]]\nname = "rest"\nhosts = ["a"]')
    assert rs.match(names("a"), "/v2/x").name == "rest"


class FakeFlow:
    def __init__(self, method):
        self.method = method


def test_filter_is_anded_with_hosts_and_a_filter_alone_matches_every_host():
    rs = rules(
        """
        [[rules]]
        name = "gets on a"
        hosts = ["a"]
        filter = "method=GET"
        [[rules]]
        name = "posts anywhere"
        filter = "method=POST"
        """
    )
    assert rs.match(names("a"), "/", FakeFlow("GET")).name == "gets on a"
    assert rs.match(names("a"), "/", FakeFlow("POST")).name == "posts anywhere"
    assert rs.match(names("zzz"), "/", FakeFlow("POST")).name == "posts anywhere"
    assert rs.match(names("zzz"), "/", FakeFlow("PUT")) is None


def test_ten_thousand_rules_are_found_by_lookup_not_by_scanning():
    evaluated = []

    def counting_filter(expression):
        return lambda flow: evaluated.append(expression) or True

    text = "\n".join(
        f'[[rules]]\nname = "r{i}"\nhosts = ["h{i}.example.com", "*.w{i}.example"]\nfilter = "f{i}"'
        for i in range(10_000)
    )
    rs = rules(text, counting_filter)
    assert rs.match(names("h9999.example.com"), "/").name == "r9999"
    assert rs.match(names("deep.x.w42.example"), "/").name == "r42"
    assert rs.match(names("nope.example.com"), "/") is None
    assert evaluated == ["f9999", "f42"]  # only the rule each host names was looked at
    assert [r.name for r in rs.candidates(tuple(names("h9999.example.com")))] == ["r9999"]
    assert rs.candidates(tuple(names("nope.example.com"))) == ()


def test_hit_counters_start_at_zero():
    rs = rules('[[rules]]\nhosts = ["a"]')
    assert rs.hits == [0]
    assert RuleSet().summary() == "0 rules enabled"


def test_file_reading(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nhosts = ["a"]\n')
    assert len(parse_file(str(path), no_filter).active) == 1
    path.write_text("  \n\n")
    assert parse_file(str(path), no_filter) is None  # empty: the caller keeps its rules
    path.write_bytes(b'[[rules]]\nhosts = ["\xff"]\n')
    with pytest.raises(RulesError, match=r"line 2: the file is not UTF-8 text \(byte 0xff\)"):
        parse_file(str(path), no_filter)
    path.write_bytes(b"#" * (9 * 1024 * 1024))
    with pytest.raises(RulesError, match="larger than 8 MB"):
        parse_file(str(path), no_filter)


def test_covers_says_whether_a_rule_names_a_host():
    rs = rules('[[rules]]\nhosts = ["api.example.com", "*.svc.example"]\npaths = ["/v1/*"]')
    assert rs.covers("api.example.com", 443) and rs.covers("a.svc.example", 80)
    assert not rs.covers("other.example", 443)
    assert not rules('enabled = false\n[[rules]]\nhosts = ["api.example.com"]').covers("api.example.com", 443)


def test_the_host_memo_keeps_only_what_a_dns_name_can_be():
    rs = rules('[[rules]]\nhosts = ["*"]\n[[rules]]\nhosts = ["api.example.com"]')
    assert len(rs.candidates((("a" * 300, 443),))) == 1  # `*` only
    assert len(rs.candidates((("api.example.com", 443),))) == 2
    assert list(rs._candidates) == [(("api.example.com", 443),)]


def test_the_user_s_pages_are_the_listed_origins():
    local = OriginList(LOCAL_ORIGINS)
    assert local.admits("http://localhost:3000") and local.admits("http://[::1]:8080")
    assert not local.admits("null") and not local.admits("https://app.example.com")
    assert not local.admits("http://localhost:3000/")  # not an origin as a browser sends it
    assert OriginList(["null"]).admits("null") and not OriginList(["null"]).admits("http://localhost:3000")
    assert OriginList(["*"]).admits("https://app.example.com") and not OriginList(["*"]).admits("null")
    assert OriginList(["https://app.example.com"]).admits("https://app.example.com")
