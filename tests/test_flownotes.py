"""Markers, comments, per-flow lines, cors.toggle/cors.status and safe cors_rules edits,
through mitmproxy's test helpers (the real UIs: tests/test_ui.py)."""

from __future__ import annotations

import json
import logging

import pytest
from mitmproxy import exceptions
from mitmproxy.log import ALERT
from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon

from .flows import LOCAL, make_flow, run_hooks
from .flows import upstream_response as upstream

RULES = """
[[rules]]
name = "strip"
hosts = ["api.example.com"]
paths = ["/strip/*"]
action = "strip"

[[rules]]
name = "observe"
hosts = ["api.example.com"]
paths = ["/observe/*"]
action = "observe"

[[rules]]
name = "api"
hosts = ["api.example.com"]
allow_origins = ["http://localhost:*"]
allow_credentials = true
expose_headers = ["X-Request-Id"]
"""
API = "http://api.example.com"


@pytest.fixture
def cors(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    a = CorsAddon()
    with taddons.context(a) as tctx:
        tctx.configure(a, cors_rules=str(rules))
        a.tctx = tctx
        a.is_running = True  # as after `running` (without the watcher, which needs an event loop)
        yield a


def preflight(path="/v1/users", origin=LOCAL):
    return make_flow("OPTIONS", API + path, [("Origin", origin), ("Access-Control-Request-Method", "PUT")])


def get(path="/v1/users", origin=LOCAL):
    return make_flow("GET", API + path, [("Origin", origin)] if origin else [])


def test_each_decision_carries_its_marker(cors):
    api_cors = [("Access-Control-Allow-Origin", LOCAL)]
    assert run_hooks(cors, preflight()).marked == ":zap:"
    assert run_hooks(cors, get(), upstream()).marked == ":white_check_mark:"
    assert run_hooks(cors, get(origin="https://evil.example"), upstream()).marked == ":no_entry:"
    assert run_hooks(cors, get("/strip/x"), upstream(headers=api_cors)).marked == ":scissors:"
    assert run_hooks(cors, get("/observe/x"), upstream()).marked == ":warning:"  # fails the browser's check
    assert run_hooks(cors, get("/observe/x"), upstream(headers=api_cors)).marked == ":eyes:"
    assert run_hooks(cors, get(origin=None), upstream()).marked == ""  # not a CORS request


def test_a_marker_the_user_set_is_kept_and_cors_mark_off_sets_none(cors):
    f = preflight()
    f.marked = ":star:"
    assert run_hooks(cors, f).marked == ":star:"
    cors.tctx.options.update(cors_mark=False)
    assert run_hooks(cors, preflight()).marked == ""


def test_comments_put_the_decision_first_then_the_rule(cors):
    f = run_hooks(cors, get(), upstream(headers=[("Access-Control-Allow-Origin", "*")]))
    assert f.comment.split("\n") == [
        "CORS set for http://localhost:3000: Allow-Origin, Allow-Credentials, Expose-Headers; "
        "the API's Allow-Origin replaced · cors rule 'api'",
        "API check: fails: Access-Control-Allow-Origin: * on a request with credentials "
        "(Access-Control-Allow-Origin: *)",
    ]
    f = run_hooks(cors, get(origin="https://evil.example"), upstream())
    assert f.comment.split("\n")[0] == (
        "origin refused: https://evil.example is not in allow_origins (http://localhost:*) · cors rule 'api'"
    )
    f = run_hooks(cors, get("/strip/x"), upstream(headers=[("Access-Control-Allow-Methods", "GET")]))
    assert f.comment.startswith("CORS stripped; the API's Allow-Methods removed · cors rule 'strip'")
    assert (
        run_hooks(cors, get(origin=None), upstream()).comment == "no Origin: only Vary: Origin added · cors rule 'api'"
    )


def test_the_comment_names_the_cors_headers_actually_set(cors, tmp_path):
    star = tmp_path / "star.toml"
    star.write_text('[[rules]]\nname = "star"\nhosts = ["api.example.com"]\nexpose_headers = "*"\n')
    cors.tctx.options.update(cors_rules=str(star))
    f = run_hooks(cors, get(), upstream())  # Content-Type and Content-Length only: nothing to expose
    assert f.comment.startswith(f"CORS set for {LOCAL}: Allow-Origin · cors rule 'star'")
    f = run_hooks(cors, get(), upstream(headers=[("X-Request-Id", "7")]))
    assert f.comment.startswith(f"CORS set for {LOCAL}: Allow-Origin, Expose-Headers · cors rule 'star'")


def test_a_hostile_origin_is_quoted_and_cut_short_in_the_comment(cors):
    f = run_hooks(cors, get(origin="http://x\x1b[31m" + "y" * 5000), upstream())
    first = f.comment.split("\n")[0]
    assert first.startswith("origin refused: 'http://x\\x1b[31myyy") and "\x1b" not in first
    assert len(first) < 300


def test_a_replayed_flow_keeps_one_comment_and_is_not_counted_again(cors, tmp_path):
    f = preflight()
    f.comment = "my own note"
    run_hooks(cors, f)
    first = f.comment
    replay(cors, f)
    assert f.comment == first and f.comment.startswith("my own note\npreflight answered")
    g = run_hooks(cors, get(), upstream())
    replay(cors, g, upstream())
    assert cors.ruleset.hits[2] == 2
    assert report_counts(cors, tmp_path) == {"not checked": 1, "no Access-Control-Allow-Origin": 1}
    run_hooks(cors, preflight())  # the same call again, not a replay: counted
    run_hooks(cors, get(), upstream())
    assert cors.ruleset.hits[2] == 4
    assert report_counts(cors, tmp_path) == {"not checked": 2, "no Access-Control-Allow-Origin": 2}


def replay(cors, f, answer=None):
    """The flow again, as mitmproxy's client replay plays it: the same flow, its response dropped."""
    f.is_replay = "request"
    f.response = None
    run_hooks(cors, f, answer)


def report_counts(cors, tmp_path) -> dict[str, int]:
    """The calls counted per verdict in the report cors.report writes (JSON), for the one API."""
    path = tmp_path / "report.json"
    cors.tctx.options.update(cors_report=str(path))
    cors.tctx.master.commands.call("cors.report")
    (api,) = json.loads(path.read_text())["apis"].values()
    return {v["reason"].split(" (")[0]: v["count"] for v in api["verdicts"]}


def test_flows_passing_while_the_addon_is_off_say_so(cors):
    cors.tctx.options.update(cors_enabled=False)
    f = run_hooks(cors, preflight())
    assert f.response is None and f.marked == ""
    assert f.comment == "passed untouched: cors_enabled is off · cors rule 'api'"
    assert run_hooks(cors, make_flow("GET", "http://elsewhere.example/")).comment == ""


def test_each_decided_flow_gets_one_log_line_unless_cors_flow_log_is_off(cors, caplog):
    caplog.set_level(logging.INFO)
    run_hooks(cors, preflight())
    run_hooks(cors, get("/observe/x"), upstream())
    lines = [r.getMessage() for r in caplog.records if r.name == "corsaddon.flownotes"]
    assert lines == [
        "cors: OPTIONS api.example.com/v1/users: preflight answered for http://localhost:3000 (rule 'api')",
        "cors: GET api.example.com/observe/x: observed, unchanged (rule 'observe'); "
        "API check: fails: no Access-Control-Allow-Origin",
    ]
    caplog.clear()
    cors.tctx.options.update(cors_flow_log=False)
    run_hooks(cors, preflight())
    assert not [r for r in caplog.records if r.name == "corsaddon.flownotes"]


def test_toggle_says_the_new_state_in_the_command_result_and_an_alert(cors, caplog):
    caplog.set_level(logging.INFO)
    assert cors.toggle() == "cors: off (cors_enabled = false): every flow passes untouched; cors.toggle switches it on"
    assert [r.getMessage() for r in caplog.records if r.levelno == ALERT] == [cors.state_line()]
    assert cors.toggle() == "cors: on; 3 rules enabled"


def test_a_cors_rules_value_naming_no_file_is_refused_quietly_and_changes_nothing(cors, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    before = cors.rules_file.path
    for typed in ("/", str(tmp_path / "r"), str(tmp_path / "rul"), str(tmp_path / "rules.tom")):
        with pytest.raises(exceptions.OptionsError, match="not found|Is a directory"):
            cors.tctx.options.update(cors_rules=typed)
    assert cors.rules_file.path == before and cors.tctx.options.cors_rules == before
    assert not [r for r in caplog.records if "cors:" in r.getMessage()]
    assert run_hooks(cors, preflight()).response.status_code == 204


def test_a_cors_rules_file_that_does_not_parse_is_refused_with_a_one_line_message(cors, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\nhosts = [")
    with pytest.raises(exceptions.OptionsError) as refused:
        cors.tctx.options.update(cors_rules=str(bad))
    assert "\n" not in str(refused.value) and "bad.toml" in str(refused.value)
    assert run_hooks(cors, preflight()).response.status_code == 204
    good = tmp_path / "good.toml"
    good.write_text(RULES.replace('name = "api"', 'name = "new api"'))
    cors.tctx.options.update(cors_rules=str(good))
    assert cors.rules_file.path == str(good)
    assert run_hooks(cors, preflight()).comment.endswith("cors rule 'new api'\nAPI check: " + NOT_CHECKED)


NOT_CHECKED = 'not checked (answered by the proxy; an observe rule or preflight = "forward" checks it)'
