"""Debian's Firefox ESR, headless, for the Firefox tests (Playwright's own Firefox build cannot be had here).

No driver: a `Collector` (an HTTP server thread on 127.0.0.1) serves a page whose script makes the
calls and POSTs what it saw, as JSON, back to the collector, which the test waits on with a deadline.
`Firefox` starts the browser on a fresh profile in its own session, with prefs that keep it from
calling out (updates, telemetry, captive portal, safe browsing, remote settings, ...), and on close
makes sure that it and every process it forked are gone. The tests' mitmdump refuses every host that
is not on loopback (tests/loopback_guard.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .support import wait_until

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"


def require_firefox() -> None:
    """Skip (locally) or fail (in CI) when there is no Firefox to run."""
    if os.access(FIREFOX, os.X_OK):
        return
    missing = f"Firefox not found at {FIREFOX}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}; CI must install it (.ci/run does: apt-get install firefox-esr)", pytrace=False)
    pytest.skip(f"{missing}: install it with `sudo apt-get install firefox-esr libnss3-tools` to run the Firefox tests")


def require_certutil() -> None:
    """Skip (locally) or fail (in CI) without NSS's certutil, which make browser needs to make Firefox
    trust mitmproxy's CA."""
    if shutil.which("certutil"):
        return
    missing = "NSS's certutil not found (make browser imports mitmproxy's CA into the Firefox profile with it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}; CI must install it (.ci/run does: apt-get install libnss3-tools)", pytrace=False)
    pytest.skip(f"{missing}: install it with `sudo apt-get install libnss3-tools`")


# -- prefs: a Firefox that talks to nothing but what the test asks for --------------------------------

QUIET_PREFS: dict[str, bool | int | str] = {
    # first run, default browser, welcome pages
    "browser.shell.checkDefaultBrowser": False,
    "browser.aboutwelcome.enabled": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "browser.newtabpage.enabled": False,
    "browser.sessionstore.resume_from_crash": False,
    "toolkit.startup.max_resumed_crashes": -1,
    "browser.uitour.enabled": False,
    "signon.rememberSignons": False,
    # updates: the browser, add-ons, system add-ons, media plugins, search engines, region
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.blocklist.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "browser.search.update": False,
    "browser.region.update.enabled": False,
    "browser.region.network.url": "",
    # telemetry, studies, experiments, pings
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "data:,",
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "browser.discovery.enabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    # captive portal and connectivity checks
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    # safe browsing
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    # remote settings and what rides on it (CRLite, intermediates, translations, ...)
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "browser.translations.enable": False,
    # accounts, push, certificate revocation checks, DNS over HTTPS, prefetching, speculative connects
    "identity.fxaccounts.enabled": False,
    "dom.push.enabled": False,
    "security.OCSP.enabled": 0,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "network.http.http3.enable": False,
    "browser.urlbar.speculativeConnect.enabled": False,
    # fewer processes to start on a small machine
    "dom.ipc.processPrelaunch.enabled": False,
}


# MOZ_DISABLE_NONLOCAL_CONNECTIONS, Firefox's own test switch: no connection to an address that is not
# local (a proxy on loopback still carries everything), and remote settings honour the dummy server.
QUIET_ENV = {"MOZ_HEADLESS": "1", "MOZ_DISABLE_NONLOCAL_CONNECTIONS": "1"}


def proxy_prefs(port: int, *, localhost: bool) -> dict[str, bool | int | str]:
    """Every http and https request through the proxy on 127.0.0.1:`port`; with `localhost`,
    loopback hosts too (Firefox never sends them through a proxy otherwise)."""
    return {
        "network.proxy.type": 1,
        "network.proxy.http": "127.0.0.1",
        "network.proxy.http_port": port,
        "network.proxy.ssl": "127.0.0.1",
        "network.proxy.ssl_port": port,
        "network.proxy.share_proxy_settings": True,
        "network.proxy.no_proxies_on": "",
        "network.proxy.allow_hijacking_localhost": localhost,
    }


def user_js(prefs: dict[str, bool | int | str]) -> str:
    return "".join(f"user_pref({json.dumps(name)}, {json.dumps(value)});\n" for name, value in prefs.items())


# -- processes --------------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (parent pid, session id, state, start time) of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        table[int(entry)] = (int(fields[1]), int(fields[3]), fields[0], fields[19])
    return table


class ProcessGroup:
    """The processes of a session led by `leader` (started with start_new_session=True), and every
    descendant seen, in case one starts a session of its own."""

    def __init__(self, leader: int) -> None:
        self.leader = leader
        self.seen: dict[int, str] = {}  # pid -> start time, so a reused pid is not mistaken for ours

    def snapshot(self) -> None:
        table = _processes()
        ours = {pid for pid, (_, sid, _, _) in table.items() if sid == self.leader}
        ours |= {pid for pid, start in self.seen.items() if pid in table and table[pid][3] == start}
        ours.add(self.leader)
        while more := {pid for pid, (ppid, _, _, _) in table.items() if ppid in ours} - ours:
            ours |= more
        for pid in ours & table.keys():
            self.seen.setdefault(pid, table[pid][3])

    def alive(self) -> list[int]:
        """Those still running (a zombie is dead, only not yet reaped)."""
        table = _processes()
        ours = {pid for pid, (_, sid, _, _) in table.items() if sid == self.leader}
        ours |= {pid for pid, start in self.seen.items() if pid in table and table[pid][3] == start}
        return sorted(pid for pid in ours if table[pid][2] != "Z")

    def end(self, popen: subprocess.Popen, timeout: float = 30) -> list[int]:
        """SIGTERM to the group, wait until every process is gone (SIGKILL after `timeout`);
        returns the pids that had to be killed."""
        self.snapshot()
        try:
            os.killpg(self.leader, signal.SIGTERM)
        except ProcessLookupError:
            pass
        with contextlib.suppress(AssertionError):  # what is left after `timeout` gets SIGKILL
            wait_until(lambda: popen.poll() is not None and not self.alive(), timeout, 0.1)
            return []
        killed = self.alive()
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        popen.wait()
        return killed


class Firefox:
    """Headless Firefox on a fresh profile holding `prefs` (and QUIET_PREFS), opened on `url`,
    in its own session. `close()` ends it and asserts that no process and no profile is left."""

    def __init__(self, url: str, prefs: dict[str, bool | int | str]) -> None:
        self.profile = tempfile.mkdtemp(prefix="cors-addon-firefox-")
        Path(self.profile, "user.js").write_text(user_js({**QUIET_PREFS, **prefs}))
        self.log = Path(self.profile).with_name(Path(self.profile).name + ".log")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [FIREFOX, "--headless", "-no-remote", "-new-instance", "-profile", self.profile, url],
                env={**os.environ, **QUIET_ENV},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.group = ProcessGroup(self.process.pid)

    def output(self, last: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-last:]
        except OSError:
            return ""

    def close(self) -> None:
        killed = self.group.end(self.process)
        shutil.rmtree(self.profile, ignore_errors=True)
        self.log.unlink(missing_ok=True)
        assert not killed, f"Firefox processes left after SIGTERM (killed): {killed}"
        assert not os.path.exists(self.profile)

    def __enter__(self) -> Firefox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- the page and the collector ---------------------------------------------------------------------

PAGE = """<!doctype html>
<meta charset=utf-8><title>cors-addon firefox test</title>
<script>
async function call(url, init) {
  try {
    const r = await fetch(url, {cache: "no-store", ...init});
    return {ok: true, status: r.status, body: await r.text()};
  } catch (e) {
    return {ok: false, error: String(e)};
  }
}
(async () => {
  let report;
  try {
    report = await (async () => { %s })();
  } catch (e) {
    report = {error: String(e), stack: String(e.stack)};
  }
  await fetch("/report", {method: "POST", headers: {"Content-Type": "text/plain"}, body: JSON.stringify(report)});
})();
</script>
"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Collector

    def log_message(self, format, *args) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if not self.path.startswith("/"):  # absolute form: a request for another host, sent to us as a proxy
            self.server.refused.append(f"{self.command} {self.path}")
            return self._answer(403, b"the test collector is no proxy")
        script = self.server.pages.get(self.path.split("?")[0])
        if script is None:
            return self._answer(404)
        self._answer(200, (PAGE % script).encode(), "text/html; charset=utf-8")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/report":
            self.server.refused.append(f"{self.command} {self.path}")
            return self._answer(403)
        try:
            self.server.reports.put(json.loads(body))
        except ValueError:
            self.server.reports.put({"error": f"not JSON: {body[:200]!r}"})
        self._answer(204)

    def do_CONNECT(self) -> None:
        self.server.refused.append(f"CONNECT {self.path}")
        self._answer(403)
        self.close_connection = True

    do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_GET


class Collector(ThreadingHTTPServer):
    """On 127.0.0.1: serves `pages` (path -> the body of an async JS function, whose result is
    reported; `call(url, init)` is at hand) and collects the reports. Set as Firefox's proxy, it
    refuses (403) and records every request for another host: a sink for the browser's own calls."""

    daemon_threads = True

    def __init__(self, pages: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pages = pages
        self.reports: queue.Queue[Any] = queue.Queue()
        self.refused: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str = "/page") -> str:
        return f"http://localhost:{self.port}{path}"

    def report(self, timeout: float, why_not: Any = lambda: "") -> Any:
        """The next report from a page; `why_not()` is added to the failure after `timeout` seconds."""
        try:
            return self.reports.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no report from the page within {timeout} s\n{why_not()}") from None

    def __enter__(self) -> Collector:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
