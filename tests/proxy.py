"""A real `mitmdump -s cors_addon.py` process for the tests, and a client that talks through it."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from mitmproxy import io
from mitmproxy.http import HTTPFlow

from .flows import LOCAL
from .support import wait_until

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = str(Path(sys.executable).parent / "mitmdump")
MITMWEB = str(Path(sys.executable).parent / "mitmweb")
MITMPROXY = str(Path(sys.executable).parent / "mitmproxy")
LOOPBACK_GUARD = Path(__file__).resolve().parent / "loopback_guard.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mitmdump:
    """mitmdump on 127.0.0.1 with the addon; its output is collected for assertions."""

    def __init__(
        self,
        rules: Path | None,
        confdir: Path,
        *args: str,
        lazy: bool = True,
        prefix: tuple[str, ...] = (),
        program: str = MITMDUMP,
        guard: bool = True,
    ) -> None:
        """With `rules`, mitmdump runs the addon on that rules file; with None, plain mitmdump.
        `prefix` goes before the command (the benchmark pins mitmdump to a CPU with taskset);
        `program` is mitmdump, or mitmweb beside it. `guard` loads tests/loopback_guard.py after the
        addon: every server connection that is not on loopback is refused before it is attempted
        (the benchmark turns it off, for plain mitmdump and the addon alike)."""
        self.port = free_port()
        self.rules = rules
        self.confdir = confdir
        addon = ["-s", str(ROOT / "cors_addon.py"), "--set", f"cors_rules={rules}"] if rules else []
        if guard:
            addon += ["-s", str(LOOPBACK_GUARD)]
        command = [
            *prefix,
            program,
            *addon,
            "--listen-host", "127.0.0.1",
            "--listen-port", str(self.port),
            "--set", f"confdir={confdir}",
            *(["--set", "connection_strategy=lazy"] if lazy else []),
            *args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.lines: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        with self.lock:
            return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 15.0, after: int = 0) -> str:
        """The first line (from line number `after` on) matching the regex `pattern`; fails a second
        after mitmdump exited (its last lines read by then)."""
        failure = lambda: f"no log line matching {pattern!r}; mitmdump said:\n{self.output}"  # noqa: E731
        started = time.monotonic()

        def matching_line() -> str | None:
            with self.lock:
                for line in self.lines[after:]:
                    if re.search(pattern, line):
                        return line
            if self.process.poll() is not None and time.monotonic() > started + 1:
                raise AssertionError(failure())
            return None

        return wait_until(matching_line, timeout, 0.02, failure)

    def mark(self) -> int:
        with self.lock:
            return len(self.lines)

    def start(self) -> Mitmdump:
        self.wait_for_log(r"listening at")
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Reply:
    def __init__(self, response: http.client.HTTPResponse, body: bytes) -> None:
        self.status = response.status
        self.fields = response.getheaders()
        self.headers = response.headers
        self.body = body

    def get(self, name: str) -> str | None:
        return self.headers.get(name)

    def get_all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


def fetch(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    proxy: int | None = None,
    body: bytes | None = None,
) -> Reply:
    """One request, through the proxy on `proxy` (absolute-form) or straight to `url`'s host."""
    host, port, path = _split(url)
    conn = http.client.HTTPConnection("127.0.0.1", proxy or port, timeout=15)
    try:
        conn.request(method, url if proxy else path, body=body, headers={"Host": f"{host}:{port}", **(headers or {})})
        response = conn.getresponse()
        return Reply(response, response.read())
    finally:
        conn.close()


def _split(url: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)?", url)
    assert m, url
    return m.group(1), int(m.group(2)), m.group(3) or "/"


# -- one flow of each decision (tests/test_ui.py, tools/screenshot_mitmweb.py) -------------------------

DECISION_RULES = """
[[rules]]
name = "strip"
hosts = ["127.0.0.1:{port}"]
paths = ["/strip/*"]
action = "strip"

[[rules]]
name = "observe"
hosts = ["127.0.0.1:{port}"]
paths = ["/observe/*"]
action = "observe"

[[rules]]
name = "api"
hosts = ["127.0.0.1:{port}"]
"""
EVIL = "https://evil.example"


def one_flow_per_decision(proxy: int, api: int) -> None:
    """Through the proxy on port `proxy` to the API on port `api`, on `DECISION_RULES`: a preflight
    answered, CORS set, an origin refused, CORS stripped, a flow observed; each in turn."""
    base = f"http://127.0.0.1:{api}"
    fetch("OPTIONS", f"{base}/v1/users", {"Origin": LOCAL, "Access-Control-Request-Method": "PUT"}, proxy=proxy)
    fetch("GET", f"{base}/v1/users", {"Origin": LOCAL}, proxy=proxy)
    fetch("GET", f"{base}/v1/evil", {"Origin": EVIL}, proxy=proxy)
    fetch("GET", f"{base}/strip/x", {"Origin": LOCAL}, proxy=proxy)
    fetch("GET", f"{base}/observe/x", {"Origin": LOCAL}, proxy=proxy)


def saved_flows(path: Path) -> list[HTTPFlow]:
    """The flows a stopped mitmdump wrote with `-w path`."""
    with open(path, "rb") as f:
        return list(io.FlowReader(f).stream())


def api_check_of(flow: HTTPFlow) -> str:
    """The API check's line of a flow's comment."""
    return next(line for line in flow.comment.split("\n") if line.startswith("API check:"))
