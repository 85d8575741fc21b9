"""Hostile input: rules files and requests made to break the addon. Nothing raises out of a hook or
ends the watcher, no work grows faster than the input, nothing kept or logged grows with it."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys

from mitmproxy import flowfilter

from corsaddon.addon import CorsAddon
from corsaddon.parsing import parse
from corsaddon.rules import RuleSet
from corsaddon.rulesfile import RulesFile, compile_filter, sample_flow

from .flows import LOCAL, make_flow, run_hooks, upstream_response
from .proxy import MITMDUMP, ROOT, free_port
from .support import wait_until_async
from .upstream import Upstream

DEEP = "enabled = true\nx = " + "[" * 3000 + "]" * 3000 + "\n"
RECURSIVE_FILTER = "!" * 990 + "~m GET"


def rule_for(port: int, extra: str = "") -> str:
    return f'[[rules]]\nname = "api"\nhosts = ["127.0.0.1:{port}"]\n{extra}'


def raw_request(proxy_port: int, head: bytes) -> bytes:
    """Send `head` (a request without body) and return the status line and headers of the answer."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=30) as s:
        s.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            assert chunk, answer
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[0]


def test_a_deeply_nested_rules_file_is_one_error_line_and_the_watcher_keeps_watching(start_proxy):
    with Upstream() as upstream:
        proxy = start_proxy(rule_for(upstream.port))
        mark = proxy.mark()
        proxy.rules.write_text(DEEP)
        line = proxy.wait_for_log(r"cors: .*nests arrays or tables too deeply", after=mark)
        assert line.endswith("keeping the 1 rule enabled")
        mark = proxy.mark()
        proxy.rules.write_text("enabled = false\n" + rule_for(upstream.port))  # the watcher is still there
        proxy.wait_for_log(r"cors: loaded .*rules\.toml: switched off", after=mark)
        assert "Traceback" not in proxy.output and "RecursionError" not in proxy.output


def test_a_deeply_nested_rules_file_at_startup_is_one_error_line(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(DEEP)
    result = subprocess.run(
        [MITMDUMP, "-s", str(ROOT / "cors_addon.py"), "--listen-host", "127.0.0.1", "--listen-port", str(free_port()),
         "--set", f"confdir={tmp_path}", "--set", f"cors_rules={rules}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "rules.toml: the file nests arrays or tables too deeply to be read" in output
    assert "Traceback" not in output and len(output.splitlines()) < 10, output


def test_an_odd_port_in_host_matches_on_the_destination_quietly(start_proxy):
    with Upstream() as upstream:
        proxy = start_proxy(rule_for(upstream.port))
        for port in ("²".encode(), b"9" * 5000, b"0", b"99999", b"-1"):
            head = raw_request(
                proxy.port,
                b"OPTIONS http://127.0.0.1:%d/x HTTP/1.1\r\nHost: reflect.test:%s\r\nOrigin: %s\r\n"
                b"Access-Control-Request-Method: PUT\r\n\r\n" % (upstream.port, port, LOCAL.encode()),
            )
            assert head.startswith(b"HTTP/1.1 204"), head  # answered by the rule for the destination
            assert b"Access-Control-Allow-Origin: " + LOCAL.encode() in head
        assert upstream.recorder.methods() == []
        assert "Addon error" not in proxy.output and "Traceback" not in proxy.output


def test_a_host_longer_than_any_dns_name_matches_only_star_rules_and_is_not_remembered():
    rs = parse(
        '[[rules]]\nname = "api"\nhosts = ["*.example.com"]\n[[rules]]\nname = "all"\nhosts = ["*"]\n', compile_filter
    )
    long_host = "a." * 80_000 + "example.com"
    assert [r.name for r in rs.candidates(((long_host, 443),))] == ["all"]
    assert rs._candidates == {}
    assert [r.name for r in rs.candidates((("a.example.com", 443),))] == ["api", "all"]


def test_a_long_host_header_through_the_proxy(start_proxy):
    with Upstream() as upstream:
        proxy = start_proxy(rule_for(upstream.port))
        head = raw_request(
            proxy.port,
            b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n\r\n"
            % (upstream.port, b"a." * 80_000 + b"test", LOCAL.encode()),
        )
        # The test API refuses a header line that long (431); the rule for the destination still applies.
        assert head.startswith(b"HTTP/1.1 431") and b"Access-Control-Allow-Origin: " + LOCAL.encode() in head
        ok = raw_request(proxy.port, b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % upstream.port)
        assert ok.startswith(b"HTTP/1.1 200")


def test_long_and_malformed_values_are_not_remembered_or_logged_whole(caplog):
    caplog.set_level(logging.DEBUG)
    addon = CorsAddon()
    addon.put_in_force(parse('[[rules]]\nname = "api"\nhosts = ["api.example.com"]\n', compile_filter))
    rule = addon.ruleset.rules[0]
    for i in range(20):
        origin = f"http://{i}{'x' * 100_000}.example"
        requested = "x-" + "a" * 100_000 + str(i)
        for headers in ([("Origin", origin)], [("Origin", LOCAL), ("Access-Control-Request-Method", "PUT"),
                                               ("Access-Control-Request-Headers", requested)]):  # fmt: skip
            f = make_flow("OPTIONS", "http://api.example.com/x", headers, host_header="h" * 100_000 + str(i))
            run_hooks(addon, f, upstream_response())
    answers = addon.answers.of(rule)
    assert set(answers.allow_origin) == {LOCAL}
    assert len(answers.preflight) == 0
    assert all(len(host) < 300 for names in addon.ruleset._candidates for host, _ in names)
    assert all(len(part) < 300 for key in addon.notices.seen for part in key)
    assert max(len(r.getMessage()) for r in caplog.records) < 600
    assert f.comment.split("\n")[0] == "preflight answered for http://localhost:3000 · cors rule 'api'"


def test_hostile_rules_values_get_short_clear_messages():
    def message(text: str) -> str:
        try:
            parse(text, compile_filter)
        except ValueError as e:
            return str(e)
        raise AssertionError("accepted")

    assert "invalid port" in message('[[rules]]\nhosts = ["list.test:²"]\n')
    assert "invalid port" in message('[[rules]]\nhosts = ["list.test:' + "9" * 5000 + '"]\n')
    assert "invalid port" in message('[[rules]]\nallow_origins = ["http://localhost:²"]\nhosts = ["a"]\n')
    for text in (
        '[[rules]]\nhosts = ["' + "*" * 10_000 + '"]\n',
        '[[rules]]\nname = "' + "n" * 10_000 + '"\nhosts = 3\n',
        '[[rules]]\nhosts = ["a"]\n' + "k" * 10_000 + " = 1\n",
        '[[rules]]\nhosts = ["a"]\nallow_origins = ["' + "o" * 10_000 + '"]\n',
    ):
        assert len(message(text)) < 500, message(text)[:1000]


def test_a_filter_that_raises_when_evaluated_is_refused_at_load():
    try:
        parse(f'[[rules]]\nfilter = "{RECURSIVE_FILTER}"\n', compile_filter)
    except ValueError as e:
        assert "filter: mitmproxy cannot evaluate this filter (RecursionError)" in str(e)
        assert len(str(e)) < 300
    else:
        raise AssertionError("accepted")


FILTERS = [
    "~h x",
    "~d example.com",
    "~m GET",
    "~s",
    "~c 200",
    "~u /x",
    "!~q",
    "!( ~q & ~s )",
    "~comment x",
    "~src 127.0.0.1",
    "~dst example.com",
    "~marked",
    "~replay",
    "~websocket",
    "~t json",
    "~bq x | ~bs y",
]


def test_filters_of_every_kind_are_tried_at_load_on_a_flow_built_from_mitmproxy_s_public_classes(monkeypatch):
    """The trial flow needs nothing from mitmproxy.test (test helpers, not for production code)."""
    monkeypatch.setitem(sys.modules, "mitmproxy.test", None)  # importing it raises ImportError
    every_kind = [f"~{c.code}" for c in flowfilter.filter_unary]
    every_kind += [f"~{c.code} x" for c in flowfilter.filter_rex] + [f"~{c.code} 200" for c in flowfilter.filter_int]
    for expression in FILTERS + every_kind:
        compile_filter(expression)(sample_flow())  # raises nothing
    assert compile_filter("~d example.com & ~m GET & ~c 200 & ~s & ~u example.com/ & ~src 127.0.0.1")(sample_flow())


def test_a_filter_that_raises_on_a_flow_leaves_it_untouched_and_is_logged_once(caplog):
    def fragile(expression):
        def predicate(flow):
            if flow.request.path == "/boom":
                raise RuntimeError("filter failed")
            return True

        return predicate

    addon = CorsAddon()
    addon.put_in_force(parse('[[rules]]\nname = "f"\nhosts = ["api.example.com"]\nfilter = "x"\n', fragile))
    for path in ("/boom", "/boom", "/ok"):
        f = make_flow(
            "OPTIONS", f"http://api.example.com{path}", [("Origin", LOCAL), ("Access-Control-Request-Method", "PUT")]
        )
        run_hooks(addon, f)
        assert (f.response is None) is (path == "/boom")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["cors: rule 'f': its filter failed on this flow (RuntimeError); such flows pass untouched"]


def test_megabyte_origins_through_the_proxy_log_short_lines(start_proxy):
    with Upstream() as upstream:
        proxy = start_proxy(rule_for(upstream.port))
        for i in range(5):
            head = raw_request(
                proxy.port,
                b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://%d%s.example\r\n\r\n"
                % (upstream.port, i, b"o" * 1024 * 1024),
            )
            # Passed through untouched: the test API's own refusal of so long a line, without CORS headers.
            assert head.startswith(b"HTTP/1.1 431") and b"Access-Control-Allow-Origin" not in head
        proxy.wait_for_log(r"cors: rule 'api': origin 'http://4o")
        assert max(len(line) for line in proxy.lines) < 600


async def test_a_failing_poll_does_not_end_the_watcher(tmp_path, caplog):
    """Whatever goes wrong in one poll (here the step that puts rules in force fails once), the
    watcher logs it once and goes on watching."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nhosts = ["a"]\n')
    in_force = []

    def put_in_force(ruleset):
        if not in_force:
            in_force.append(None)
            raise RuntimeError("something broke")
        in_force.append(ruleset)

    rules_file = RulesFile(put_in_force, lambda: RuleSet())
    rules_file.watch_path(str(path), None)
    rules_file.start_watching()
    try:
        await wait_until_async(lambda: "failed (RuntimeError: something broke); still watching" in caplog.text, 3)
        path.write_text('[[rules]]\nhosts = ["b"]\n')
        await wait_until_async(lambda: len(in_force) == 2, 3)
        assert [h.name for h in in_force[1].rules[0].hosts] == ["b"]
    finally:
        rules_file.stop_watching()
