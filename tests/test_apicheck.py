"""The API check through mitmproxy's test helpers: verdicts on the API's own answers, the `observe`
action, and the report (command, file, summary at stop)."""

from __future__ import annotations

import json
import logging

import pytest
from mitmproxy import http
from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon
from corsaddon.apicheck import api_origin

from .flows import API, LOCAL, make_flow, run_hooks, upstream_response

RULES = '[[rules]]\nname = "api"\nhosts = ["api.example.com"]\n'


@pytest.fixture
def cors(tmp_path):
    def start(extra: str = ""):
        path = tmp_path / "rules.toml"
        path.write_text(RULES + extra)
        a = CorsAddon()
        ctx = taddons.context(a)
        tctx = ctx.__enter__()
        tctx.configure(a, cors_rules=str(path))
        a.tctx = tctx
        started.append(ctx)
        return a

    started = []
    yield start
    for ctx in started:
        ctx.__exit__(None, None, None)


def preflight(method="PUT", headers="content-type,x-custom", origin=LOCAL):
    return make_flow("OPTIONS", API, [("Origin", origin), ("Access-Control-Request-Method", method),
                                      ("Access-Control-Request-Headers", headers)])  # fmt: skip


def comment_of(flow) -> str:
    (line,) = [c for c in flow.comment.split("\n") if c.startswith("API check:")]
    return line


def test_observe_passes_every_flow_byte_for_byte_and_records_the_verdict(cors, caplog):
    caplog.set_level(logging.INFO)
    a = cors('action = "observe"\nupstream_origin = "drop"\n')
    f = preflight()
    sent = f.request.headers.fields
    answer = upstream_response(405, [("Allow", "GET")])
    run_hooks(a, f, answer.copy())
    assert f.request.headers.fields == sent  # forwarded as it was, Origin included
    assert (f.response.status_code, f.response.headers.fields) == (405, answer.headers.fields)
    assert (
        comment_of(f)
        == (
            "API check: fails: no Access-Control-Allow-Origin; the preflight answer's status is not 2xx "
            "(status 405); the method is not in Access-Control-Allow-Methods (method PUT asked, nothing allowed); "
            "a request header is not in Access-Control-Allow-Headers (header content-type asked, nothing allowed)"
        )[:300]
    )
    assert "cors: API http://api.example.com fails the browser's CORS check: no Access-Control-Allow-Origin" in (
        caplog.text
    )
    g = make_flow("GET", API, [("Origin", LOCAL), ("Cookie", "sid=1")])
    answer = upstream_response(200, [("Access-Control-Allow-Origin", "*")])
    run_hooks(a, g, answer.copy())
    assert g.response.headers.fields == answer.headers.fields
    assert comment_of(g) == (
        "API check: fails: Access-Control-Allow-Origin: * on a request with credentials "
        "(Access-Control-Allow-Origin: *)"
    )


def test_each_api_and_reason_is_logged_once(cors, caplog):
    caplog.set_level(logging.INFO)
    a = cors('action = "observe"\n')
    for _ in range(3):
        run_hooks(a, make_flow("GET", API, [("Origin", LOCAL)]), upstream_response())
    assert caplog.text.count("fails the browser's CORS check: no Access-Control-Allow-Origin") == 1


def test_a_preflight_the_proxy_answered_is_not_checked(cors):
    a = cors()
    f = run_hooks(a, preflight())
    assert f.response.status_code == 204
    assert comment_of(f).startswith("API check: not checked (answered by the proxy; an observe rule")


def test_an_inject_rule_checks_the_api_s_answer_before_changing_it(cors):
    a = cors("allow_credentials = true\n")
    f = run_hooks(a, make_flow("GET", API, [("Origin", LOCAL)]), upstream_response(200, [("Vary", "Origin")]))
    assert f.response.headers["Access-Control-Allow-Origin"] == LOCAL  # the addon's
    assert comment_of(f) == "API check: fails: no Access-Control-Allow-Origin"
    ok = upstream_response(200, [("Access-Control-Allow-Origin", LOCAL), ("Access-Control-Allow-Credentials", "true"),
                                 ("Vary", "Origin")])  # fmt: skip
    f = run_hooks(a, make_flow("GET", API, [("Origin", LOCAL)]), ok)
    assert comment_of(f) == "API check: passes"


def test_requests_without_origin_get_no_verdict(cors):
    a = cors()
    f = run_hooks(a, make_flow("GET", API), upstream_response())
    assert "API check" not in f.comment


def test_the_report_lists_verdicts_and_the_policy_seen(cors, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    a = cors('action = "observe"\nmax_age = 600\nexpose_headers = ["X-Request-Id"]\n')
    run_hooks(a, preflight("DELETE", "x-custom"), upstream_response(204))
    run_hooks(a, make_flow("DELETE", API, [("Origin", LOCAL), ("Cookie", "a=b")]), upstream_response())
    run_hooks(a, make_flow("GET", API, [("Origin", "http://localhost:5173")]), upstream_response())
    report = a.api_check.report.as_dict()["apis"]["http://api.example.com"]
    assert report["policy"] == {
        "origins": ["http://localhost:3000", "http://localhost:5173"],
        "methods": ["DELETE"],
        "headers": ["x-custom"],
        "credentials": True,
        "private_network": False,
        "max_age": 600,
        "expose_headers": ["X-Request-Id"],
    }
    verdicts = {v["reason"]: v["count"] for v in report["verdicts"]}
    assert verdicts["no Access-Control-Allow-Origin"] == 3
    assert set(report["config"]) == {"express", "starlette", "flask", "django", "nginx"}

    path = tmp_path / "report.json"
    a.tctx.configure(a, cors_report=str(path))
    text = a.api_check.report_command()
    assert text.startswith("# CORS report") and "### express" in text
    assert json.loads(path.read_text())["apis"]["http://api.example.com"]["policy"]["methods"] == ["DELETE"]
    md = tmp_path / "report.md"
    a.tctx.configure(a, cors_report=str(md))
    a.api_check.done()
    assert md.read_text() == text
    assert "cors: what the APIs must fix:\n  http://api.example.com: no Access-Control-Allow-Origin: 3" in caplog.text


def test_an_inject_rule_reports_only_the_origins_it_allows(cors):
    a = cors()
    run_hooks(a, make_flow("GET", API, [("Origin", "https://evil.example")]), upstream_response())
    run_hooks(a, make_flow("GET", API, [("Origin", LOCAL)]), upstream_response())
    assert a.api_check.report.as_dict()["apis"]["http://api.example.com"]["policy"]["origins"] == [LOCAL]


def test_nothing_recorded_means_no_summary_at_stop(cors, caplog):
    a = cors()
    a.api_check.done()
    assert "must fix" not in caplog.text


def test_expose_star_reports_every_header_name_the_api_sends(cors):
    a = cors('action = "observe"\nexpose_headers = "*"\n')
    for name in ("X-Request-Id", "X-Trace"):
        run_hooks(a, make_flow("GET", API, [("Origin", LOCAL)]), upstream_response(200, [(name, "1")]))
    policy = a.api_check.report.as_dict()["apis"]["http://api.example.com"]["policy"]
    assert policy["expose_headers"] == ["X-Request-Id", "X-Trace"]


# -- credentials as the browser counts them -----------------------------------------------------------


def test_a_bearer_token_the_page_sets_is_not_credentials_so_a_star_answer_passes(cors):
    a = cors('action = "observe"\n')
    f = make_flow("GET", API, [("Origin", LOCAL), ("Authorization", "Bearer t0ken")])
    run_hooks(a, f, upstream_response(200, [("Access-Control-Allow-Origin", "*")]))
    assert comment_of(f) == "API check: passes"
    assert a.api_check.report.as_dict()["apis"]["http://api.example.com"]["policy"]["credentials"] is False


def test_authorization_must_be_listed_by_name_in_the_preflight_answer(cors):
    a = cors('action = "observe"\n')
    star = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Headers", "*")]
    f = run_hooks(a, preflight("GET", "authorization"), upstream_response(204, star))
    assert comment_of(f) == (
        "API check: fails: a request header is not in Access-Control-Allow-Headers (header authorization asked, "
        "* allowed)"
    )
    named = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Headers", "Authorization")]
    f = run_hooks(a, preflight("GET", "authorization"), upstream_response(204, named))
    assert comment_of(f) == "API check: passes"
    assert a.api_check.report.as_dict()["apis"]["http://api.example.com"]["policy"]["headers"] == ["authorization"]


def test_a_cookie_or_a_rule_that_allows_credentials_makes_a_star_answer_fail(cors):
    star = [("Access-Control-Allow-Origin", "*")]
    a = cors('action = "observe"\n')
    f = run_hooks(a, make_flow("GET", API, [("Origin", LOCAL), ("Cookie", "sid=1")]), upstream_response(200, star))
    assert comment_of(f).startswith("API check: fails: Access-Control-Allow-Origin: * on a request with credentials")
    a = cors('action = "observe"\nallow_credentials = true\n')
    f = make_flow("GET", API, [("Origin", LOCAL), ("Authorization", "Bearer t0ken")])
    run_hooks(a, f, upstream_response(200, star))
    assert comment_of(f).startswith("API check: fails: Access-Control-Allow-Origin: * on a request with credentials")


# -- only the API's own answers are judged ------------------------------------------------------------

NOT_FROM_API = "API check: not checked (answered by mitmproxy, not the API)"


def test_an_answer_set_in_mitmproxy_gets_no_verdict_and_only_shapes_the_policy(cors):
    a = cors('action = "observe"\n')
    mocked = http.Response.make(200, b"{}")  # as map_local and other addons make it: complete at once
    f = run_hooks(a, make_flow("PUT", API, [("Origin", LOCAL)]), mocked)
    assert comment_of(f) == NOT_FROM_API
    api = a.api_check.report.as_dict()["apis"]["http://api.example.com"]
    assert api["verdicts"] == [] and api["policy"]["methods"] == ["PUT"]
    assert a.api_check.report.summary() == ["http://api.example.com: not checked (answered by mitmproxy, not the API)"]
    run_hooks(a, make_flow("PUT", API, [("Origin", LOCAL)]), upstream_response())
    api = a.api_check.report.as_dict()["apis"]["http://api.example.com"]
    assert [(v["reason"], v["count"]) for v in api["verdicts"]] == [("no Access-Control-Allow-Origin", 1)]


def test_a_server_replay_answer_gets_no_verdict(cors):
    a = cors('action = "observe"\n')
    f = make_flow("GET", API, [("Origin", LOCAL)])
    f.is_replay = "response"  # what server replay sets beside the recorded answer
    run_hooks(a, f, upstream_response())
    assert comment_of(f) == NOT_FROM_API
    assert a.api_check.report.as_dict()["apis"]["http://api.example.com"]["verdicts"] == []


@pytest.mark.parametrize(
    ("url", "origin"),
    [("http://api.example.com/x", "http://api.example.com"), ("https://api.example.com:443/x", "https://api.example.com"),
     ("http://api.example.com:8080/x", "http://api.example.com:8080"), ("https://[::1]:8443/x", "https://[::1]:8443"),
     ("http://[::1]/x", "http://[::1]")],
)  # fmt: skip
def test_api_origins_omit_the_scheme_s_default_port(url, origin):
    assert api_origin(make_flow("GET", url).request) == origin


def test_an_answer_set_in_mitmproxy_adds_no_exposed_header_names(cors):
    a = cors('action = "observe"\nexpose_headers = "*"\n')
    run_hooks(a, make_flow("GET", API, [("Origin", LOCAL)]), http.Response.make(200, b"{}", {"X-Mock": "1"}))
    assert a.api_check.report.as_dict()["apis"]["http://api.example.com"]["policy"]["expose_headers"] == []
