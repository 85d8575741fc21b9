"""Discovery: the APIs the user's pages fail on that no rule names. Observe only: a failing answer to
a cross-origin call from one of the user's pages gets a marker, a comment, one `cors:` line per host
and reason, and a place in the report; everything else is left alone."""

from __future__ import annotations

import json
import logging

import pytest
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode

from corsaddon import report as report_module
from corsaddon.describe import FAILS_CHECK
from corsaddon.flownotes import OWN

from .flows import make_flow, run_hooks, upstream_response

PAGE = "http://localhost:5173"  # a dev server: admitted by the built-in [defaults] allow_origins
HOST = "api.staging.acme.dev"
URL = f"https://{HOST}/v1/items"
RULES = '[[rules]]\nname = "api"\nhosts = ["api.example.com"]\n'  # names another host
NO_ACAO = "no Access-Control-Allow-Origin"
LINE = (
    f"cors: {HOST} fails CORS for {PAGE} ({NO_ACAO}) and no rule names it: "
    f'run cors.allow {HOST}, or add hosts = ["{HOST}"] to a rule'
)
COMMENT = f"fails CORS for {PAGE}: {NO_ACAO}; no rule matched it: cors.allow {HOST}"


@pytest.fixture
def cors(addon_on_rules):
    """start(content=RULES, *other_addons): the addon on a rules file holding `content`."""
    return lambda content=RULES, *others: addon_on_rules(content, *others)


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def discovery_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if " fails CORS for " in r.getMessage()]


def cors_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("cors:")]


def call(a, method="GET", url=URL, headers=(("Origin", PAGE),), answer=None, host_header=None) -> http.HTTPFlow:
    """A request through the addon's hooks, answered by the API with `answer` (default: a 200 without CORS)."""
    flow = make_flow(method, url, list(headers), host_header=host_header)
    return run_hooks(a, flow, upstream_response() if answer is None else answer)


def untouched(flow: http.HTTPFlow) -> bool:
    return flow.marked == "" and flow.comment == "" and OWN not in flow.metadata


def judged(flow: http.HTTPFlow) -> bool:
    return flow.marked == FAILS_CHECK and "fails CORS for" in flow.comment


def assert_left_alone(a, flow: http.HTTPFlow, caplog) -> None:
    assert discovery_lines(caplog) == []
    assert untouched(flow), (flow.marked, flow.comment)
    assert not a.api_check.report.unnamed


# -- the option --------------------------------------------------------------


def test_the_option_cors_discover_is_declared_and_on_by_default(cors):
    a = cors()
    assert a.tctx.options.cors_discover is True
    assert a.discovery.on is True


def test_cors_discover_false_logs_nothing_and_true_again_judges(cors, logs):
    a = cors()
    a.tctx.configure(a, cors_discover=False)
    f = call(a)
    assert_left_alone(a, f, logs)
    a.tctx.configure(a, cors_discover=True)
    assert judged(call(a))
    assert discovery_lines(logs) == [LINE]


# -- a failing call: named once, marked, reported ------------------------------


def test_a_failing_call_to_an_unnamed_host_is_marked_commented_and_logged_in_one_line(cors, logs):
    a = cors()
    flow = make_flow("GET", URL, [("Origin", PAGE)])
    sent = flow.request.headers.fields
    answer = upstream_response()
    run_hooks(a, flow, answer.copy())
    assert flow.marked == FAILS_CHECK
    assert flow.comment == COMMENT
    assert discovery_lines(logs) == [LINE]
    # Observe only: nothing in the traffic changes.
    assert flow.request.headers.fields == sent
    assert (flow.response.status_code, flow.response.headers.fields) == (200, answer.headers.fields)
    entry = a.api_check.report.unnamed[HOST]
    assert entry.origins == {PAGE} and entry.credentials is False
    assert [(r.value, v.count) for r, v in entry.verdicts.items()] == [(NO_ACAO, 1)]


def test_a_marker_the_user_set_is_kept_and_the_comment_is_added_below_theirs(cors, logs):
    a = cors()
    flow = make_flow("GET", URL, [("Origin", PAGE)])
    flow.marked, flow.comment = ":star:", "mine"
    run_hooks(a, flow, upstream_response())
    assert flow.marked == ":star:"
    assert flow.comment == f"mine\n{COMMENT}"


def test_a_passing_answer_logs_nothing_and_leaves_the_flow_alone(cors, logs):
    a = cors()
    passing = upstream_response(200, [("Access-Control-Allow-Origin", PAGE), ("Vary", "Origin")])
    assert_left_alone(a, call(a, answer=passing), logs)
    assert judged(call(a))  # the same call, the answer without its CORS headers


def test_a_warning_alone_is_not_a_failure(cors, logs):
    a = cors()
    no_vary = upstream_response(200, [("Access-Control-Allow-Origin", PAGE)])  # passes, without Vary: Origin
    assert_left_alone(a, call(a, answer=no_vary), logs)


def test_the_same_failure_again_logs_nothing_new_but_marks_and_counts_the_flow(cors, logs):
    a = cors()
    call(a)
    second = call(a)
    assert judged(second)
    assert discovery_lines(logs) == [LINE]
    assert [v.count for v in a.api_check.report.unnamed[HOST].verdicts.values()] == [2]


def test_a_new_reason_for_the_same_host_logs_one_more_line_with_only_that_reason(cors, logs):
    a = cors()
    call(a)
    wildcard = upstream_response(200, [("Access-Control-Allow-Origin", "*")])
    f = call(a, headers=[("Origin", PAGE), ("Cookie", "sid=1")], answer=wildcard)
    assert judged(f)
    reason = "Access-Control-Allow-Origin: * on a request with credentials"
    assert discovery_lines(logs) == [
        LINE,
        f"cors: {HOST} fails CORS for {PAGE} ({reason}) and no rule names it: "
        f'run cors.allow {HOST}, or add hosts = ["{HOST}"] to a rule with allow_credentials = true '
        "(the call carried cookies)",
    ]


def test_another_host_logs_its_own_line(cors, logs):
    a = cors()
    call(a)
    call(a, url="http://localhost:8000/v1/items")  # a local API on another port
    assert discovery_lines(logs) == [
        LINE,
        f"cors: localhost:8000 fails CORS for {PAGE} ({NO_ACAO}) and no rule names it: "
        'run cors.allow localhost:8000, or add hosts = ["localhost:8000"] to a rule',
    ]
    assert sorted(a.api_check.report.unnamed) == [HOST, "localhost:8000"]


def test_the_new_reasons_of_one_call_share_one_line(cors, logs):
    a = cors()
    preflight = [("Origin", PAGE), ("Access-Control-Request-Method", "PUT")]
    f = call(a, "OPTIONS", headers=preflight, answer=upstream_response(405, [("Allow", "GET")], b""))
    assert judged(f)
    reasons = f"{NO_ACAO}; the preflight answer's status is not 2xx; the method is not in Access-Control-Allow-Methods"
    assert discovery_lines(logs) == [
        f"cors: {HOST} fails CORS for {PAGE} ({reasons}) and no rule names it: "
        f'run cors.allow {HOST}, or add hosts = ["{HOST}"] to a rule'
    ]
    assert f.comment == (
        f"fails CORS for {PAGE}: {NO_ACAO}; the preflight answer's status is not 2xx (status 405); "
        "the method is not in Access-Control-Allow-Methods (method PUT asked, nothing allowed); "
        f"no rule matched it: cors.allow {HOST}"
    )


def test_a_call_with_reasons_already_logged_and_new_ones_logs_only_the_new_ones(cors, logs):
    a = cors()
    call(a)  # no Access-Control-Allow-Origin: logged
    preflight = [("Origin", PAGE), ("Access-Control-Request-Method", "PUT")]
    call(a, "OPTIONS", headers=preflight, answer=upstream_response(405, [], b""))  # that one again, and two more
    reasons = "the preflight answer's status is not 2xx; the method is not in Access-Control-Allow-Methods"
    assert discovery_lines(logs) == [
        LINE,
        f"cors: {HOST} fails CORS for {PAGE} ({reasons}) and no rule names it: "
        f'run cors.allow {HOST}, or add hosts = ["{HOST}"] to a rule',
    ]
    assert [v.count for v in a.api_check.report.unnamed[HOST].verdicts.values()] == [2, 1, 1]


# -- preflights and credentials -----------------------------------------------


def test_a_preflight_answered_without_the_method_fails_on_the_method_alone(cors, logs):
    a = cors()
    preflight = [("Origin", PAGE), ("Access-Control-Request-Method", "DELETE")]
    answer = upstream_response(204, [("Access-Control-Allow-Origin", PAGE), ("Vary", "Origin")], b"")
    f = call(a, "OPTIONS", headers=preflight, answer=answer)
    assert judged(f)
    assert [line.split(" (", 1)[1].split(")")[0] for line in discovery_lines(logs)] == [
        "the method is not in Access-Control-Allow-Methods"
    ]
    assert "(method DELETE asked, nothing allowed)" in f.comment


def test_a_preflight_answered_without_the_requested_header_fails_on_the_header(cors, logs):
    a = cors()
    preflight = [("Origin", PAGE), ("Access-Control-Request-Method", "PUT"),
                 ("Access-Control-Request-Headers", "Content-Type, X-Custom")]  # fmt: skip
    allowed = [("Access-Control-Allow-Origin", PAGE), ("Access-Control-Allow-Methods", "PUT"),
               ("Access-Control-Allow-Headers", "content-type"), ("Vary", "Origin")]  # fmt: skip
    answer = upstream_response(204, allowed, b"")
    f = call(a, "OPTIONS", headers=preflight, answer=answer)
    assert judged(f)
    assert "a request header is not in Access-Control-Allow-Headers (header x-custom asked, content-type allowed)" in (
        f.comment
    )


def test_a_passing_preflight_logs_nothing(cors, logs):
    a = cors()
    preflight = [("Origin", PAGE), ("Access-Control-Request-Method", "PUT"), ("Access-Control-Request-Headers", "x-a")]
    ok = [("Access-Control-Allow-Origin", PAGE), ("Access-Control-Allow-Methods", "PUT"),
          ("Access-Control-Allow-Headers", "x-a"), ("Vary", "Origin")]  # fmt: skip
    assert_left_alone(a, call(a, "OPTIONS", headers=preflight, answer=upstream_response(204, ok, b"")), logs)
    assert judged(call(a, "OPTIONS", headers=preflight, answer=upstream_response(204, ok[1:], b"")))


def test_a_call_with_cookies_needs_allow_credentials(cors, logs):
    a = cors()
    answer = upstream_response(200, [("Access-Control-Allow-Origin", PAGE), ("Vary", "Origin")])
    assert_left_alone(a, call(a, answer=answer.copy()), logs)  # no cookie: it passes
    f = call(a, headers=[("Origin", PAGE), ("Cookie", "sid=1")], answer=answer.copy())
    assert judged(f)
    assert "no Access-Control-Allow-Credentials: true on a request with credentials (absent)" in f.comment
    assert "(no Access-Control-Allow-Credentials: true on a request with credentials)" in discovery_lines(logs)[0]
    assert a.api_check.report.unnamed[HOST].credentials is True


def test_a_call_with_cookies_fails_on_a_wildcard_origin(cors, logs):
    a = cors()
    wildcard = upstream_response(200, [("Access-Control-Allow-Origin", "*")])
    assert_left_alone(a, call(a, answer=wildcard.copy()), logs)  # no cookie: * is fine
    f = call(a, headers=[("Origin", PAGE), ("Cookie", "sid=1")], answer=wildcard.copy())
    assert judged(f)
    assert "Access-Control-Allow-Origin: * on a request with credentials" in discovery_lines(logs)[0]


def test_calls_without_cookies_leave_credentials_off_in_the_report(cors, logs):
    a = cors()
    call(a)
    call(a, url="http://localhost:8000/x", headers=[("Origin", PAGE), ("Cookie", "sid=1")])
    unnamed = a.api_check.report.unnamed
    assert (unnamed[HOST].credentials, unnamed["localhost:8000"].credentials) == (False, True)


def test_a_later_call_without_cookies_does_not_take_credentials_back(cors, logs):
    a = cors()
    call(a, headers=[("Origin", PAGE), ("Cookie", "sid=1")])
    call(a)
    assert a.api_check.report.unnamed[HOST].credentials is True


# -- which calls qualify --------------------------------------------------------


def test_a_request_without_origin_is_left_alone(cors, logs):
    a = cors()
    assert_left_alone(a, call(a, headers=()), logs)
    assert judged(call(a))


def test_a_request_with_two_origins_is_left_alone(cors, logs):
    a = cors()
    assert_left_alone(a, call(a, headers=[("Origin", PAGE), ("Origin", PAGE)]), logs)
    assert judged(call(a, headers=[("Origin", PAGE)]))


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://localhost", "null", "http://localhost:5173/", "localhost:5173", ""],
)
def test_an_origin_outside_the_default_allow_origins_is_left_alone(cors, logs, origin):
    a = cors()
    assert_left_alone(a, call(a, headers=[("Origin", origin)]), logs)
    assert judged(call(a, headers=[("Origin", "http://localhost:5174")]))


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "https://localhost:8443", "http://127.0.0.1:8080", "http://[::1]:3000"]
)
def test_the_built_in_page_origins_are_the_local_dev_servers(cors, logs, origin):
    a = cors()
    assert judged(call(a, headers=[("Origin", origin)]))
    assert discovery_lines(logs)[0].startswith(f"cors: {HOST} fails CORS for {origin} ({NO_ACAO})")


def test_defaults_allow_origins_says_which_pages_are_the_user_s(cors, logs):
    a = cors('[defaults]\nallow_origins = ["https://app.acme.dev"]\n\n' + RULES)
    assert_left_alone(a, call(a), logs)  # localhost is not the user's page any more
    assert judged(call(a, headers=[("Origin", "https://app.acme.dev")]))
    assert discovery_lines(logs)[0].startswith(f"cors: {HOST} fails CORS for https://app.acme.dev ({NO_ACAO})")


def test_a_same_origin_post_with_origin_is_left_alone(cors, logs):
    a = cors()
    own = "http://localhost:5173/api/items"  # the page's own server, through the proxy
    assert_left_alone(a, call(a, "POST", own, headers=[("Origin", PAGE)]), logs)
    assert judged(call(a, "POST", own, headers=[("Origin", "http://localhost:3000")]))


def reverse_flow(origin: str, tls: bool = False) -> http.HTTPFlow:
    """A call to a reverse proxy listening on port 8080 for http://127.0.0.1:9 (the URL is the API's)."""
    flow = make_flow("GET", "http://127.0.0.1:9/v1/items", [("Origin", origin)])
    flow.client_conn.proxy_mode = ProxyMode.parse("reverse:http://127.0.0.1:9")
    flow.client_conn.sockname = ("127.0.0.1", 8080)
    flow.client_conn.tls = tls
    return flow


@pytest.mark.parametrize("origin", ["http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"])
def test_reverse_mode_a_page_served_by_the_proxy_itself_is_same_origin(cors, logs, origin):
    a = cors()
    assert_left_alone(a, run_hooks(a, reverse_flow(origin), upstream_response()), logs)
    judged_flow = run_hooks(a, reverse_flow("http://localhost:5173"), upstream_response())  # another port
    assert judged(judged_flow)
    assert discovery_lines(logs) == [
        f"cors: 127.0.0.1:9 fails CORS for http://localhost:5173 ({NO_ACAO}) and no rule names it: "
        'run cors.allow 127.0.0.1:9, or add hosts = ["127.0.0.1:9"] to a rule'
    ]


def test_reverse_mode_the_scheme_counts_for_same_origin(cors, logs):
    a = cors()
    assert_left_alone(a, run_hooks(a, reverse_flow("https://localhost:8080", tls=True), upstream_response()), logs)
    assert judged(run_hooks(a, reverse_flow("https://localhost:8080", tls=False), upstream_response()))


def test_an_answer_made_in_mitmproxy_is_left_alone(cors, logs):
    a = cors()
    made = http.Response.make(200, b"from map_local")  # complete: it has a timestamp_end
    assert made.timestamp_end is not None
    assert_left_alone(a, call(a, answer=made), logs)
    assert judged(call(a))


def test_a_replayed_answer_is_left_alone(cors, logs):
    a = cors()
    flow = make_flow("GET", URL, [("Origin", PAGE)])
    flow.is_replay = "response"
    assert_left_alone(a, run_hooks(a, flow, upstream_response()), logs)


def test_a_websocket_handshake_is_left_alone(cors, logs):
    a = cors()
    handshake = [("Origin", PAGE), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
                 ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]  # fmt: skip
    answer = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    url = f"https://{HOST}/socket"
    assert_left_alone(a, call(a, url=url, headers=handshake, answer=upstream_response(101, answer, b"")), logs)
    without_upgrade = [h for h in handshake if h[0] != "Upgrade"]
    assert judged(call(a, url=url, headers=without_upgrade, answer=upstream_response(101, answer, b"")))


def test_cors_enabled_false_leaves_unmatched_flows_alone(cors, logs):
    a = cors()
    a.tctx.configure(a, cors_enabled=False)
    assert_left_alone(a, call(a), logs)
    a.tctx.configure(a, cors_enabled=True)
    assert judged(call(a))


def test_a_file_switched_off_leaves_unmatched_flows_alone(cors, logs):
    a = cors("enabled = false\n" + RULES)
    assert_left_alone(a, call(a), logs)


def test_a_file_switched_on_judges_the_same_call(cors, logs):
    a = cors("enabled = true\n" + RULES)
    assert judged(call(a))


def test_a_flow_a_rule_decides_is_the_api_check_s_not_discovery_s(cors, logs):
    a = cors(f'[[rules]]\nname = "acme"\nhosts = ["{HOST}"]\naction = "observe"\n')
    f = call(a)
    assert discovery_lines(logs) == []
    assert not a.api_check.report.unnamed
    assert "API check: fails: no Access-Control-Allow-Origin" in f.comment


# -- the wording when a rule names the host ----------------------------------


def test_a_host_only_a_disabled_rule_names_is_told_to_enable_it(cors, logs):
    a = cors(RULES + f'\n[[rules]]\nname = "acme staging"\nenabled = false\nhosts = ["{HOST}"]\n')
    assert judged(call(a))
    assert discovery_lines(logs) == [
        f"cors: {HOST} fails CORS for {PAGE} ({NO_ACAO}) and only the disabled rule 'acme staging' names it: "
        "set enabled = true in that rule"
    ]


def test_a_host_an_enabled_rule_names_but_whose_paths_leave_the_request_out_says_so(cors, logs):
    a = cors(RULES + '\n[[rules]]\nname = "acme"\nhosts = ["*.acme.dev"]\npaths = ["/v2/*"]\n')
    assert judged(call(a))  # /v1/items: not under /v2/
    assert discovery_lines(logs) == [
        f"cors: {HOST} fails CORS for {PAGE} ({NO_ACAO}): rule 'acme' names it but leaves this request out: "
        "it sets CORS for http://localhost:*, https://localhost:*, http://127.0.0.1:*, http://[::1]:*, "
        "only for paths /v2/*"
    ]


def test_a_host_an_enabled_rule_names_but_whose_filter_leaves_the_request_out_says_so(cors, logs):
    a = cors(RULES + f'\n[[rules]]\nname = "acme"\nhosts = ["{HOST}"]\naction = "strip"\nfilter = "~m POST"\n')
    assert judged(call(a))
    (line,) = discovery_lines(logs)
    assert line.endswith(
        "rule 'acme' names it but leaves this request out: it strips the API's CORS headers "
        "(action = \"strip\"), only for filter '~m POST'"
    )


def test_a_rule_for_the_host_on_another_port_does_not_name_it(cors, logs):
    a = cors(RULES + f'\n[[rules]]\nname = "acme"\nenabled = false\nhosts = ["{HOST}:8443"]\n')
    call(a)
    assert discovery_lines(logs) == [LINE]


# -- the report -------------------------------------------------------------------


def test_the_report_lists_the_host_in_markdown_json_and_the_summary(cors, logs, tmp_path):
    a = cors()
    call(a)
    call(a)
    call(a, headers=[("Origin", "http://localhost:3000"), ("Cookie", "sid=1")])
    text = a.tctx.master.commands.call_strings("cors.report", [])
    assert text.startswith("# CORS report\n")
    assert (
        "## Hosts no rule names\n\nCalls from your pages that fail CORS, to hosts no rule names:\n\n"
        "| host | verdict | calls | example | fix |\n|---|---|---|---|---|\n"
        f"| {HOST} | {NO_ACAO} | 3 | GET /v1/items from {PAGE}: {NO_ACAO} | cors.allow {HOST} |\n"
    ) in text
    data = json.loads(a.api_check.report.as_json())
    assert data["unnamed_hosts"] == {
        HOST: {
            "verdicts": [{"reason": NO_ACAO, "count": 3, "example": f"GET /v1/items from {PAGE}: {NO_ACAO}"}],
            "origins": ["http://localhost:3000", PAGE],
            "credentials": True,
            "fix": f"cors.allow {HOST}",
        }
    }
    assert a.api_check.report.summary() == [f"{HOST} (no rule names it: cors.allow {HOST}): {NO_ACAO}: 3"]
    path = tmp_path / "report.json"
    a.tctx.configure(a, cors_report=str(path))
    a.api_check.done()
    assert HOST in json.loads(path.read_text())["unnamed_hosts"]
    assert f"cors: what the APIs must fix:\n  {HOST} (no rule names it: cors.allow {HOST}): {NO_ACAO}: 3" in logs.text


def test_an_empty_report_has_no_unnamed_hosts(cors):
    a = cors()
    assert a.api_check.report.as_dict()["unnamed_hosts"] == {}
    assert "## Hosts no rule names" not in a.api_check.report.as_markdown()


def test_memory_is_bounded_by_max_apis_hosts_and_as_many_lines(cors, logs):
    a = cors()
    flows = [call(a, url=f"https://api{i}.acme.dev/x") for i in range(150)]
    report = a.api_check.report
    assert len(report.unnamed) == report_module.MAX_APIS
    assert report.dropped_unnamed
    assert len(discovery_lines(logs)) == report_module.MAX_APIS
    assert "api149.acme.dev" not in report.unnamed and "api99.acme.dev" in report.unnamed
    assert f"(more than {report_module.MAX_APIS} such hosts were seen; the others are left out)" in (
        report.as_markdown()
    )
    assert all(judged(f) for f in flows)  # each flow still says what is wrong with it


def test_origins_per_host_are_bounded(cors, logs):
    a = cors()
    for port in range(3000, 3000 + 2 * report_module.MAX_ITEMS):
        call(a, headers=[("Origin", f"http://localhost:{port}")])
    assert len(a.api_check.report.unnamed[HOST].origins) == report_module.MAX_ITEMS
    assert len(discovery_lines(logs)) == 1


# -- hostile input ----------------------------------------------------------


MEGABYTE = 1024 * 1024


def test_a_megabyte_host_header_logs_no_long_line_and_records_nothing(cors, logs):
    a = cors()
    f = call(a, host_header="a" * MEGABYTE)
    assert discovery_lines(logs) == []
    assert all(len(line) < 1000 for line in cors_lines(logs))
    assert not a.api_check.report.unnamed
    assert untouched(f)
    long_but_valid = ".".join(["x" * 60] * 3) + ".acme.dev"  # 193 characters: a real DNS name
    g = call(a, host_header=long_but_valid)
    assert judged(g)
    (line,) = discovery_lines(logs)
    assert long_but_valid in line and len(line) < 1000


@pytest.mark.parametrize("origin", [PAGE + "x" * MEGABYTE, "http://localhost:" + "5" * MEGABYTE])
def test_a_megabyte_origin_logs_no_long_line_and_records_nothing(cors, logs, origin):
    a = cors()
    f = call(a, headers=[("Origin", origin)])
    assert discovery_lines(logs) == []
    assert all(len(line) < 1000 for line in cors_lines(logs))
    assert not a.api_check.report.unnamed
    assert untouched(f)


def test_a_megabyte_origin_is_no_page_s_even_when_defaults_admit_every_origin(cors, logs):
    a = cors('[defaults]\nallow_origins = ["*"]\n\n' + RULES)
    f = call(a, headers=[("Origin", "http://" + "a" * MEGABYTE)])
    assert discovery_lines(logs) == []
    assert not a.api_check.report.unnamed and untouched(f)
    assert judged(call(a, headers=[("Origin", "https://any.example")]))  # "*": every real origin is a page's


def test_megabyte_values_elsewhere_are_judged_with_short_lines_comments_and_examples(cors, logs):
    a = cors()
    big = "v" * MEGABYTE
    call(a, url=f"{URL}/{big}", headers=[("Origin", PAGE), ("Cookie", big), ("X-Big", big)])
    mismatch = upstream_response(200, [("Access-Control-Allow-Origin", big), ("X-Big", big)])
    f = call(a, answer=mismatch)
    preflight = [("Origin", PAGE), ("Access-Control-Request-Method", "PUT" + big),
                 ("Access-Control-Request-Headers", ",".join(["x-h"] * 200_000))]  # fmt: skip
    g = call(a, "OPTIONS", headers=preflight, answer=upstream_response(204, [("Access-Control-Allow-Origin", PAGE)]))
    assert judged(f) and judged(g)
    assert len(f.comment) <= 401 and len(g.comment) <= 401  # 400 characters and …
    lines = discovery_lines(logs)
    assert len(lines) == 3  # no ACAO; the wrong ACAO; the method and the header (one line per call's new reasons)
    assert all(len(line) < 1000 for line in cors_lines(logs))
    entry = a.api_check.report.unnamed[HOST]
    assert all(len(v.example) <= 301 for v in entry.verdicts.values())
    assert len(a.api_check.report.as_markdown()) < 10_000


# -- found in review -----------------------------------------------------------


def test_control_bytes_the_api_sends_are_escaped_in_the_comment_the_report_and_the_log(cors, logs):
    a = cors()
    evil = upstream_response(200, [("Access-Control-Allow-Origin", "http://evil\x1b[31mRED\x07")])
    f = call(a, answer=evil)
    assert judged(f)
    written = [f.comment, a.api_check.report.as_markdown(), *cors_lines(logs)]
    assert "\\x1b[31mRED\\x07" in f.comment
    assert not any("\x1b" in text or "\x07" in text for text in written), written


@pytest.mark.parametrize("mode", ["navigate", "no-cors", "NAVIGATE"])
def test_a_navigation_or_a_no_cors_fetch_is_not_a_cors_call(cors, logs, mode):
    a = cors()
    f = call(a, "POST", headers=[("Origin", PAGE), ("Sec-Fetch-Mode", mode)])
    assert_left_alone(a, f, logs)
    assert judged(call(a, "POST", headers=[("Origin", PAGE), ("Sec-Fetch-Mode", "cors")]))


@pytest.mark.parametrize("host", [".", "..", "[::1", "a b"])
def test_a_host_header_no_rule_could_hold_is_not_named(cors, logs, host):
    a = cors()
    f = call(a, url="http://127.0.0.1:9/x", host_header=host)
    assert_left_alone(a, f, logs)


def test_a_host_a_reloaded_rule_names_leaves_the_report_list(cors, logs):
    a = cors()
    call(a)
    assert HOST in a.api_check.report.unnamed
    a.path.write_text(RULES + f'[[rules]]\nname = "now"\nhosts = ["{HOST}"]\n')
    a.rules_file.load(a.rules_file.path)
    assert HOST not in a.api_check.report.unnamed
    assert "Hosts no rule names" not in a.api_check.report.as_markdown()


def test_a_report_path_that_cannot_be_a_file_logs_one_error(cors, logs):
    a = cors()
    call(a)
    a.tctx.options.update(cors_report="/tmp/no\0such.md")
    a.api_check.write()
    assert [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR][0].startswith(
        "cors: cannot write the report to"
    )
