"""A real mitmdump with the addon, a real upstream on loopback, a real HTTP client."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from mitmproxy import http, io
from mitmproxy.test import tflow

from .flows import LOCAL
from .proxy import MITMDUMP, ROOT, Mitmdump, fetch, free_port
from .support import wait_until
from .upstream import Upstream


def rules_text(port: int, extra: str = "") -> str:
    return f"""
[[rules]]
name = "forwarding"
hosts = ["127.0.0.1:{port}"]
paths = ["/options405"]
preflight = "forward"

[[rules]]
name = "api"
hosts = ["127.0.0.1:{port}"]
allow_origins = ["http://localhost:*"]
expose_headers = ["X-Request-Id"]
{extra}

[[rules]]
name = "down"
hosts = ["127.0.0.1:{port + 1 if port < 65535 else 1}"]
"""


@pytest.fixture(scope="module")
def upstream():
    with Upstream() as up:
        yield up


@pytest.fixture
def proxy(start_proxy, upstream):
    return start_proxy(rules_text(upstream.port))


def preflight_headers(method="PUT", requested="content-type,x-custom"):
    return {
        "Origin": LOCAL,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": requested,
    }


def test_preflight_is_answered_by_the_proxy_and_never_reaches_the_upstream(proxy, upstream):
    url = f"http://127.0.0.1:{upstream.port}/preflight-only"
    reply = fetch("OPTIONS", url, preflight_headers(), proxy=proxy.port)
    assert reply.status == 204 and reply.body == b""
    assert reply.get("Access-Control-Allow-Origin") == LOCAL
    assert reply.get("Access-Control-Allow-Methods") == "PUT"
    assert reply.get("Access-Control-Allow-Headers") == "content-type,x-custom"
    assert upstream.recorder.methods("/preflight-only") == []
    reply = fetch("PUT", url, {"Origin": LOCAL, "Content-Type": "application/json"}, proxy=proxy.port, body=b"{}")
    assert reply.status == 200 and reply.get("Access-Control-Allow-Origin") == LOCAL
    assert upstream.recorder.methods("/preflight-only") == ["PUT"]


def test_upstream_cors_headers_are_replaced_and_vary_merged(proxy, upstream):
    reply = fetch("GET", f"http://127.0.0.1:{upstream.port}/cors/other", {"Origin": LOCAL}, proxy=proxy.port)
    assert reply.status == 200
    assert reply.get_all("Access-Control-Allow-Origin") == [LOCAL]
    assert reply.get_all("Vary") == ["Accept-Encoding, Origin"]
    assert reply.get("Access-Control-Expose-Headers") == "X-Request-Id"
    assert proxy.wait_for_log(r"cors: rule 'api': replaced the CORS headers")


def test_error_statuses_carry_the_headers(proxy, upstream):
    for status in (404, 500):
        reply = fetch("GET", f"http://127.0.0.1:{upstream.port}/status/{status}", {"Origin": LOCAL}, proxy=proxy.port)
        assert reply.status == status and b'"status": %d' % status in reply.body
        assert reply.get("Access-Control-Allow-Origin") == LOCAL


def test_disallowed_origin_is_passed_through_as_the_upstream_sent_it(proxy, upstream):
    url = f"http://127.0.0.1:{upstream.port}/cors/other"
    headers = {"Origin": "http://evil.example"}
    direct = fetch("GET", url, headers)
    through = fetch("GET", url, headers, proxy=proxy.port)
    assert [f for f in through.fields if f[0] != "Date"] == [f for f in direct.fields if f[0] != "Date"]
    assert through.body == direct.body
    assert proxy.wait_for_log(r"origin 'http://evil.example' is not in allow_origins")


def test_forwarded_preflight_refused_by_the_upstream_becomes_an_ok_answer(proxy, upstream):
    url = f"http://127.0.0.1:{upstream.port}/options405"
    assert fetch("OPTIONS", url, preflight_headers()).status == 405  # what the API says on its own
    reply = fetch("OPTIONS", url, preflight_headers(), proxy=proxy.port)
    assert reply.status == 204 and reply.body == b""
    assert reply.get("Access-Control-Allow-Origin") == LOCAL
    assert reply.get("Access-Control-Allow-Headers") == "content-type,x-custom"
    assert upstream.recorder.methods("/options405") == ["OPTIONS", "OPTIONS"]


def test_preflight_is_answered_while_the_upstream_is_down(proxy, upstream):
    down = upstream.port + 1
    with socket.socket() as s:  # nothing listens there
        assert s.connect_ex(("127.0.0.1", down)) != 0
    reply = fetch("OPTIONS", f"http://127.0.0.1:{down}/x", preflight_headers(), proxy=proxy.port)
    assert reply.status == 204 and reply.get("Access-Control-Allow-Origin") == LOCAL


def test_event_stream_reaches_the_client_before_it_ends(proxy, upstream):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        url = f"http://127.0.0.1:{upstream.port}/sse?hold=30"
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\nOrigin: {LOCAL}\r\n\r\n".encode())
        received = b""
        while b"data: first" not in received:
            chunk = s.recv(4096)  # times out (and fails) if the proxy buffers the stream
            assert chunk, received
            received += chunk
    assert b"Access-Control-Allow-Origin: http://localhost:3000" in received
    assert b"data: second" not in received


def test_reverse_mode_without_a_browser_proxy_setting(start_proxy, upstream):
    proxy = start_proxy(rules_text(upstream.port), "--mode", f"reverse:http://127.0.0.1:{upstream.port}")
    url = f"http://127.0.0.1:{proxy.port}/reverse"
    reply = fetch("OPTIONS", url, preflight_headers())
    assert reply.status == 204 and reply.get("Access-Control-Allow-Origin") == LOCAL
    reply = fetch("GET", url, {"Origin": LOCAL})
    assert reply.status == 200 and reply.get("Access-Control-Allow-Origin") == LOCAL
    assert upstream.recorder.methods("/reverse") == ["GET"]


def test_live_edit_takes_effect_and_a_broken_edit_keeps_the_rules(start_proxy, upstream):
    proxy = start_proxy(rules_text(upstream.port))
    url = f"http://127.0.0.1:{upstream.port}/live"

    def allowed() -> bool:
        return fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port).get("Access-Control-Allow-Origin") == LOCAL

    def wait_until_allowed(expected: bool) -> None:
        wait_until(lambda: allowed() is expected, 5, 0.05, lambda: proxy.output)

    assert allowed()
    mark = proxy.mark()
    proxy.rules.write_text("enabled = false\n" + rules_text(upstream.port))
    wait_until_allowed(False)
    assert proxy.wait_for_log(r"cors: loaded .*rules\.toml: switched off", after=mark)

    tmp = proxy.rules.with_suffix(".swp")
    tmp.write_text(rules_text(upstream.port))
    os.replace(tmp, proxy.rules)  # save by rename
    wait_until_allowed(True)

    mark = proxy.mark()
    proxy.rules.write_text(rules_text(upstream.port, extra="max_age = -1"))
    line = proxy.wait_for_log(r"cors: .*max_age", after=mark)
    assert "rules.toml, line 8: rule 'api': max_age: expected a whole number of seconds >= 0, got -1" in line
    assert "keeping the 3 rules enabled" in line
    assert allowed()
    assert proxy.process.poll() is None


def test_broken_rules_file_at_startup_exits_non_zero_with_the_message(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nhosts = ["api.example.com"]\nallow_origins = []\n')
    result = subprocess.run(
        [MITMDUMP, "-s", str(ROOT / "cors_addon.py"), "--listen-host", "127.0.0.1", "--listen-port", str(free_port()),
         "--set", f"confdir={tmp_path}", "--set", f"cors_rules={rules}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "rules.toml, line 1: rule 'rule 1': allow_origins: expected a non-empty list of origins" in output


def test_missing_rules_file_at_startup_is_only_a_warning(start_proxy, tmp_path, upstream):
    proxy = start_proxy(rules_text(upstream.port))
    proxy.stop()
    absent = tmp_path / "absent.toml"
    late = Mitmdump(absent, tmp_path / "confdir")
    try:
        late.start()
        assert "absent.toml not found; no rules in force" in late.output
        absent.write_text(rules_text(upstream.port))  # a file that appears later is picked up
        late.wait_for_log(r"cors: loaded .*absent\.toml: 3 rules enabled")
        reply = fetch("OPTIONS", f"http://127.0.0.1:{upstream.port}/x", preflight_headers(), proxy=late.port)
        assert reply.status == 204
    finally:
        late.stop()


def test_saved_flows_read_with_r_are_left_as_saved(tmp_path):
    """`mitmdump -r` replays saved flows through the hooks; like modify_headers, the addon leaves them alone."""
    saved = []
    for method, headers, status, response_headers in (
        ("GET", [(b"Origin", LOCAL.encode())], 200, [(b"Access-Control-Allow-Origin", b"*")]),
        ("OPTIONS", [(b"Origin", LOCAL.encode()), (b"Access-Control-Request-Method", b"PUT")], 405, []),
    ):
        f = tflow.tflow(resp=True)
        f.request = http.Request.make(method, "http://api.example.com/v1/users", b"", headers)
        f.response = http.Response.make(status, b"{}", response_headers)
        saved.append(f)
    before, after = tmp_path / "before.flows", tmp_path / "after.flows"
    with open(before, "wb") as out:
        writer = io.FlowWriter(out)
        for f in saved:
            writer.add(f)
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nhosts = ["api.example.com"]\n')
    result = subprocess.run(
        [MITMDUMP, "-n", "-q", "-s", str(ROOT / "cors_addon.py"), "--set", f"cors_rules={rules}",
         "--set", f"confdir={tmp_path}", "-r", str(before), "-w", str(after)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    with open(after, "rb") as f:
        read = list(io.FlowReader(f).stream())
    assert [(f.request.headers.fields, f.response.status_code, f.response.headers.fields, f.comment) for f in read] == [
        (f.request.headers.fields, f.response.status_code, f.response.headers.fields, "") for f in saved
    ]
