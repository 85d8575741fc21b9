"""make browser with real browsers, started as the user the tests run as (root in CI), ended as a user
ends it: a headed Chromium under Xvfb runs a page whose script calls an HTTP API and a self-signed
HTTPS API through mitmdump; a headless Firefox is ended with SIGTERM to make's process group, three
times, and leaves neither its profile nor a process behind.

mitmdump refuses every host but localhost before connecting anywhere (the browsers' own background
requests included), so nothing outside loopback is reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .browser import CHROMIUM, require_chromium
from .certs import make_self_signed
from .firefox import FIREFOX, require_firefox
from .proxy import ROOT, Mitmdump
from .support import MAKE, VENV, session_processes, wait_until
from .upstream import Upstream

pytestmark = pytest.mark.browser

ONLY_LOCALHOST = "/!~d ^localhost$/444"

PAGE = """<!doctype html><meta charset=utf-8><title>launcher</title>
<script>
(async () => {
  const results = {};
  for (const [name, url] of Object.entries(%s)) {
    try {
      const r = await fetch(url, {cache: "no-store"});
      results[name] = {status: r.status, body: await r.text()};
    } catch (e) {
      results[name] = {error: String(e)};
    }
  }
  await fetch("/report", {method: "POST", body: JSON.stringify(results)});
})();
</script>"""


class PageServer(ThreadingHTTPServer):
    """On 127.0.0.1: /page, whose script (by default) fetches `apis` ({name: url}) and posts what it saw
    to /report; `pages_served` is released once per page served."""

    daemon_threads = True

    def __init__(self, apis: dict[str, str], page: str = PAGE) -> None:
        super().__init__(("127.0.0.1", 0), PageHandler)
        self.page = (page % json.dumps(apis)).encode()
        self.reports: queue.Queue[dict] = queue.Queue()
        self.pages_served = threading.Semaphore(0)

    def __enter__(self) -> PageServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path != "/page":
            return self._send(404, b"")
        self._send(200, self.server.page, "text/html")
        self.server.pages_served.release()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self._send(204, b"")
        if self.path == "/report":
            self.server.reports.put(json.loads(body))

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_make_browser(*variables: str, env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    """make browser in a session of its own (as from a terminal); its output lines, collected as they come."""
    launcher = subprocess.Popen(
        [MAKE, "--no-print-directory", "browser", f"VENV={VENV}", *variables],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(launcher.stdout), daemon=True).start()
    return launcher, lines


def end_make_browser(launcher: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """`sig` to make's process group, as a terminal or a process manager sends it; then wait for make."""
    try:
        if launcher.poll() is None:
            os.killpg(launcher.pid, sig)
        launcher.wait(60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


def profile_of(lines: list[str], flag: str) -> Path:
    started = next(line for line in list(lines) if "make browser: started" in line)
    return Path(re.search(rf"{flag}(\S+)", started).group(1))


def browser_session(profile: Path) -> int:
    """The session of the browser started on `profile` (the launcher gives it one of its own)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(profile).encode() in (entry / "cmdline").read_bytes():
                return os.getsid(int(entry.name))
        except OSError:
            continue
    raise AssertionError(f"no process runs on {profile}")


class Xvfb:
    """A virtual X display on a display number Xvfb picks itself (so none in use is taken)."""

    def __enter__(self) -> str:
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-screen", "0", "1280x800x24"],
            pass_fds=[write_end], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write_end)
        with os.fdopen(read_end) as displayfd:
            number = displayfd.readline().strip()
        assert number.isdigit(), f"Xvfb did not start (exit status {self.process.poll()})"
        return f":{number}"

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(30)


def require_xvfb() -> None:
    if subprocess.run(["sh", "-c", "command -v Xvfb"], capture_output=True).returncode == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("Xvfb not found; CI must install it (.ci/run does: apt-get install xvfb)", pytrace=False)
    pytest.skip("Xvfb not found: install it with `sudo apt-get install xvfb` to run this test")


def test_make_browser_runs_a_headed_chromium_whose_page_reaches_http_and_self_signed_https_apis(start_proxy, tmp_path):
    """As root (CI) this starts only because of --no-sandbox; the page's calls prove the browser really ran."""
    require_chromium()
    require_xvfb()
    tls = make_self_signed(tmp_path / "certs")
    with Upstream("127.0.0.1") as http_api, Upstream("127.0.0.1", tls=tls) as https_api, Xvfb() as display:
        rules = f"""
[[rules]]
name = "local apis"
hosts = ["localhost:{http_api.port}", "localhost:{https_api.port}"]
upstream_tls_verify = false
"""
        proxy = start_proxy(rules, "--set", f"block_list={ONLY_LOCALHOST}")
        apis = {"http": f"http://localhost:{http_api.port}/data", "https": f"https://localhost:{https_api.port}/data"}
        with PageServer(apis) as page, short_temp_dir() as temp:
            launcher, lines = start_make_browser(
                f"PORT={proxy.port}", f"URL=http://localhost:{page.server_port}/page", f"BROWSER={CHROMIUM}",
                f"CONFDIR={proxy.confdir}", env={"DISPLAY": display, "TMPDIR": str(temp)},
            )  # fmt: skip
            try:
                report = first_report(page, launcher, lines)
                profile = profile_of(lines, "--user-data-dir=")
                sid = browser_session(profile)
            finally:
                end_make_browser(launcher)
    origin = f"http://localhost:{page.server_port}"
    for name in ("http", "https"):
        assert report[name].get("status") == 200, report
        assert json.loads(report[name]["body"])["origin"] == origin  # read cross-origin: the rule's headers came
    output = "".join(lines)
    assert ("running as root, so the browser gets --no-sandbox" in output) == (os.geteuid() == 0), output
    assert session_processes(sid) == [], "no Chromium process is left"
    assert not profile.parent.exists(), "the temporary profile is removed"


def first_report(page: PageServer, launcher: subprocess.Popen, lines: list[str]) -> dict:
    """What the page's script saw, once it reports it; fails at once when make browser exits first."""
    failure = lambda: f"the page never reported; make browser said:\n{''.join(lines)}"  # noqa: E731

    def report() -> dict | None:
        if launcher.poll() is not None:
            raise AssertionError(failure())
        try:
            return page.reports.get(timeout=0.5)
        except queue.Empty:
            return None

    return wait_until(report, 90, 0, failure)


@contextlib.contextmanager
def short_temp_dir():
    """A TMPDIR short enough for Chromium's socket paths (at most 107 bytes), which pytest's tmp_path is not."""
    path = Path(tempfile.mkdtemp(prefix="cl-", dir="/tmp"))
    try:
        yield path
    finally:
        leftover = list(path.glob("cors-addon-browser-*"))
        shutil.rmtree(path)
        assert leftover == [], "the temporary profile is removed"


def crash_helpers(pid: int) -> list[int]:
    """Firefox's crash helper for the main process `pid`: it runs in a session of its own."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and argv[0].endswith(b"crashhelper") and argv[1:2] == [str(pid).encode()]:
            found.append(int(entry.name))
    return found


def test_sigterm_to_make_browser_with_firefox_leaves_no_profile_and_no_firefox_process(start_proxy, tmp_path):
    require_firefox()
    proxy = start_proxy("", "--set", f"block_list={ONLY_LOCALHOST}")
    temp = tmp_path / "tmp"
    temp.mkdir()
    with PageServer({}, WRITING_PAGE) as page:
        for attempt in range(1, 4):
            sigterm_once(proxy, page, temp, attempt)


# Writes into the profile while it runs (IndexedDB, the Cache API, localStorage), as a web app does.
WRITING_PAGE = """<!doctype html><meta charset=utf-8><title>writer</title>
<script>
const unused = %s;
const db = indexedDB.open("busy", 1);
db.onupgradeneeded = () => db.result.createObjectStore("rows");
db.onsuccess = () => {
  let i = 0;
  const write = () => {
    const tx = db.result.transaction("rows", "readwrite");
    tx.objectStore("rows").put("x".repeat(100000), i++);
    tx.oncomplete = write;
  };
  write();
};
(async () => {
  const cache = await caches.open("busy");
  for (let i = 0; ; i++) {
    await cache.put("/row/" + i, new Response("y".repeat(100000)));
    localStorage.setItem("row" + (i %% 50), "z".repeat(10000));
  }
})();
</script>"""


def sigterm_once(proxy: Mitmdump, page: PageServer, temp: Path, attempt: int) -> None:
    """make browser with Firefox, ended by SIGTERM to make's process group while its page writes."""
    launcher, lines = start_make_browser(
        f"PORT={proxy.port}", f"URL=http://localhost:{page.server_port}/page", f"BROWSER={FIREFOX}",
        f"CONFDIR={proxy.confdir}", env={"MOZ_HEADLESS": "1", "TMPDIR": str(temp)},
    )  # fmt: skip
    try:
        assert page.pages_served.acquire(timeout=90), "Firefox never asked for the page"
        profile = profile_of(lines, "-profile ")
        stored = lambda: any(profile.glob("storage/default/*localhost*/idb/*"))  # noqa: E731
        wait_until(stored, 60, 0.1, "the page never wrote its data")
        sid = browser_session(profile)
        firefox = session_processes(sid)
        helpers = [helper for pid in firefox for helper in crash_helpers(pid)]
        assert len(firefox) > 1, "Firefox has started its content processes"
    finally:
        end_make_browser(launcher, signal.SIGTERM)
    output = "".join(lines)
    assert session_processes(sid) == [], f"attempt {attempt}: Firefox processes are left:\n{output}"
    assert list(temp.glob("cors-addon-browser-*")) == [], f"attempt {attempt}: the profile is left:\n{output}"
    assert "could not remove" not in output and "exited with" not in output, output
    # The crash helper (in a session of its own) exits once Firefox has: waited for, within a limit.
    gone = lambda: not any(Path(f"/proc/{h}").exists() for h in helpers)  # noqa: E731
    wait_until(gone, 60, 0.1, "Firefox's crash helper stays")
