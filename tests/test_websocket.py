"""WebSocket handshakes: `upstream_origin` applies to them as to any request, their answer is never
changed (CORS does not apply), and a handshake the API refuses with 403 is explained once.

First through mitmproxy's test helpers, then end to end: real Chromium, through a real
`mitmdump -s cors_addon.py`, opens a WebSocket to a real `websockets` server that checks Origin.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon

from .browser import Browser
from .flows import LOCAL, make_flow, run_hooks
from .flows import upstream_response as upstream
from .proxy import free_port
from .upstream import Upstream

API = "http://api.example.com/socket"
RULES = """
[[rules]]
name = "observe"
hosts = ["api.example.com"]
paths = ["/observe/*"]
action = "observe"
upstream_origin = "https://api.example.com"

[[rules]]
name = "strip"
hosts = ["api.example.com"]
paths = ["/strip/*"]
action = "strip"
upstream_origin = "https://api.example.com"

[[rules]]
name = "api"
hosts = ["api.example.com"]
"""
ACCEPT = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
REFUSED_NOTICE = "refused the WebSocket handshake"


@pytest.fixture
def cors(tmp_path):
    a = CorsAddon()
    with taddons.context(a) as tctx:
        a.rules_path = tmp_path / "rules.toml"
        use_rules(a, 'upstream_origin = "keep"\n', tctx)
        yield a


def use_rules(a, extra: str, tctx=None) -> None:
    """RULES with `extra` keys added to the last rule ('api')."""
    a.rules_path.write_text(RULES + extra)
    if tctx is not None:
        tctx.configure(a, cors_rules=str(a.rules_path))
    else:
        a.rules_file.load(str(a.rules_path))


def handshake(url=API, origin: str | None = LOCAL):
    headers = [("Host", "api.example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]
    headers += [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
    return make_flow("GET", url, headers + ([("Origin", origin)] if origin else []))


@pytest.mark.parametrize(
    "setting, sent, comment",
    [
        ('"keep"', [LOCAL], "Origin sent upstream unchanged"),
        ('"drop"', [], "Origin dropped (none sent upstream)"),
        ('"http://api.example.com"', ["http://api.example.com"], "Origin sent upstream as http://api.example.com"),
    ],
)
def test_upstream_origin_applies_to_a_handshake_from_an_allowed_origin(cors, setting, sent, comment):
    use_rules(cors, f"upstream_origin = {setting}\n")
    f = run_hooks(cors, handshake(), upstream(101, ACCEPT, b""))
    assert f.request.headers.get_all("origin") == sent
    assert f.comment == f"WebSocket handshake from {LOCAL}: {comment}; accepted (101) · cors rule 'api'"
    assert f.marked == ":handshake:"


@pytest.mark.parametrize(
    "extra",
    ["", 'allow_origins = ["*"]\n', 'allow_credentials = true\nexpose_headers = "*"\n', 'upstream_origin = "drop"\n'],
)
def test_the_answer_to_a_handshake_is_never_changed_no_cors_headers_or_vary(cors, extra):
    use_rules(cors, extra)
    for status in (101, 403):
        api = upstream(status, [*ACCEPT, ("Vary", "Accept-Encoding")] if status == 101 else [], b"")
        sent = api.headers.fields
        f = run_hooks(cors, handshake(), api)
        assert f.response.status_code == status and f.response.headers.fields == sent


def test_a_handshake_without_origin_passes_untouched_with_no_vary_on_its_answer(cors):
    use_rules(cors, 'upstream_origin = "http://api.example.com"\n')
    f = handshake(origin=None)
    before = f.request.headers.fields
    run_hooks(cors, f, upstream(101, ACCEPT, b""))
    assert f.request.headers.fields == before and f.response.headers.fields == upstream(101, ACCEPT, b"").headers.fields
    assert f.comment == "WebSocket handshake without Origin passed untouched; accepted (101) · cors rule 'api'"


def test_a_disallowed_origins_handshake_passes_untouched_and_is_noted_like_any_request(cors, caplog):
    caplog.set_level(logging.INFO)
    use_rules(cors, 'upstream_origin = "http://api.example.com"\n')
    f = handshake(origin="https://evil.example")
    before = f.request.headers.fields
    run_hooks(cors, f, upstream(403, (), b""))
    assert f.request.headers.fields == before
    assert "rule 'api': origin 'https://evil.example' is not in allow_origins; GET" in caplog.text
    assert REFUSED_NOTICE not in caplog.text  # upstream_origin does not apply to it: nothing to suggest
    assert f.comment.startswith("WebSocket handshake passed untouched: https://evil.example is not in allow_origins")
    assert f.marked == ":no_entry:"


@pytest.mark.parametrize("path, text", [("/observe/x", "observed, unchanged"), ("/strip/x", "passed untouched (strip")])
def test_observe_and_strip_change_neither_the_handshake_nor_its_answer(cors, path, text):
    f = handshake(API.replace("/socket", path))
    before = f.request.headers.fields
    api = upstream(101, [*ACCEPT, ("Access-Control-Allow-Origin", "*")], b"")
    run_hooks(cors, f, api)
    assert f.request.headers.fields == before  # the rules' upstream_origin is not applied
    assert f.response.headers.get_all("Access-Control-Allow-Origin") == ["*"]  # a 101 is not stripped
    assert f.comment.startswith(f"WebSocket handshake {text}")


@pytest.mark.parametrize(
    "setting, advice",
    [
        (
            '"keep"',
            "api.example.com refused the WebSocket handshake from http://localhost:3000 (403): servers check a "
            "handshake's Origin themselves (CORS does not apply to WebSockets); set upstream_origin = "
            '"http://api.example.com" (an origin the server accepts) or "drop" in rule \'api\'',
        ),
        (
            '"https://app.example.com"',
            "api.example.com refused the WebSocket handshake from http://localhost:3000 (403), sent upstream with "
            "Origin: https://app.example.com (upstream_origin in rule 'api'): the server does not accept that "
            'origin; set upstream_origin to one it accepts (e.g. "http://api.example.com") or "drop"',
        ),
        (
            '"drop"',
            "api.example.com refused the WebSocket handshake from http://localhost:3000 (403), sent upstream "
            "without Origin (upstream_origin = \"drop\" in rule 'api'): the server wants an Origin it accepts; "
            'set upstream_origin to one (e.g. "http://api.example.com")',
        ),
    ],
)
def test_a_403_to_a_handshake_is_explained_once_naming_upstream_origin(cors, caplog, setting, advice):
    use_rules(cors, f"upstream_origin = {setting}\n")
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        f = run_hooks(cors, handshake(), upstream(403, (), b""))
    notices = [r for r in caplog.records if REFUSED_NOTICE in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in notices] == [(logging.WARNING, f"cors: {advice}")] + [
        (logging.DEBUG, f"cors: {advice}")
    ] * 2
    assert f.comment.startswith(f"WebSocket handshake from {LOCAL}: ") and "; refused (403) · " in f.comment
    assert f.marked == ":warning:"


def test_only_a_403_to_a_handshake_is_a_refusal_to_explain(cors, caplog):
    caplog.set_level(logging.INFO)
    run_hooks(cors, make_flow("GET", API, [("Origin", LOCAL)]), upstream(403))  # not a handshake
    run_hooks(cors, handshake(), upstream(101, ACCEPT, b""))
    run_hooks(cors, handshake(origin=None), upstream(403, (), b""))  # no Origin: not about the Origin
    run_hooks(cors, handshake(API.replace("/socket", "/observe/x")), upstream(403, (), b""))  # observe applies nothing
    assert REFUSED_NOTICE not in caplog.text


def test_a_handshake_counts_as_a_hit_and_is_left_out_of_the_api_check(cors):
    run_hooks(cors, handshake(), upstream(101, ACCEPT, b""))
    assert cors.ruleset.hits[cors.ruleset.rules[-1].index] == 1
    assert not cors.api_check.report  # no CORS verdict on a handshake: the browser checks none


def test_a_handshake_gets_its_own_per_flow_line(cors, caplog):
    caplog.set_level(logging.INFO)
    use_rules(cors, 'upstream_origin = "http://api.example.com"\n')
    run_hooks(cors, handshake(), upstream(101, ACCEPT, b""))
    assert (
        "cors: GET api.example.com/socket: WebSocket handshake from http://localhost:3000: Origin sent upstream as "
        "http://api.example.com; accepted (101) (rule 'api')"
    ) in caplog.text


# -- end to end: Chromium, mitmdump, a `websockets` server that checks Origin --------------------


OPEN_AND_ECHO = """([url, message]) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.onopen = () => ws.send(message);
  ws.onmessage = (e) => { resolve({open: true, echo: e.data}); ws.close(); };
  ws.onclose = (e) => resolve({open: false, code: e.code});
  setTimeout(() => resolve({open: false, error: "no answer within 20 s"}), 20000);  // a hang guard only
})"""


class EchoServers:
    """`websockets` echo servers on 127.0.0.1, one per `origins` list ("own" stands for the server's
    own origin, http://127.0.0.1:PORT), on one event loop in a thread; each records the Origin
    headers of every handshake it gets, before it checks them."""

    def __init__(self, *origin_lists: list) -> None:
        self.ports = [free_port() for _ in origin_lists]
        self.origin_lists = origin_lists
        self.seen: dict[int, list[list[str]]] = {port: [] for port in self.ports}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def own(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> EchoServers:
        self.thread.start()
        self.servers = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(15)
        return self

    async def _start(self) -> list:
        from websockets.asyncio.server import serve

        servers = []
        for port, origins in zip(self.ports, self.origin_lists, strict=True):
            allowed = [self.own(port) if o == "own" else o for o in origins]
            record = self._recorder(port)
            servers.append(await serve(self._echo, "127.0.0.1", port, origins=allowed, process_request=record))
        return servers

    def _recorder(self, port: int):
        def record(connection, request) -> None:
            self.seen[port].append(request.headers.get_all("Origin"))

        return record

    async def _echo(self, connection) -> None:
        async for message in connection:
            await connection.send(message)

    async def _stop(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()

    def __exit__(self, *exc) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(15)
            self.loop.close()


@pytest.fixture(scope="module")
def setup(playwright, tmp_path_factory):
    """Four servers, each accepting only its own origin (the drop one also no Origin), a rule for
    each, and a page on http://localhost:P; Chromium reaches all of them through mitmdump."""
    from .proxy import Mitmdump

    with EchoServers(["own"], ["own", None], ["own"], ["own"]) as ws, Upstream("127.0.0.1") as page:
        replace, drop, keep, disallowed = ws.ports
        rules = f"""
[[rules]]
name = "replace"
hosts = ["127.0.0.1:{replace}"]
upstream_origin = "{ws.own(replace)}"

[[rules]]
name = "drop"
hosts = ["127.0.0.1:{drop}"]
upstream_origin = "drop"

[[rules]]
name = "keep"
hosts = ["127.0.0.1:{keep}"]

[[rules]]
name = "other pages"
hosts = ["127.0.0.1:{disallowed}"]
allow_origins = ["https://app.example.com"]
upstream_origin = "{ws.own(disallowed)}"
"""
        directory = tmp_path_factory.mktemp("websocket")
        (directory / "rules.toml").write_text(rules)
        proxy = Mitmdump(directory / "rules.toml", directory / "confdir").start()
        browser = None
        try:
            browser = Browser(playwright, proxy.port)
            browser.open(f"http://localhost:{page.port}/page")
            yield {"ws": ws, "proxy": proxy, "browser": browser, "page_origin": f"http://localhost:{page.port}"}
        finally:
            if browser is not None:
                browser.close()
            proxy.stop()


def open_socket(setup, port: int, message: str) -> dict:
    return setup["browser"].page.evaluate(OPEN_AND_ECHO, [f"ws://127.0.0.1:{port}/", message])


@pytest.mark.browser
def test_chromium_talks_to_a_server_that_checks_origin_when_the_rule_sends_its_origin(setup):
    ws = setup["ws"]
    port = ws.ports[0]
    assert open_socket(setup, port, "hello") == {"open": True, "echo": "hello"}
    assert ws.seen[port] == [[ws.own(port)]]
    line = setup["proxy"].wait_for_log(r"cors: GET 127\.0\.0\.1:\d+/: WebSocket handshake")
    assert f"Origin sent upstream as {ws.own(port)}; accepted (101) (rule 'replace')" in line


@pytest.mark.browser
def test_chromium_talks_to_a_server_that_accepts_no_origin_when_the_rule_drops_it(setup):
    ws = setup["ws"]
    port = ws.ports[1]
    assert open_socket(setup, port, "no origin") == {"open": True, "echo": "no origin"}
    assert ws.seen[port] == [[]]


@pytest.mark.browser
def test_with_keep_the_server_refuses_the_page_origin_and_the_proxy_says_what_to_set(setup):
    ws, proxy = setup["ws"], setup["proxy"]
    port = ws.ports[2]
    assert open_socket(setup, port, "hello") == {"open": False, "code": 1006}
    assert ws.seen[port] == [[setup["page_origin"]]]
    notice = proxy.wait_for_log(REFUSED_NOTICE)
    assert notice.endswith(
        f"cors: 127.0.0.1 refused the WebSocket handshake from {setup['page_origin']} (403): servers check a "
        "handshake's Origin themselves (CORS does not apply to WebSockets); set upstream_origin = "
        f'"{ws.own(port)}" (an origin the server accepts) or "drop" in rule \'keep\''
    )


@pytest.mark.browser
def test_a_disallowed_page_origins_handshake_reaches_the_server_untouched(setup):
    ws, proxy = setup["ws"], setup["proxy"]
    port = ws.ports[3]
    mark = proxy.mark()
    assert open_socket(setup, port, "hello") == {"open": False, "code": 1006}
    assert ws.seen[port] == [[setup["page_origin"]]]  # not the rule's upstream_origin
    line = proxy.wait_for_log(r"WebSocket handshake passed untouched: .* is not in allow_origins", after=mark)
    assert line.endswith("; refused (403) (rule 'other pages')")
    # Any notice for this flow is logged before its per-flow line: none names upstream_origin.
    assert not [seen for seen in proxy.output.splitlines()[mark:] if REFUSED_NOTICE in seen]
