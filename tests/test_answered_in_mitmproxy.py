"""The API check judges only the API's own answers: answers that mitmproxy's map_local or server replay
gave before the request reached the API get no verdict (a real mitmdump and a real API on loopback)."""

from __future__ import annotations

import json

from .flows import LOCAL
from .proxy import Mitmdump, api_check_of, fetch, saved_flows
from .upstream import Upstream

RULES = '[[rules]]\nname = "api"\nhosts = ["127.0.0.1:{port}"]\naction = "observe"\n'
NOT_FROM_API = "API check: not checked (answered by mitmproxy, not the API)"


def verdicts(report, api: str) -> list[tuple[str, int]]:
    return [(v["reason"], v["count"]) for v in json.loads(report.read_text())["apis"][api]["verdicts"]]


def api_checks(saved) -> dict[str, str]:
    return {f.request.path: api_check_of(f) for f in saved_flows(saved)}


def test_a_map_local_answer_gets_no_verdict_and_the_api_s_own_answer_does(start_proxy, tmp_path):
    mock = tmp_path / "users.json"
    mock.write_text('{"mock": true}')
    report, flows = tmp_path / "report.json", tmp_path / "out.flows"
    with Upstream() as api:
        base = f"http://127.0.0.1:{api.port}"
        proxy = start_proxy(RULES.format(port=api.port), "--map-local", f"|/mocked|{mock}", "--set",
                            f"cors_report={report}", "-w", str(flows))  # fmt: skip
        assert fetch("GET", f"{base}/mocked", {"Origin": LOCAL}, proxy=proxy.port).body == b'{"mock": true}'
        assert fetch("GET", f"{base}/real", {"Origin": LOCAL}, proxy=proxy.port).status == 200
        proxy.stop()  # the report is written at stop
        assert [path for _, path, _ in api.recorder.requests] == ["/real"]
    assert api_checks(flows) == {"/mocked": NOT_FROM_API, "/real": "API check: fails: no Access-Control-Allow-Origin"}
    assert verdicts(report, base) == [("no Access-Control-Allow-Origin", 1)]
    assert proxy.output.count(f"cors: API {base} fails the browser's CORS check") == 1
    assert "(GET /real from http://localhost:3000)" in proxy.output


def test_a_server_replay_answer_gets_no_verdict_and_the_api_s_own_answer_does(start_proxy, tmp_path):
    saved, report, flows = tmp_path / "saved.flows", tmp_path / "report.json", tmp_path / "out.flows"
    with Upstream() as api:
        base = f"http://127.0.0.1:{api.port}"
        recorder = Mitmdump(None, tmp_path / "confdir", "-w", str(saved)).start()
        try:
            assert fetch("GET", f"{base}/replayed", {"Origin": LOCAL}, proxy=recorder.port).status == 200
        finally:
            recorder.stop()
        replay = ("--server-replay", str(saved), "--set", "server_replay_extra=forward")
        proxy = start_proxy(RULES.format(port=api.port), *replay, "--set", f"cors_report={report}", "-w", str(flows))
        assert fetch("GET", f"{base}/replayed", {"Origin": LOCAL}, proxy=proxy.port).status == 200
        assert fetch("GET", f"{base}/forwarded", {"Origin": LOCAL}, proxy=proxy.port).status == 200
        proxy.stop()
        assert [path for _, path, _ in api.recorder.requests] == ["/replayed", "/forwarded"]  # once each, by the API
    assert api_checks(flows) == {
        "/replayed": NOT_FROM_API,
        "/forwarded": "API check: fails: no Access-Control-Allow-Origin",
    }
    assert verdicts(report, base) == [("no Access-Control-Allow-Origin", 1)]
