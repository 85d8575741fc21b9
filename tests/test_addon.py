"""The addon driven through mitmproxy's own test helpers (taddons, tflow)."""

import logging
import os
from pathlib import Path

import pytest
from mitmproxy import addonmanager, exceptions
from mitmproxy.test import taddons

from corsaddon import rulesfile
from corsaddon.addon import CorsAddon

from .flows import API, LOCAL, make_flow, run_hooks
from .flows import upstream_response as upstream
from .support import wait_until_async

RULES = """
[[rules]]
name = "api"
hosts = ["api.example.com"]
allow_origins = ["http://localhost:*"]
"""


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return path


@pytest.fixture
def cors(rules_file):
    a = CorsAddon()
    with taddons.context(a) as tctx:
        tctx.configure(a, cors_rules=str(rules_file))
        a.tctx = tctx
        yield a


def write_rules(a, text):
    path = Path(a.rules_file.path)
    path.write_text(text)
    a.rules_file.load(str(path))


run = run_hooks


def preflight(method="PUT", headers="content-type,x-custom", origin=LOCAL, url=API, extra=()):
    h = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if headers:
        h.append(("Access-Control-Request-Headers", headers))
    return make_flow("OPTIONS", url, h + list(extra))


def test_options_are_declared_with_their_defaults():
    a = CorsAddon()
    with taddons.context(a) as tctx:
        assert tctx.options.cors_enabled is True
        assert tctx.options.cors_rules.endswith("rules.toml")


def test_mitmproxy_walks_one_addon_object_and_gets_every_option_and_command():
    """Each event mitmproxy dispatches walks every addon object: the parts are called by CorsAddon, not
    nested, yet their options and commands are mitmproxy's as before."""
    a = CorsAddon()
    with taddons.context(a) as tctx:
        assert [type(x).__name__ for x in addonmanager.traverse([a])] == ["CorsAddon"]
        for option in ("cors_rules", "cors_enabled", "cors_report", "cors_mark", "cors_flow_log", "cors_discover"):
            assert option in tctx.options
        commands = {"cors.toggle", "cors.reload", "cors.status", "cors.report", "cors.allow", "cors.allow.flow"}
        assert commands | {"cors.browser"} <= set(tctx.master.commands.commands)
        assert tctx.master.commands.call("cors.report") == a.api_check.report.as_markdown()
        tctx.options.update(cors_discover=False, cors_mark=False)
        assert a.discovery.on is False and a.notes.mark is False


def test_default_rules_file_is_the_one_in_the_current_directory_else_beside_the_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    beside = Path(rulesfile.__file__).resolve().parent.parent / "rules.toml"
    assert rulesfile.default_path() == str(beside)
    (tmp_path / "rules.toml").write_text("")
    assert rulesfile.default_path() == "rules.toml"


def test_preflight_is_answered_locally_with_204(cors):
    f = run(cors, preflight())
    assert f.response.status_code == 204 and f.response.content == b""
    h = f.response.headers
    assert h["Access-Control-Allow-Origin"] == LOCAL
    assert h["Access-Control-Allow-Methods"] == "PUT"
    assert h["Access-Control-Allow-Headers"] == "content-type,x-custom"
    assert h["Access-Control-Max-Age"] == "5"
    assert h["Vary"] == "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    assert "content-length" not in h
    assert f.comment.startswith("preflight answered for http://localhost:3000 · cors rule 'api'\n")


def test_preflight_answer_with_credentials_lists_and_private_network(cors):
    write_rules(
        cors,
        RULES
        + 'allow_credentials = true\nallow_methods = ["GET", "PUT"]\nallow_headers = ["Authorization"]\n'
        + "allow_private_network = true\nmax_age = 600\n",
    )
    f = run(
        cors, preflight("DELETE", "authorization,x-other", extra=[("Access-Control-Request-Private-Network", "true")])
    )
    h = f.response.headers
    assert h["Access-Control-Allow-Credentials"] == "true"
    assert h["Access-Control-Allow-Methods"] == "GET, PUT"
    assert h["Access-Control-Allow-Headers"] == "Authorization"
    assert h["Access-Control-Max-Age"] == "600"
    assert h["Access-Control-Allow-Private-Network"] == "true"


def test_forwarded_preflight_keeps_an_ok_reply_and_replaces_its_cors_headers(cors):
    write_rules(cors, RULES + 'preflight = "forward"\n')
    f = run(cors, preflight(), upstream(200, [("Access-Control-Allow-Origin", "*"), ("Allow", "GET, PUT")]))
    h = f.response.headers
    assert f.response.status_code == 200
    assert h.get_all("Access-Control-Allow-Origin") == [LOCAL]
    assert h["Access-Control-Allow-Methods"] == "PUT" and h["Allow"] == "GET, PUT"


def test_forwarded_preflight_with_an_error_status_becomes_204_without_body(cors):
    write_rules(cors, RULES + 'preflight = "forward"\n')
    f = run(cors, preflight(), upstream(405, [("Content-Type", "text/plain")], b"Method Not Allowed"))
    assert f.response.status_code == 204
    assert "content-type" not in f.response.headers and "content-length" not in f.response.headers
    assert f.response.stream(b"Method Not Allowed") == b""  # body chunks are dropped while streaming
    assert f.response.headers["Access-Control-Allow-Origin"] == LOCAL


def test_actual_response_gets_cors_headers_and_upstream_ones_are_replaced(cors):
    f = make_flow("GET", API, [("Origin", LOCAL)])
    run(
        cors,
        f,
        upstream(
            200,
            [
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Origin", "https://elsewhere.example"),
                ("access-control-allow-credentials", "true"),
                ("Vary", "Accept-Encoding"),
            ],
        ),
    )
    h = f.response.headers
    assert h.get_all("Access-Control-Allow-Origin") == [LOCAL]
    assert "Access-Control-Allow-Credentials" not in h
    assert h.get_all("Vary") == ["Accept-Encoding, Origin"]
    assert f.response.content == b'{"ok": true}'


@pytest.mark.parametrize("status", [201, 302, 404, 500])
def test_every_status_gets_the_headers(cors, status):
    f = run(cors, make_flow("POST", API, [("Origin", LOCAL)]), upstream(status))
    assert f.response.headers["Access-Control-Allow-Origin"] == LOCAL


def test_expose_headers_star_lists_real_header_names_and_works_with_credentials(cors):
    write_rules(cors, RULES + 'expose_headers = "*"\nallow_credentials = true\n')
    f = run(
        cors,
        make_flow("GET", API, [("Origin", LOCAL)]),
        upstream(200, [("X-Request-Id", "1"), ("Set-Cookie", "a=b"), ("Content-Type", "text/plain")]),
    )
    assert f.response.headers["Access-Control-Expose-Headers"] == "X-Request-Id"
    assert f.response.headers["Access-Control-Allow-Credentials"] == "true"


def test_request_without_origin_gets_only_vary(cors):
    f = run(cors, make_flow("GET", API), upstream(200, [("Access-Control-Allow-Origin", "*")]))
    assert [k for k in f.response.headers if k.lower().startswith("access-control")] == []
    assert f.response.headers["Vary"] == "Origin"


def test_star_rule_answers_star_even_without_origin_and_adds_no_vary(cors):
    write_rules(cors, RULES.replace('["http://localhost:*"]', '["*"]'))
    f = run(cors, make_flow("GET", API), upstream())
    assert f.response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in f.response.headers


def test_disallowed_origin_passes_through_untouched(cors, caplog):
    caplog.set_level(logging.INFO)
    f = preflight(origin="http://evil.example")
    before = f.request.copy()
    run(cors, f, upstream(200, [("Access-Control-Allow-Origin", "*")]))
    assert f.request.headers.fields == before.headers.fields
    assert f.response.status_code == 200
    assert f.response.headers.fields == upstream(200, [("Access-Control-Allow-Origin", "*")]).headers.fields
    assert "origin 'http://evil.example' is not in allow_origins" in caplog.text


def test_a_disallowed_origin_does_not_fall_through_to_later_rules(cors):
    write_rules(cors, RULES + '\n[[rules]]\nname = "open"\nhosts = ["api.example.com"]\nallow_origins = ["*"]\n')
    f = run(cors, make_flow("GET", API, [("Origin", "http://evil.example")]), upstream())
    assert "Access-Control-Allow-Origin" not in f.response.headers


def test_unmatched_hosts_are_not_touched(cors):
    f = run(
        cors,
        make_flow("OPTIONS", "http://other.example/x", [("Origin", LOCAL), ("Access-Control-Request-Method", "PUT")]),
    )
    assert f.response is None and f.comment == ""
    assert cors.ruleset.hits == [0]


def test_strip_removes_every_cors_header_and_sends_preflights_upstream(cors):
    write_rules(cors, RULES + 'action = "strip"\n')
    f = run(cors, preflight(), upstream(204, [("Access-Control-Allow-Origin", "*"), ("Access-Control-Max-Age", "5")]))
    assert f.response.status_code == 204 and not any(k.lower().startswith("access-control") for k in f.response.headers)
    f = run(cors, make_flow("GET", API), upstream(200, [("Access-Control-Allow-Origin", "*"), ("Vary", "Origin")]))
    assert sorted(f.response.headers.keys()) == ["Vary", "content-length"]


@pytest.mark.parametrize(
    "setting, expected",
    [('"keep"', [LOCAL]), ('"drop"', []), ('"https://api.example.com"', ["https://api.example.com"])],
)
def test_upstream_origin_keeps_drops_or_replaces_the_origin_sent_upstream(cors, setting, expected):
    write_rules(cors, RULES + f'upstream_origin = {setting}\npreflight = "forward"\n')
    f = run(cors, make_flow("GET", API, [("Origin", LOCAL)]))
    assert f.request.headers.get_all("origin") == expected
    f = run(cors, preflight())
    assert f.request.headers.get_all("origin") == expected
    bad = run(cors, make_flow("GET", API, [("Origin", "http://evil.example")]))
    assert bad.request.headers.get_all("origin") == ["http://evil.example"]


def test_a_websocket_handshakes_101_gets_no_cors_headers_and_its_comment_says_so(cors):
    f = make_flow("GET", API, [("Origin", LOCAL), ("Upgrade", "websocket"), ("Connection", "Upgrade")])
    run(cors, f, upstream(101, [("Upgrade", "websocket")]))
    assert f.response.headers.fields == upstream(101, [("Upgrade", "websocket")]).headers.fields
    assert f.comment.startswith("WebSocket handshake from http://localhost:3000: Origin sent upstream unchanged")


def test_event_streams_are_streamed_not_buffered(cors):
    f = run(cors, make_flow("GET", API, [("Origin", LOCAL)]), upstream(200, [("Content-Type", "text/event-stream")]))
    assert f.response.stream is True
    f = run(cors, make_flow("GET", API, [("Origin", LOCAL)]), upstream(200, [("Content-Type", "application/json")]))
    assert not f.response.stream


def test_reverse_mode_matches_the_destination_when_the_host_header_is_the_proxy(cors):
    f = make_flow("GET", API, [("Origin", LOCAL)], host_header="localhost:8080")
    run(cors, f, upstream())
    assert f.response.headers["Access-Control-Allow-Origin"] == LOCAL


def test_host_asked_for_is_matched_even_when_the_destination_differs(cors):
    f = make_flow("GET", "http://10.0.0.1:9000/v1", [("Origin", LOCAL)], host_header="api.example.com")
    run(cors, f, upstream())
    assert f.response.headers["Access-Control-Allow-Origin"] == LOCAL


def test_paths_and_filter_narrow_a_rule(cors):
    write_rules(cors, RULES + 'paths = ["/v1/*"]\nfilter = "~m GET | ~m OPTIONS"\n')
    assert (
        run(cors, make_flow("GET", API + "?q=1", [("Origin", LOCAL)]), upstream()).response.headers.get(
            "Access-Control-Allow-Origin"
        )
        == LOCAL
    )
    assert (
        "Access-Control-Allow-Origin"
        not in run(cors, make_flow("POST", API, [("Origin", LOCAL)]), upstream()).response.headers
    )
    assert (
        "Access-Control-Allow-Origin"
        not in run(
            cors, make_flow("GET", "http://api.example.com/v2/x", [("Origin", LOCAL)]), upstream()
        ).response.headers
    )


def test_a_flow_keeps_the_rule_it_started_with_across_a_reload(cors):
    f = make_flow("GET", API, [("Origin", LOCAL)])
    cors.requestheaders(f)
    write_rules(cors, RULES.replace("api.example.com", "other.example"))
    f.response = upstream()
    cors.responseheaders(f)
    assert f.response.headers["Access-Control-Allow-Origin"] == LOCAL
    assert (
        "Access-Control-Allow-Origin"
        not in run(cors, make_flow("GET", API, [("Origin", LOCAL)]), upstream()).response.headers
    )


def test_cors_enabled_off_leaves_flows_alone_and_toggle_flips_it(cors):
    cors.tctx.configure(cors, cors_enabled=False)
    assert run(cors, preflight()).response is None
    cors.toggle()
    assert cors.tctx.options.cors_enabled is True
    assert run(cors, preflight()).response.status_code == 204


def test_status_lists_the_file_state_and_hits(cors):
    write_rules(cors, RULES + '\n[[rules]]\nname = "later"\nenabled = false\nhosts = ["x"]\n')
    run(cors, preflight())
    run(cors, preflight())
    assert cors.status() == [
        f"cors: on; {cors.rules_file.path}: 1 rule enabled of 2",
        "rule 'api': on, inject, 2 hits",
        "rule 'later': off (enabled = false), inject, 0 hits",
    ]
    run(cors, preflight(origin="http://localhost:1"))
    assert cors.status()[1] == "rule 'api': on, inject, 3 hits"


def test_status_shows_every_rule_off_and_one_hit_in_english(cors):
    run(cors, preflight())
    cors.tctx.options.update(cors_enabled=False)
    assert cors.status() == [
        f"cors: off (cors_enabled = false: every flow passes untouched); {cors.rules_file.path}: 1 rule enabled",
        "rule 'api': off (cors_enabled is off), inject, 1 hit",
    ]
    cors.tctx.options.update(cors_enabled=True)
    write_rules(cors, "enabled = false\n" + RULES)
    assert cors.status()[1:] == ["rule 'api': off (the file says enabled = false), inject, 0 hits"]


def test_broken_file_at_run_time_keeps_the_rules_in_force(cors, caplog):
    Path(cors.rules_file.path).write_text(
        '[[rules]]\nname = "api"\nhosts = ["api.example.com"]\nallow_origin = ["*"]\n'
    )
    cors.reload()
    assert "unknown key 'allow_origin' (did you mean 'allow_origins'?); keeping the 1 rule enabled" in caplog.text
    assert run(cors, preflight()).response.status_code == 204


def test_empty_or_deleted_file_keeps_the_rules_in_force(cors, caplog):
    Path(cors.rules_file.path).write_text("")
    cors.reload()
    assert "is empty; keeping the 1 rule enabled (to switch everything off, write enabled = false)" in caplog.text
    os.unlink(cors.rules_file.path)
    cors.reload()
    assert "not found; keeping the 1 rule enabled" in caplog.text
    assert run(cors, preflight()).response.status_code == 204


def test_switching_the_file_off_disables_every_rule(cors, caplog):
    caplog.set_level(logging.INFO)
    write_rules(cors, "enabled = false\n" + RULES)
    assert "switched off (enabled = false); no rules in force" in caplog.text
    assert run(cors, preflight()).response is None


def test_missing_file_at_startup_is_a_warning(tmp_path, caplog):
    a = CorsAddon()
    with taddons.context(a) as tctx:
        tctx.configure(a, cors_rules=str(tmp_path / "absent.toml"))
    assert "absent.toml not found; no rules in force; it is read as soon as it appears" in caplog.text


def test_broken_file_at_startup_is_logged_as_an_error(tmp_path, caplog):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nhosts = ["a"]\nmax_age = -1\n')
    a = CorsAddon()
    with taddons.context(a) as tctx:
        tctx.configure(a, cors_rules=str(bad))  # not raised: mitmproxy exits on startup errors
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert (
        "bad.toml, line 1: rule 'rule 1': max_age: expected a whole number of seconds >= 0, got -1"
        in errors[0].getMessage()
    )


async def test_setting_a_broken_file_at_run_time_is_refused_and_the_old_one_stays(cors, tmp_path):
    cors.running()
    try:
        old = cors.tctx.options.cors_rules
        bad = tmp_path / "bad.toml"
        bad.write_text("[[rules]]\nhosts = 3\n")
        with pytest.raises(exceptions.OptionsError, match="hosts: expected a list"):
            cors.tctx.configure(cors, cors_rules=str(bad))
        assert cors.tctx.options.cors_rules == old and cors.rules_file.path == old
        assert run(cors, preflight()).response.status_code == 204
    finally:
        cors.done()


def answers_preflight(a):
    return run(a, preflight()).response is not None


async def test_watcher_picks_up_in_place_and_rename_saves_and_keeps_rules_on_broken_ones(cors, tmp_path, caplog):
    cors.running()
    try:
        path = Path(cors.rules_file.path)
        path.write_text("enabled = false\n" + RULES)  # in place
        await wait_until_async(lambda: not answers_preflight(cors), 3)
        temp = tmp_path / "rules.toml.tmp"
        temp.write_text(RULES)
        os.replace(temp, path)  # how many editors save
        await wait_until_async(lambda: answers_preflight(cors), 3)
        path.write_text("[[rules]\n")  # broken
        await wait_until_async(lambda: "TOML syntax error" in caplog.text, 3)
        assert answers_preflight(cors)
        path.unlink()
        await wait_until_async(lambda: "not found; keeping the 1 rule enabled" in caplog.text, 3)
        assert answers_preflight(cors)
        path.write_text("enabled = false\n")  # appears again
        await wait_until_async(lambda: not answers_preflight(cors), 3)
    finally:
        cors.done()


async def test_watcher_follows_a_symlinked_rules_file(tmp_path):
    target = tmp_path / "real.toml"
    target.write_text(RULES)
    link = tmp_path / "rules.toml"
    link.symlink_to(target)
    a = CorsAddon()
    with taddons.context(a) as tctx:
        tctx.configure(a, cors_rules=str(link))
        a.running()
        try:
            assert answers_preflight(a)
            target.write_text("enabled = false\n")
            await wait_until_async(lambda: not answers_preflight(a), 3)
        finally:
            a.done()


async def test_the_file_is_watched_while_cors_is_disabled(cors):
    cors.tctx.configure(cors, cors_enabled=False)
    cors.running()
    try:
        Path(cors.rules_file.path).write_text("enabled = false\n" + RULES)
        await wait_until_async(lambda: not cors.ruleset.enabled, 3)
    finally:
        cors.done()


def test_load_warnings_are_logged_with_the_file(cors, caplog):
    write_rules(cors, '[[rules]]\nname = "open"\nhosts = ["*"]\nallow_origins = ["*"]\nallow_credentials = true\n')
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith(f"cors: {cors.rules_file.path}: rule 'open' applies to every host") for w in warnings)
    assert any("rule 'open' lets any origin read responses with credentials" in w for w in warnings)


def test_flows_that_are_not_live_pass_untouched(cors):
    """Flows read from a file (`mitmdump -r`) are left as they were saved, like modify_headers does."""
    f = preflight()
    f.live = False
    assert run(cors, f).response is None and f.comment == ""
    f = make_flow("GET", API, [("Origin", LOCAL)])
    f.live = False
    saved = upstream(200, [("Access-Control-Allow-Origin", "*")])
    run(cors, f, saved.copy())
    assert f.response.headers.fields == saved.headers.fields
    assert cors.ruleset.hits == [0]


def test_empty_elements_of_the_requested_headers_are_ignored(cors):
    f = run(cors, preflight(headers="x-a, , x-b,"))
    assert f.response.headers["Access-Control-Allow-Headers"] == "x-a,x-b"


async def test_a_save_that_starts_while_the_file_is_read_is_not_applied(cors, monkeypatch):
    """The watcher reads a finished save; before the read, the next save has truncated the file
    and written half of it. What was read is half a file: it is dropped, and read again once whole."""
    path = Path(cors.rules_file.path)
    finished = RULES.replace('"http://localhost:*"', '"https://app.example"')
    path.write_text(finished)
    pending = await cors.rules_file.poll(None)  # seen once: read when it holds still
    half = RULES[: RULES.index("allow_origins")]  # valid TOML: the rule with the default origins
    real_read = rulesfile.read_rules

    def read_while_the_next_save_starts(p):
        with open(p, "w") as f:
            f.write(half)
        return real_read(p)

    monkeypatch.setattr(rulesfile, "read_rules", read_while_the_next_save_starts)
    pending = await cors.rules_file.poll(pending)
    assert pending == rulesfile.file_signature(str(path))
    assert cors.ruleset.rules[0].allow_origins == ("http://localhost:*",)  # still the rules loaded first
    monkeypatch.setattr(rulesfile, "read_rules", real_read)
    path.write_text(finished)
    pending = await cors.rules_file.poll(None)
    await cors.rules_file.poll(pending)
    assert cors.ruleset.rules[0].allow_origins == ("https://app.example",)
