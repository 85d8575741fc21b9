"""The addon where mitmproxy users look: mitmdump's per-flow lines, mitmweb 12 in headless
Chromium (the flow list, its REST API, the Options page, the command bar) and the console under tmux."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from mitmproxy.version import VERSION

from .browser import CHROMIUM, require_chromium
from .flows import LOCAL
from .proxy import DECISION_RULES as RULES
from .proxy import EVIL, MITMPROXY, MITMWEB, Mitmdump, fetch, free_port
from .proxy import one_flow_per_decision as traffic
from .support import wait_until
from .upstream import Upstream


def flow_lines(port: int) -> list[str]:
    host = f"127.0.0.1:{port}"
    return [
        f"cors: OPTIONS {host}/v1/users: preflight answered for {LOCAL} (rule 'api')",
        f"cors: GET {host}/v1/users: CORS set for {LOCAL}: Allow-Origin (rule 'api')",
        f"cors: GET {host}/v1/evil: origin refused: {EVIL} is not in allow_origins "
        "(http://localhost:*, https://localhost:*, http://127.0.0.1:*, http://[::1]:*) (rule 'api')",
        f"cors: GET {host}/strip/x: CORS stripped (the API sent none) (rule 'strip')",
        f"cors: GET {host}/observe/x: observed, unchanged (rule 'observe'); "
        "API check: fails: no Access-Control-Allow-Origin",
    ]


# -- mitmdump ------------------------------------------------------------------------------------------


def test_mitmdump_prints_one_cors_line_per_decided_flow(start_proxy):
    with Upstream() as api:
        proxy = start_proxy(RULES.format(port=api.port))
        traffic(proxy.port, api.port)
        for line in flow_lines(api.port):
            proxy.wait_for_log(re.escape(line) + "$")
    assert proxy.output.count(f"cors: GET 127.0.0.1:{api.port}/v1/users:") == 1


@pytest.mark.parametrize("option", ["cors_flow_log=false", "flow_detail=0"])
def test_cors_flow_log_off_leaves_only_the_first_time_notices(start_proxy, option):
    with Upstream() as api:
        proxy = start_proxy(RULES.format(port=api.port), "--set", option)
        traffic(proxy.port, api.port)
        proxy.wait_for_log(re.escape(f"origin '{EVIL}' is not in allow_origins"))
        # The sync point: a first-time notice, logged as the next flow arrives. A flow's line is logged in
        # `responseheaders`, before its answer goes back; so by then every earlier flow's line would be out.
        fetch("GET", f"http://127.0.0.1:{api.port}/v1/last", {"Origin": "https://last.example"}, proxy=proxy.port)
        proxy.wait_for_log(re.escape("origin 'https://last.example' is not in allow_origins"))
    assert not re.search(r"cors: (GET|OPTIONS) 127\.0\.0\.1", proxy.output), proxy.output


# -- mitmweb 12 in Chromium -----------------------------------------------------------------------------

REST = """async ([method, path, body]) => {
  const xsrf = (document.cookie.match(/_mitmproxy_xsrf=([^;]+)/) || [])[1];
  const r = await fetch(path, {method, headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf},
                               body: body === null ? undefined : JSON.stringify(body)});
  return {status: r.status, body: await r.text()};
}"""
MARKERS = {
    "OPTIONS /v1/users": "⚡",
    "GET /v1/users": "✅",
    "GET /v1/evil": "⛔",
    "GET /strip/x": "✂",
    "GET /observe/x": "⚠",
}

needs_mitmweb_12 = pytest.mark.skipif(int(VERSION.split(".")[0]) < 12, reason="the mitmweb tests are for mitmweb 12")


class Mitmweb:
    def __init__(self, page, proxy: Mitmdump) -> None:
        self.page, self.proxy = page, proxy

    def rest(self, method: str, path: str, body=None):
        reply = self.page.evaluate(REST, [method, path, body])
        assert reply["status"] == 200, reply
        return json.loads(reply["body"]) if reply["body"] else None

    def flows(self) -> dict[str, dict]:
        return {f"{f['request']['method']} {f['request']['path']}": f for f in self.rest("GET", "/flows")}

    def command(self, text: str) -> str:
        """Run `text` in mitmweb's command bar; what the Command Result pane shows for it."""
        entry = self.page.get_by_placeholder("Enter command")
        entry.fill(text)
        entry.press("Enter")
        result = self.page.locator(".command-result > div").filter(has_text=f"$ {text}").last
        result.wait_for()
        return result.text_content().removeprefix(f"$ {text}")

    def open_options(self):
        self.page.get_by_text("Options", exact=True).click()
        self.page.get_by_text("Edit Options").click()
        return self.page.locator(".modal")


@pytest.fixture(scope="module")
def mitmweb(tmp_path_factory):
    require_chromium()
    from playwright.sync_api import sync_playwright

    directory = tmp_path_factory.mktemp("mitmweb")
    with Upstream() as api, sync_playwright() as p:
        rules = directory / "rules.toml"
        rules.write_text(RULES.format(port=api.port))
        web_port = free_port()
        proxy = Mitmdump(
            rules, directory / "confdir", "--web-host", "127.0.0.1", "--web-port", str(web_port),
            "--set", "web_open_browser=false", program=MITMWEB,
        ).start()  # fmt: skip
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            token = re.search(r"\?token=(\w+)", proxy.wait_for_log(r"Web server listening at")).group(1)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            traffic(proxy.port, api.port)
            page.goto(f"http://127.0.0.1:{web_port}/?token={token}")
            page.locator(".flow-table tbody td.col-path").nth(4).wait_for()
            yield Mitmweb(page, proxy), api
        finally:
            browser.close()
            proxy.stop()


@needs_mitmweb_12
@pytest.mark.browser
def test_mitmweb_flow_list_shows_a_marker_per_decision(mitmweb):
    web, api = mitmweb
    rows = web.page.locator(".flow-table tbody tr:has(td.col-path)")
    shown = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        path = row.locator("td.col-path").inner_text().strip()
        method = row.locator("td.col-method").inner_text().strip()
        marker = row.locator("td.col-path .marker").inner_text().strip()
        shown[f"{method} {path.rsplit(str(api.port), 1)[-1].removeprefix(marker)}"] = marker
    assert {k: shown.get(k) for k in MARKERS} == MARKERS


@needs_mitmweb_12
@pytest.mark.browser
def test_mitmweb_comments_say_the_decision_first(mitmweb):
    web, _ = mitmweb
    comments = {k: f["comment"].split("\n")[0] for k, f in web.flows().items()}
    assert comments["OPTIONS /v1/users"] == f"preflight answered for {LOCAL} · cors rule 'api'"
    assert comments["GET /v1/users"] == f"CORS set for {LOCAL}: Allow-Origin · cors rule 'api'"
    assert comments["GET /v1/evil"].startswith(f"origin refused: {EVIL} is not in allow_origins (http://localhost:*")
    assert comments["GET /observe/x"] == "observed, unchanged · cors rule 'observe'"


@needs_mitmweb_12
@pytest.mark.browser
def test_mitmweb_status_reads_as_lines_and_a_replay_changes_no_comment_or_count(mitmweb):
    web, api = mitmweb
    web.page.get_by_text("Options", exact=True).click()
    web.page.get_by_text("Display Command Bar").click()
    shown = web.command("cors.status")
    assert "\\n" not in shown
    lines = json.loads(shown)
    assert lines[1:] == [
        "rule 'strip': on, strip, 1 hit",
        "rule 'observe': on, observe, 1 hit",
        "rule 'api': on, inject, 3 hits",
    ]

    flow = web.flows()["GET /v1/users"]
    before = flow["comment"]
    web.rest("POST", f"/flows/{flow['id']}/replay")

    def replay_answered() -> bool:
        response = web.flows()["GET /v1/users"].get("response") or flow["response"]
        return response["timestamp_start"] != flow["response"]["timestamp_start"]

    wait_until(replay_answered, 10, 0.1, "the replay did not finish")
    assert web.flows()["GET /v1/users"]["comment"] == before
    assert json.loads(web.command("cors.status"))[3] == "rule 'api': on, inject, 3 hits"
    assert web.command("cors.toggle") == '"cors: off (cors_enabled = false): every flow passes untouched; ' \
        'cors.toggle switches it on"'  # fmt: skip
    web.command("cors.toggle")


@needs_mitmweb_12
@pytest.mark.browser
def test_mitmweb_options_switch_cors_enabled_for_the_next_request(mitmweb):
    web, api = mitmweb
    url = f"http://127.0.0.1:{api.port}/v1/after"
    # mitmweb shows the box as the server has it: a click changes it once the option is set (the log
    # line says so), which under load can take longer than Playwright's check()/uncheck() wait for.
    mark = web.proxy.mark()
    modal = web.open_options()
    modal.locator("input[name=cors_enabled]").click()
    web.proxy.wait_for_log(r"cors: off \(cors_enabled = false\)", after=mark)
    web.page.keyboard.press("Escape")
    assert fetch("GET", url, {"Origin": LOCAL}, proxy=web.proxy.port).get("access-control-allow-origin") is None
    assert web.flows()["GET /v1/after"]["comment"] == "passed untouched: cors_enabled is off · cors rule 'api'"
    mark = web.proxy.mark()
    modal = web.open_options()
    modal.locator("input[name=cors_enabled]").click()
    web.proxy.wait_for_log(r"cors: on;", after=mark)
    web.page.keyboard.press("Escape")
    assert fetch("GET", url, {"Origin": LOCAL}, proxy=web.proxy.port).get("access-control-allow-origin") == LOCAL


@needs_mitmweb_12
@pytest.mark.browser
def test_mitmweb_refuses_a_mistyped_rules_file_at_the_field_and_keeps_the_rules(mitmweb):
    web, api = mitmweb
    mark = web.proxy.mark()
    modal = web.open_options()
    field = modal.locator("input[name=cors_rules]")
    field.press("End")
    field.press_sequentially("x.bak")  # one option update per keystroke, as a user types
    modal.locator(".has-error input[name=cors_rules]").wait_for()  # mitmweb 12 marks the field red
    web.page.keyboard.press("Escape")
    refused = web.page.evaluate(REST, ["PUT", "/options", {"cors_rules": "/no/such/rules.toml"}])
    assert refused == {"status": 400, "body": "/no/such/rules.toml not found"}  # the message, one line
    reply = fetch("GET", f"http://127.0.0.1:{api.port}/v1/still", {"Origin": LOCAL}, proxy=web.proxy.port)
    assert reply.get("access-control-allow-origin") == LOCAL
    assert web.rest("GET", "/options")["cors_rules"]["value"].endswith("/rules.toml")
    status = json.loads(web.command("cors.status"))
    assert status[0].endswith("rules.toml: 3 rules enabled")
    ours = [line for line in web.proxy.lines[mark:] if "cors:" in line and "not found" in line]
    assert ours == [], ours  # nothing logged per keystroke (mitmweb logs its own 400s)


# -- the mitmproxy console under tmux ----------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux (CI installs it)")
def test_console_shows_toggle_in_the_status_bar_and_status_as_lines(tmp_path):
    with Upstream() as api:
        rules = tmp_path / "rules.toml"
        rules.write_text(RULES.format(port=api.port))
        session = f"cors-{free_port()}"
        command = [
            MITMPROXY, "-s", "cors_addon.py", "--set", f"cors_rules={rules}", "--listen-host", "127.0.0.1",
            "--listen-port", str(free_port()), "--set", f"confdir={tmp_path / 'confdir'}",
        ]  # fmt: skip
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", *command], check=True)
        try:
            screen = wait_for_screen(session, "[scripts:1]")
            type_command(session, "cors.toggle")
            screen = wait_for_screen(session, "Alert:")
            status_bar = screen.rstrip("\n").split("\n")[-1]
            assert "cors: off (cors_enabled = false): every flow passes untouched" in status_bar, screen
            subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
            type_command(session, "cors.status")
            screen = wait_for_screen(session, "rule 'api': off")
            rows = [line.strip(" │") for line in screen.split("\n")]  # the overlay's rows
            assert "rule 'strip': off (cors_enabled is off), strip, 0 hits" in rows, screen
            assert "rule 'api': off (cors_enabled is off), inject, 0 hits" in rows, screen
            assert any(row.startswith("cors: off (cors_enabled = false") for row in rows), screen
            subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
            type_command(session, f"set cors_rules {tmp_path / 'nope.toml'}")
            screen = wait_for_screen(session, "Error:")
            assert f"{tmp_path / 'nope.toml'} not found" in screen.rstrip("\n").split("\n")[-1], screen
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def type_command(session: str, text: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, ":"], check=True)
    prompt = lambda: screen(session).rstrip("\n").split("\n")[-1].strip() == ":"  # noqa: E731
    wait_until(prompt, 10, 0.05, lambda: f"no command prompt:\n{screen(session)}")
    subprocess.run(["tmux", "send-keys", "-t", session, text, "Enter"], check=True)


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def wait_for_screen(session: str, text: str, timeout: float = 20) -> str:
    def showing() -> str:
        shown = screen(session)
        return shown if text in shown else ""

    return wait_until(showing, timeout, 0.1, lambda: f"{text!r} not on the screen:\n{screen(session)}")
