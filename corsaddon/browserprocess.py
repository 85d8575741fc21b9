"""The browser's process for make browser and cors.browser, from its start to its cleanup.

The browser runs in a session of its own, so that all of it can be ended as one process group:
Firefox forks content processes and Chromium helpers, and ending only the main process can leave
them writing into the profile while it is removed. Its output goes to a file beside the profile, and
only the file's tail is read back, to show why it failed. Cleanup ends what is left of the group,
waits for it (then kills it), and removes the directory, retried until it stays removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

TAIL_LINES = 20
TAIL_BYTES = 4096
POLL = 0.05  # seconds between looks at a process group, which cannot be waited for
GROUPS = hasattr(os, "killpg")  # POSIX; elsewhere only the main process is ended


class BrowserProcess:
    """A temporary directory holding the profile (`profile`) and the output; the browser once started."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="cors-addon-browser-"))
        self.profile = self.directory / "profile"
        self.profile.mkdir()
        self.output = self.directory / "output"
        self.process: subprocess.Popen | None = None
        self.stopped = False  # ended by us (a signal, mitmproxy's shutdown): its exit status is no error
        self._lock = threading.Lock()
        self._ended = False

    def start(self, command: list[str]) -> None:
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=GROUPS
            )

    def wait(self, stop: Callable[[], object] = lambda: False) -> int | None:
        """The main process's exit status; None as soon as `stop()` is true (polled: a signal only sets a flag)."""
        assert self.process is not None
        while not stop():
            try:
                return self.process.wait(0.25)
            except subprocess.TimeoutExpired:
                pass
        return None

    def tail(self) -> str:
        """The last TAIL_LINES lines of the browser's output, read from at most its last TAIL_BYTES bytes."""
        try:
            with open(self.output, "rb") as output:
                size = output.seek(0, os.SEEK_END)
                output.seek(max(0, size - TAIL_BYTES))
                lines = output.read(TAIL_BYTES).decode(errors="replace").splitlines()
        except OSError:  # already removed: ended by mitmproxy's shutdown meanwhile
            return ""
        if size > TAIL_BYTES and len(lines) > 1:
            lines = lines[1:]  # cut at the front
        return "\n".join(line.rstrip() for line in lines[-TAIL_LINES:] if line.strip())

    def end(self, grace: float) -> str:
        """End the browser and every process of its group (asked, then killed after `grace` seconds), then
        remove the directory. Returns "" or why the directory is still there. A second call waits for the first."""
        with self._lock:
            if self._ended:
                return ""
            self._ended = True
            if self.process is not None:
                self._end_group(grace)
            return _remove(self.directory, grace)

    def _end_group(self, grace: float) -> None:
        process = self.process
        assert process is not None
        if process.poll() is None:
            self.stopped = True
            self._signal(kill=False)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(kill=True)
                process.wait()
        # The main process is gone; its children (Firefox's content processes) may not be yet.
        self._signal(kill=False)
        if not self._group_gone(grace):
            self._signal(kill=True)
            self._group_gone(grace)

    def _signal(self, kill: bool) -> None:
        assert self.process is not None
        if not GROUPS:
            if self.process.poll() is None:
                self.process.kill() if kill else self.process.terminate()
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass

    def _group_gone(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if not GROUPS:
                return self.process.poll() is not None
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass  # members we may not signal are members still
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)


def _remove(directory: Path, timeout: float) -> str:
    """rmtree, again until the directory stays removed (a process that outlived the kill may still write)."""
    deadline = time.monotonic() + timeout
    while True:
        error: OSError | None = None
        try:
            shutil.rmtree(directory)
        except OSError as e:
            error = e
        if not os.path.lexists(directory):
            return ""
        if time.monotonic() > deadline:
            return f"could not remove the browser's temporary profile {directory}: {error or 'it came back'}"
        time.sleep(POLL)


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP recorded, not acted on, while make browser runs: so none can cut short the
    launch or the cleanup, which would leave a browser or its profile behind. `received` is the first one."""

    NAMES = ("SIGTERM", "SIGINT", "SIGHUP")

    def __enter__(self) -> StopSignals:
        self.received = 0
        self._previous = {}
        for name in self.NAMES:
            if (signum := getattr(signal, name, None)) is not None:
                self._previous[signum] = signal.signal(signum, self._record)
        return self

    def _record(self, signum: int, frame: object) -> None:
        self.received = self.received or signum

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
