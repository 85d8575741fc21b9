"""WebKitGTK, Safari's engine, for the WebKit tests: Debian's webkit2gtk-driver (WebKitWebDriver, which
starts WebKitGTK's MiniBrowser), driven over WebDriver's HTTP protocol with the standard library.

WebKitGTK has no headless mode: `WebKit` starts Xvfb on a display Xvfb picks itself (-displayfd), then
WebKitWebDriver on a free loopback port with that DISPLAY, and HOME and the XDG directories in its own
temporary directory. Each `session()` is a new MiniBrowser, whose website data is ephemeral (no cookie
outlives it), with every host but localhost and 127.0.0.1 sent to a `Sink` proxy on loopback that
refuses it. `close()` ends all of it and asserts that no process and no temporary directory is left.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .proxy import free_port
from .support import wait_until

DRIVER = shutil.which("WebKitWebDriver") or "/usr/bin/WebKitWebDriver"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"
START_TIMEOUT = 60  # seconds: a first start on a busy two-core machine
END_TIMEOUT = 30


def require_webkit() -> None:
    """Skip (locally) or fail (in CI) when WebKitWebDriver or Xvfb is missing."""
    tools = (("WebKitWebDriver", DRIVER), ("Xvfb", XVFB))
    missing = [f"{name} not found at {path}" for name, path in tools if not os.access(path, os.X_OK)]
    if not missing:
        return
    what = "; ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI must install them: apt-get install webkit2gtk-driver xvfb", pytrace=False)
    pytest.skip(f"{what}: install them with `sudo apt-get install webkit2gtk-driver xvfb` to run the WebKit tests")


# -- the sink: where MiniBrowser sends every host that is not on loopback ------------------------------


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Sink

    def log_message(self, format, *args) -> None:
        pass

    def _refuse(self) -> None:
        self.server.refused.append(f"{self.command} {self.path}")
        body = b"not on loopback: refused by the test"
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_CONNECT = _refuse


class Sink(ThreadingHTTPServer):
    """A proxy on 127.0.0.1 that refuses (403) and records every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.refused: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


# -- processes ---------------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, state) of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            table[int(entry)] = (int(fields[1]), int(fields[3]), fields[0])
    return table


def _marked(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path("/proc", str(pid), "environ").read_bytes().split(b"\0")
    except OSError:
        return False


class Processes:
    """Every process started for one `WebKit`: those in the sessions of the processes it started
    (start_new_session=True), their descendants, and any whose environment holds `marker`."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.leaders: list[int] = []

    def alive(self) -> list[str]:
        """The live ones (a zombie is dead, only not yet reaped), as "pid name"."""
        table = _processes()
        ours = {pid for pid, (_, sid, _) in table.items() if sid in self.leaders}
        ours |= {pid for pid in table if _marked(pid, self.marker)}
        while more := {pid for pid, (ppid, _, _) in table.items() if ppid in ours} - ours:
            ours |= more
        return [f"{pid} {_name(pid)}" for pid in sorted(ours) if table[pid][2] != "Z"]

    def end(self) -> list[str]:
        """SIGTERM to each session, wait until every process is gone (SIGKILL after END_TIMEOUT);
        returns those that had to be killed."""
        for leader in self.leaders:
            try:
                os.killpg(leader, signal.SIGTERM)
            except ProcessLookupError:
                pass
        with suppress(AssertionError):  # what is left after END_TIMEOUT gets SIGKILL
            wait_until(lambda: not self.alive(), END_TIMEOUT, 0.1)
        left = self.alive()
        for entry in left:
            try:
                os.kill(int(entry.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


def _name(pid: int) -> str:
    try:
        return Path("/proc", str(pid), "comm").read_text().strip()
    except OSError:
        return "?"


# -- the browser -------------------------------------------------------------------------------------


class WebDriverError(AssertionError):
    pass


class WebKit:
    """Xvfb and WebKitWebDriver, started now; `session()` opens a MiniBrowser."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="cors-addon-webkit-"))
        self.processes = Processes(b"CORS_ADDON_WEBKIT=" + str(self.directory).encode())
        self.sink = Sink()
        self.popens: list[subprocess.Popen] = []
        # no proxy from the environment for the test's own calls to the driver
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            self.display = self._start_xvfb()
            self.url = f"http://127.0.0.1:{self._start_driver()}"
            self._wait_for_driver()
        except BaseException:
            self.close()
            raise

    def _env(self) -> dict[str, str]:
        home = self.directory / "home"
        run = self.directory / "run"
        for path in (home, run):
            path.mkdir(mode=0o700, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "DISPLAY"}
        return {
            **env,
            "CORS_ADDON_WEBKIT": str(self.directory),  # the marker Processes looks for
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_RUNTIME_DIR": str(run),
            "NO_AT_BRIDGE": "1",  # no accessibility bus
        }

    def _spawn(self, command: list[str], log: str, **kwargs: Any) -> subprocess.Popen:
        with (self.directory / log).open("wb") as out:
            streams = {"stdin": subprocess.DEVNULL, "stdout": out, "stderr": subprocess.STDOUT}
            process = subprocess.Popen(command, start_new_session=True, **streams, **kwargs)
        self.popens.append(process)
        self.processes.leaders.append(process.pid)
        return process

    def _start_xvfb(self) -> str:
        read, write = os.pipe()
        try:
            command = [XVFB, "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "1280x800x24"]
            xvfb = self._spawn(command, "xvfb.log", env=self._env(), pass_fds=(write,))
            os.close(write)
            write = -1
            number = b""
            deadline = time.monotonic() + START_TIMEOUT
            while not number.endswith(b"\n"):
                if not select.select([read], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise AssertionError(f"Xvfb named no display within {START_TIMEOUT} s:\n{self.log('xvfb.log')}")
                chunk = os.read(read, 16)
                if not chunk:
                    raise AssertionError(f"Xvfb exited ({xvfb.wait()}):\n{self.log('xvfb.log')}")
                number += chunk
            return f":{number.decode().strip()}"
        finally:
            os.close(read)
            if write >= 0:
                os.close(write)

    def _start_driver(self) -> int:
        port = free_port()
        env = {**self._env(), "DISPLAY": self.display}
        self._spawn([DRIVER, f"--port={port}", "--host=127.0.0.1"], "driver.log", env=env, cwd=self.directory)
        return port

    def _wait_for_driver(self) -> None:
        failure = lambda: f"WebKitWebDriver did not start:\n{self.log('driver.log')}"  # noqa: E731

        def ready() -> bool:
            try:
                if self.call("GET", "/status", timeout=5).get("ready"):
                    return True
            except (OSError, WebDriverError):
                pass
            if self.popens[-1].poll() is not None:
                raise AssertionError(failure())
            return False

        wait_until(ready, START_TIMEOUT, 0.1, failure)

    def log(self, name: str = "driver.log", last: int = 3000) -> str:
        try:
            return (self.directory / name).read_text(errors="replace")[-last:]
        except OSError:
            return ""

    def call(self, method: str, path: str, body: Any = None, timeout: float = 90) -> Any:
        """One WebDriver command; its `value`, or WebDriverError with the driver's error and message."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data, {"Content-Type": "application/json; charset=utf-8"}, method=method
        )
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as e:
            value = json.loads(e.read() or b"{}").get("value") or {}
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message')}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A new MiniBrowser, ended on leaving."""
        args = [
            "--automation",
            f"--proxy=http://127.0.0.1:{self.sink.port}",
            "--ignore-host=localhost",
            "--ignore-host=127.0.0.1",
        ]
        capabilities = {"alwaysMatch": {"webkitgtk:browserOptions": {"args": args}}}
        created = self.call("POST", "/session", {"capabilities": capabilities})
        session = Session(self, created["sessionId"], created["capabilities"])
        try:
            yield session
        finally:
            self.call("DELETE", f"/session/{session.id}")

    def close(self) -> None:
        """Ends Xvfb, the driver and every browser process, removes the temporary directory; asserts
        that every process ended on SIGTERM and none is left."""
        try:
            killed = self.processes.end()
            for process in self.popens:
                process.wait(END_TIMEOUT)
            left = self.processes.alive()
        finally:
            self.sink.close()
            shutil.rmtree(self.directory, ignore_errors=True)
        assert not killed, f"WebKit processes still running {END_TIMEOUT} s after SIGTERM (killed): {killed}"
        assert not left, f"WebKit processes left: {left}"
        assert not self.directory.exists(), f"{self.directory} left"


# An async function's source, called with the command's arguments; its result, or what it threw, is the value.
ASYNC = """const done = arguments[arguments.length - 1];
(%s)(...Array.prototype.slice.call(arguments, 0, -1)).then(
  (value) => done({value}), (e) => done({thrown: String(e)}));"""


class Session:
    """One MiniBrowser of a `WebKit`."""

    def __init__(self, webkit: WebKit, id: str, capabilities: dict[str, Any]) -> None:
        self.webkit = webkit
        self.id = id
        self.capabilities = capabilities

    @property
    def version(self) -> str:
        return f"{self.capabilities.get('browserName')} {self.capabilities.get('browserVersion')}"

    def open(self, url: str) -> None:
        self.webkit.call("POST", f"/session/{self.id}/url", {"url": url})

    def run(self, function: str, *args: Any) -> Any:
        """The value of the async JavaScript `function` called with `args` in the current page."""
        command = {"script": ASYNC % function, "args": args}
        result = self.webkit.call("POST", f"/session/{self.id}/execute/async", command)
        if "thrown" in result:
            raise AssertionError(f"the page's script threw: {result['thrown']}")
        return result["value"]

    def cookies(self) -> list[dict[str, Any]]:
        """The cookies the browser would send to the current page (HttpOnly ones too)."""
        return self.webkit.call("GET", f"/session/{self.id}/cookie")
