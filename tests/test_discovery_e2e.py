"""Discovery end to end: a real mitmdump or mitmweb with the addon, a real API on loopback, and (for the
browser test) real Chromium.

A call from one of the user's pages (an `Origin` that `[defaults] allow_origins` admits) to an API no
rule names, whose answer fails CORS, is named once per host and reason in the log, marked on the flow
and passed on byte for byte as plain mitmdump passes it. `cors.allow`, run through mitmweb's command
REST API, appends a rule to the rules file (the original bytes untouched) and the watcher puts it in
force without a restart. Hostile Host and Origin values cost no more than in plain mitmdump.

mitmweb's REST API is driven from Python (http.client) on both versions: mitmweb 11 wants only the
XSRF cookie echoed in `X-XSRFToken`; mitmweb 12 also wants the token it logs (`?token=` sets its auth
cookie). `POST /commands/<name>` with `{"arguments": [...]}` answers 200 with `{"value": ...}`, or with
`{"error": ...}` when the command refuses (the same in tools/web/app.py of both versions).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import socket
import time
from pathlib import Path

import pytest
from mitmproxy.utils.emoji import emoji

from .browser import Browser
from .proxy import MITMWEB, Mitmdump, fetch, free_port, saved_flows
from .support import wait_until
from .upstream import Upstream

ORIGIN = "http://localhost:5173"  # a dev server: admitted by the built-in [defaults] allow_origins
EVIL = "https://evil.example"
NO_ACAO = "no Access-Control-Allow-Origin"
# The user's own file: a rule for some other host, a comment with non-ASCII text, lines ending in LF.
ORIGINAL = (
    "# The team's rules — keep this comment as it is ✓\n"
    "[[rules]]\n"
    'name = "production api"\n'
    'hosts = ["api.example.com"]  # the deployed API\n'
).encode()
# The block cors.allow appends: a blank line (the file ends with a newline), the comment saying when and
# by what, then the rule, named after its host.
APPENDED = (
    rb"\n# added by cors\.allow \(cors-addon\) on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[^\n]*\n"
    rb'\[\[rules\]\]\nname = "%(host)s"\nhosts = \["%(host)s"\]\n'
)
# The rules file is read within a second of a save (corsaddon/rulesfile.py polls every 0.2 s and reads a
# file once it has held still for a poll); the slack is for loaded machines, not a timing assertion.
RELOAD_DEADLINE = 5.0


class Proxy(Mitmdump):
    """Mitmdump (or mitmweb) whose output is read as bytes: a line that is not UTF-8 is kept (decoded with
    backslash escapes in `lines`, as it was in `raw`) instead of ending the reader."""

    def __init__(self, *args, **kwargs) -> None:
        self.raw: list[bytes] = []
        super().__init__(*args, **kwargs)

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout.buffer:
            with self.lock:
                self.raw.append(line.rstrip(b"\n"))
                self.lines.append(line.rstrip(b"\n").decode("utf-8", "backslashreplace"))

    def cors_lines(self, after: int = 0) -> list[str]:
        with self.lock:
            return [line for line in self.lines[after:] if "cors: " in line]

    def settled(self, api_port: int, path: str) -> None:
        """Send one last plain request and wait for mitmdump's own line for it: every line logged for
        the requests before it is then in `lines`."""
        mark = self.mark()
        assert fetch("GET", f"http://127.0.0.1:{api_port}{path}", proxy=self.port).status == 200
        self.wait_for_log(re.escape(f"GET http://127.0.0.1:{api_port}{path}"), after=mark)


def discovery_line(host: str, reasons: str, origin: str = ORIGIN) -> str:
    return (
        f"cors: {host} fails CORS for {origin} ({reasons}) and no rule names it: "
        f'run cors.allow {host}, or add hosts = ["{host}"] to a rule'
    )


def discovery_lines(proxy: Proxy, after: int = 0) -> list[str]:
    """The discovery lines (without mitmproxy's time stamp)."""
    return [line.partition("] ")[2] or line for line in proxy.cors_lines(after) if " fails CORS for " in line]


def appended_block(host: str) -> re.Pattern[bytes]:
    return re.compile(APPENDED % {b"host": re.escape(host).encode()})


def exchange(proxy_port: int, head: bytes) -> bytes:
    """Send a request head (no body) to the proxy and read one whole answer: head and body (by its
    Content-Length), or what came before the proxy closed the connection."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=30) as s:
        s.sendall(head)
        data = b""
        while True:
            if b"\r\n\r\n" in data:
                top, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"\r\ncontent-length: *(\d+)", top, re.IGNORECASE)
                if length and len(body) >= int(length.group(1)):
                    return data
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", answer)


def status_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def request_head(method: str, url: str, headers: dict[str, str]) -> bytes:
    host = re.fullmatch(r"http://([^/]+)/.*", url).group(1)
    lines = [f"{method} {url} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- 1. mitmdump: one line per host and reason, a marker, and the traffic as plain mitmdump passes it ----------


def requests_for(api_port: int) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Each case: (method, path, headers). Distinct paths, so flows and upstream records can be told apart."""
    return {
        "fails": ("GET", "/v1/fails", {"Origin": ORIGIN}),
        "fails again": ("GET", "/v1/fails", {"Origin": ORIGIN}),
        "no origin": ("GET", "/v1/no-origin", {}),
        "other site": ("GET", "/v1/other-site", {"Origin": EVIL}),
        "passes": ("GET", "/v1/cors/star", {"Origin": ORIGIN}),  # the API's own Access-Control-Allow-Origin: *
        "same origin": ("POST", "/v1/same-origin", {"Origin": f"http://127.0.0.1:{api_port}", "Content-Length": "0"}),
        "websocket": (
            "GET",
            "/v1/socket",
            {
                "Origin": ORIGIN,
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        ),  # fmt: skip
        "preflight": ("OPTIONS", "/v1/preflight", {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}),
    }


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    """Every request of `requests_for` through mitmdump with the addon (saving flows with -w and the report
    with cors_report), through plain mitmdump, and through mitmdump with cors_discover=false, one request
    at a time to one API; then all three stopped. What the client got, what the API got, the output, the
    saved flows and the report."""
    directory = tmp_path_factory.mktemp("dumped")
    rules = directory / "rules.toml"
    rules.write_bytes(ORIGINAL)
    flows_file, report_file = directory / "flows.mitm", directory / "report.md"
    with Upstream() as api:
        proxies = {
            "addon": Proxy(rules, directory / "c1", "-w", str(flows_file), "--set", f"cors_report={report_file}"),
            "plain": Proxy(None, directory / "c2"),
            "off": Proxy(rules, directory / "c3", "--set", "cors_discover=false"),
        }
        try:
            for proxy in proxies.values():
                proxy.start()
            answers: dict[str, dict[str, bytes]] = {name: {} for name in proxies}
            seen: dict[str, dict[str, tuple]] = {name: {} for name in proxies}
            for case, (method, path, headers) in requests_for(api.port).items():
                head = request_head(method, f"http://127.0.0.1:{api.port}{path}", headers)
                for name, proxy in proxies.items():
                    answers[name][case] = exchange(proxy.port, head)
                    seen[name][case] = api.recorder.last()
            for proxy in proxies.values():
                proxy.settled(api.port, "/v1/settled")
        finally:
            for proxy in proxies.values():
                proxy.stop()
        flows = saved_flows(flows_file)
        yield {
            "api": api,
            "proxies": proxies,
            "answers": answers,
            "seen": seen,
            "flows": flows,
            "report": report_file.read_text() if report_file.exists() else "",
        }


def test_a_failing_call_no_rule_names_is_logged_once_per_host_and_reason(dumped):
    host = f"127.0.0.1:{dumped['api'].port}"
    proxy = dumped["proxies"]["addon"]
    # Once for the two failing GETs; the failing preflight adds only its new reason (the missing
    # Allow-Origin was named already). Nothing for the other calls.
    assert discovery_lines(proxy) == [
        discovery_line(host, NO_ACAO),
        discovery_line(host, "the method is not in Access-Control-Allow-Methods"),
    ]
    assert "Addon error" not in proxy.output and "Traceback" not in proxy.output


def test_the_answers_and_the_requests_are_those_of_plain_mitmdump(dumped):
    answers, seen = dumped["answers"], dumped["seen"]
    for case in requests_for(dumped["api"].port):
        plain = without_date(answers["plain"][case])
        assert plain.startswith(b"HTTP/1.1 200 OK\r\n"), (case, plain)
        assert without_date(answers["addon"][case]) == plain, case
        assert without_date(answers["off"][case]) == plain, case
        assert seen["addon"][case] == seen["plain"][case] == seen["off"][case], case
    assert b"Access-Control-Allow-Origin" not in answers["addon"]["fails"]


def test_the_saved_flows_carry_the_marker_and_the_comment_on_failing_calls_only(dumped):
    host = f"127.0.0.1:{dumped['api'].port}"
    flows = dumped["flows"]
    assert [f"{f.request.method} {f.request.path}" for f in flows] == [
        f"{method} {path}" for method, path, _ in requests_for(0).values()
    ] + ["GET /v1/settled"]
    for flow, case in zip(flows, [*requests_for(0), "settled"], strict=True):
        if case in ("fails", "fails again"):
            assert flow.marked == ":warning:", case
            assert flow.comment == f"fails CORS for {ORIGIN}: {NO_ACAO}; no rule matched it: cors.allow {host}"
        elif case == "preflight":
            assert flow.marked == ":warning:"
            assert flow.comment.startswith(f"fails CORS for {ORIGIN}: {NO_ACAO}; the method is not in "), flow.comment
            assert flow.comment.endswith(f"; no rule matched it: cors.allow {host}"), flow.comment
        else:
            assert (flow.marked, flow.comment) == ("", ""), case


def test_the_report_lists_the_host_no_rule_names_with_its_fix(dumped):
    host = f"127.0.0.1:{dumped['api'].port}"
    report = dumped["report"]
    assert "## Hosts no rule names" in report, report
    rows = [line for line in report.splitlines() if line.startswith(f"| {host} |")]
    assert [row.split(" | ")[1:3] for row in rows] == [
        [NO_ACAO, "3"],  # the two GETs and the preflight
        ["the method is not in Access-Control-Allow-Methods", "1"],
    ], report
    assert all(row.endswith(f"| cors.allow {host} |") for row in rows), rows


def test_cors_discover_false_names_nothing(dumped):
    proxy = dumped["proxies"]["off"]
    assert discovery_lines(proxy) == []
    assert "Addon error" not in proxy.output and "Traceback" not in proxy.output


# -- 2. hostile Host and Origin values ---------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path_factory):
    """mitmdump with the addon (a rules file naming another host) and plain mitmdump, and an API: fresh
    for each test, so the ordinary call after the hostile one must log its discovery line."""
    directory = tmp_path_factory.mktemp("hostile")
    rules = directory / "rules.toml"
    rules.write_bytes(ORIGINAL)
    with Upstream() as api:
        addon, plain = Proxy(rules, directory / "c1"), Proxy(None, directory / "c2")
        try:
            addon.start()
            plain.start()
            yield addon, plain, api
        finally:
            addon.stop()
            plain.stop()


MEGABYTE = 1024 * 1024


@pytest.mark.parametrize(
    "header",
    [
        b"Host: " + b"a." * (MEGABYTE // 2) + b"test\r\nOrigin: " + ORIGIN.encode(),
        b"Host: 127.0.0.1\r\nOrigin: " + ORIGIN.encode() + b"a" * MEGABYTE,  # an admitted origin, then a megabyte
        b"Host: 127.0.0.1\r\nOrigin: http://" + b"o" * MEGABYTE + b".localhost:5173",
    ],
    ids=["megabyte host", "admitted origin and a megabyte", "megabyte origin"],
)
def test_a_megabyte_header_costs_no_more_than_in_plain_mitmdump(pair, header):
    addon, plain, api = pair
    head = b"GET http://127.0.0.1:%d/v1/hostile HTTP/1.1\r\n%s\r\n\r\n" % (api.port, header)
    mark, plain_mark = addon.mark(), plain.mark()
    answer, plain_answer = exchange(addon.port, head), exchange(plain.port, head)
    assert status_of(answer) == status_of(plain_answer), (answer[:200], plain_answer[:200])
    # The addon keeps serving, and discovery still works, on the next ordinary call.
    normal = fetch("GET", f"http://127.0.0.1:{api.port}/v1/after", {"Origin": ORIGIN}, proxy=addon.port)
    assert normal.status == 200
    addon.wait_for_log(r"/v1/after", after=mark)
    plain_normal = fetch("GET", f"http://127.0.0.1:{api.port}/v1/after", {"Origin": ORIGIN}, proxy=plain.port)
    plain.wait_for_log(r"/v1/after", after=plain_mark)
    assert plain_normal.status == 200
    added = addon.lines[mark:]
    assert max(len(line) for line in added) <= max(1000, *(len(line) for line in plain.lines[plain_mark:]))
    assert all(len(line) < 1000 for line in addon.cors_lines(mark)), [line[:200] for line in addon.cors_lines(mark)]
    assert "Addon error" not in addon.output and "Traceback" not in addon.output
    # No discovery line for the hostile request (a host longer than any name, an origin no browser sends),
    # and the one for the ordinary call after it.
    wanted = discovery_line(f"127.0.0.1:{api.port}", NO_ACAO)
    wait_until(lambda: discovery_lines(addon, mark), 5, message=lambda: "\n".join(added))
    assert discovery_lines(addon, mark) == [wanted], added


def test_a_host_header_of_control_characters_and_bytes_that_are_not_utf8_is_never_written_raw(tmp_path):
    """Plain mitmdump passes and saves these flows; the addon must neither echo an escape sequence or
    bytes that are not UTF-8 to the terminal, nor make mitmproxy fail to save a flow or the report."""
    rules = tmp_path / "rules.toml"
    rules.write_bytes(ORIGINAL)
    with Upstream() as api:
        addon = Proxy(
            rules, tmp_path / "c1", "-w", str(tmp_path / "addon.mitm"), "--set", f"cors_report={tmp_path}/r.md"
        )
        plain = Proxy(None, tmp_path / "c2", "-w", str(tmp_path / "plain.mitm"))
        try:
            addon.start()
            plain.start()
            for host in (b"evil\x1b]0;owned\x07\x1b[2J.test", b"\xff\xfe.test", b"a b.test"):
                head = b"GET http://127.0.0.1:%d/v1/odd-host HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n\r\n" % (
                    api.port,
                    host,
                    ORIGIN.encode(),
                )
                assert (
                    status_of(exchange(addon.port, head)) == status_of(exchange(plain.port, head)) == b"HTTP/1.1 200 OK"
                )
            addon.settled(api.port, "/v1/settled")
            plain.settled(api.port, "/v1/settled")
        finally:
            addon.stop()
            plain.stop()
    raw = b"\n".join(addon.raw)
    assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", raw), [line for line in addon.raw if b"\x1b" in line]
    raw.decode("utf-8")
    assert "Addon error" not in addon.output and "Traceback" not in addon.output
    assert len(saved_flows(tmp_path / "addon.mitm")) == len(saved_flows(tmp_path / "plain.mitm")) == 4
    assert not (tmp_path / "r.md").exists()  # none of them is a host name: nothing to report


# -- 3. mitmweb: cors.allow through the command REST API ---------------------------------------------------


class WebApi:
    """mitmweb's REST API, from Python. XSRF is tornado's double submit: any token, sent as the cookie
    (named `_xsrf` by mitmweb 11, `_mitmproxy_xsrf` by 12) and in `X-XSRFToken`. mitmweb 12 also wants the
    token it logs: `GET /?token=` answers with its auth cookie."""

    def __init__(self, port: int, listening_line: str) -> None:
        self.port = port
        xsrf = secrets.token_hex(16)
        self.cookies = {"_xsrf": xsrf, "_mitmproxy_xsrf": xsrf}
        self.headers = {"X-XSRFToken": xsrf}
        token = re.search(r"\?token=(\w+)", listening_line)  # mitmweb 12; mitmweb 11 has no token
        status, _ = self.call("GET", f"/?token={token.group(1)}" if token else "/")
        assert status == 200, status

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        headers = {**self.headers, "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            for value in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, response.read()
        finally:
            conn.close()

    def command(self, name: str, *arguments: str) -> dict:
        """`POST /commands/<name>`: {"value": ...}, or {"error": ...} when the command refused."""
        status, body = self.call("POST", f"/commands/{name}", {"arguments": list(arguments)})
        assert status == 200, (status, body)
        return json.loads(body)

    def flows(self) -> list[dict]:
        status, body = self.call("GET", "/flows")
        assert status == 200, (status, body)
        return json.loads(body)


def start_mitmweb(directory: Path) -> tuple[Proxy, WebApi]:
    """mitmweb with the addon on a rules file holding ORIGINAL, and its REST API."""
    rules = directory / "rules.toml"
    rules.write_bytes(ORIGINAL)
    web_port = free_port()
    proxy = Proxy(
        rules, directory / "confdir", "--web-host", "127.0.0.1", "--web-port", str(web_port),
        "--set", "web_open_browser=false", program=MITMWEB,
    )  # fmt: skip
    try:
        proxy.wait_for_log(r"HTTP\(S\) proxy listening at")
        return proxy, WebApi(web_port, proxy.wait_for_log(r"Web server listening at"))
    except BaseException:
        proxy.stop()
        raise


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    proxy, api = start_mitmweb(tmp_path_factory.mktemp("mitmweb"))
    try:
        yield proxy, api
    finally:
        proxy.stop()


def wait_until_allowed(url: str, proxy_port: int) -> float:
    """Poll the call through the proxy until its answer allows ORIGIN; the seconds it took."""
    start = time.monotonic()
    replies = []

    def allowed() -> bool:
        replies.append(fetch("GET", url, {"Origin": ORIGIN}, proxy=proxy_port))
        return replies[-1].get("access-control-allow-origin") == ORIGIN

    wait_until(allowed, RELOAD_DEADLINE, 0.1, lambda: f"not in force after {RELOAD_DEADLINE} s: {replies[-1].fields}")
    return time.monotonic() - start


def test_mitmweb_names_the_host_then_cors_allow_over_rest_puts_a_rule_in_force(web):
    proxy, rest = web
    rules = Path(proxy.rules)
    with Upstream() as api:
        host = f"127.0.0.1:{api.port}"
        url = f"http://{host}/v1/items"
        mark = proxy.mark()
        assert fetch("GET", url, {"Origin": ORIGIN}, proxy=proxy.port).get("access-control-allow-origin") is None
        proxy.wait_for_log(re.escape(discovery_line(host, NO_ACAO)) + "$", after=mark)
        shown = [f for f in rest.flows() if f["request"]["path"] == "/v1/items"]
        assert [(f["marked"], f["comment"]) for f in shown] == [
            (emoji[":warning:"], f"fails CORS for {ORIGIN}: {NO_ACAO}; no rule matched it: cors.allow {host}")
        ]

        report = rest.command("cors.report")["value"]
        assert "## Hosts no rule names" in report and f"| {host} | {NO_ACAO} |" in report, report

        before = rules.read_bytes()
        assert before.startswith(ORIGINAL)
        added = rest.command("cors.allow", host)
        assert added == {"value": f"cors: added a rule for {host} to {rules}; it takes effect within a second"}
        after = rules.read_bytes()
        assert after[: len(before)] == before, "cors.allow changed the bytes already in the file"
        assert appended_block(host).fullmatch(after[len(before) :]), after[len(before) :]
        took = wait_until_allowed(url, proxy.port)
        print(f"cors.allow in force after {took:.2f} s")
        reply = fetch("GET", url, {"Origin": ORIGIN}, proxy=proxy.port)
        assert reply.status == 200 and json.loads(reply.body)["path"] == "/v1/items"

        # Refused, and the file untouched (not even replaced by an equal copy): the host is named now, and
        # so is the one in the user's own rule.
        signature = os.stat(rules)
        refused = rest.command("cors.allow", host)
        assert refused == {
            "error": f"cors.allow: rule '{host}' already names {host}: it sets CORS for "
            "http://localhost:*, https://localhost:*, http://127.0.0.1:*, http://[::1]:*; change that rule instead"
        }
        refused = rest.command("cors.allow", "api.example.com")
        assert refused["error"].startswith("cors.allow: rule 'production api' already names api.example.com: ")
        assert rules.read_bytes() == after
        assert (os.stat(rules).st_ino, os.stat(rules).st_mtime_ns) == (signature.st_ino, signature.st_mtime_ns)


def test_mitmweb_cors_allow_takes_a_flow_filter_for_one_host_and_refuses_several(web):
    proxy, rest = web
    rules = Path(proxy.rules)
    with Upstream() as first, Upstream() as second:
        for api in (first, second):
            fetch("GET", f"http://127.0.0.1:{api.port}/v1/by-filter", {"Origin": ORIGIN}, proxy=proxy.port)
            proxy.wait_for_log(re.escape(discovery_line(f"127.0.0.1:{api.port}", NO_ACAO)))
        before = rules.read_bytes()
        several = rest.command("cors.allow", "~u /v1/by-filter")
        assert several["error"].startswith("cors.allow: one host at a time: these flows name 2 hosts ("), several
        assert rules.read_bytes() == before

        host = f"127.0.0.1:{second.port}"
        added = rest.command("cors.allow", f"~u :{second.port}/v1/by-filter")
        assert added == {"value": f"cors: added a rule for {host} to {rules}; it takes effect within a second"}
        after = rules.read_bytes()
        assert after.startswith(before) and appended_block(host).fullmatch(after[len(before) :])
        wait_until_allowed(f"http://{host}/v1/by-filter", proxy.port)
        first_reply = fetch("GET", f"http://127.0.0.1:{first.port}/v1/by-filter", {"Origin": ORIGIN}, proxy=proxy.port)
        assert first_reply.get("access-control-allow-origin") is None  # still no rule's business


# -- 4. real Chromium: the page fails, cors.allow, the same page's call passes ---------------------------


@pytest.mark.browser
def test_chromium_call_fails_then_passes_after_cors_allow_without_a_restart(playwright, tmp_path):
    proxy, rest = start_mitmweb(tmp_path)
    rules = Path(proxy.rules)
    browser = None
    try:
        with Upstream("127.0.0.1") as page_server, Upstream("127.0.0.1") as api:
            page, origin = f"http://localhost:{page_server.port}/page", f"http://localhost:{page_server.port}"
            host = f"127.0.0.1:{api.port}"
            url = f"http://{host}/v1/items"
            browser = Browser(playwright, proxy.port)
            assert browser.fetch(page, url) == {"ok": False, "error": "TypeError: Failed to fetch"}
            proxy.wait_for_log(re.escape(discovery_line(host, NO_ACAO, origin)) + "$")
            assert rules.read_bytes() == ORIGINAL

            mark = proxy.mark()
            added = rest.command("cors.allow", host)
            assert added == {"value": f"cors: added a rule for {host} to {rules}; it takes effect within a second"}
            assert rules.read_bytes().startswith(ORIGINAL)
            assert appended_block(host).fullmatch(rules.read_bytes()[len(ORIGINAL) :])
            proxy.wait_for_log(re.escape(f"cors: loaded {rules}: 2 rules enabled"), after=mark)  # the watcher

            results = []

            def passes() -> bool:
                results.append(browser.fetch(page, url))
                return results[-1]["ok"]

            wait_until(passes, RELOAD_DEADLINE, 0.1, lambda: str(results[-1]))
            result = results[-1]
            assert result["status"] == 200, result
            assert json.loads(result["body"])["origin"] == origin
            assert browser.page_url == page  # the same page, never reloaded
            assert proxy.process.poll() is None
    finally:
        try:
            if browser is not None:
                browser.close()
        finally:
            proxy.stop()
