"""Helpers shared by the tests, `make bench` and tools/, which import helpers from here and the other
helper modules (flows, proxy, upstream, browser, ...), never from a test file: waiting until something
holds, a port that listens, the processes of a session."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
Message = str | Callable[[], str]


def wait_until(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: Message = "") -> T:
    """Call `condition` every `interval` seconds until it returns something true, and return that.
    After `timeout` seconds (and one last call) raise AssertionError with `message`, a string or a
    function giving one (read then: a process's output so far). An exception the condition raises
    ends the wait at once (a process that exited)."""
    for value in _tries(condition, timeout, message):
        if value:
            return value
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: Message = ""
) -> T:
    """`wait_until` inside a coroutine: the event loop runs while it waits (the rules file watcher)."""
    for value in _tries(condition, timeout, message):
        if value:
            return value
        await asyncio.sleep(interval)


def _tries(condition: Callable[[], T], timeout: float, message: Message) -> Iterator[T | None]:
    """None for each false try of `condition`, then its true value; AssertionError once `timeout` is over."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(text or f"{getattr(condition, '__name__', condition)} did not hold within {timeout} s")
        yield None
    yield value


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Until something listens on 127.0.0.1:`port`; fails at once when `process` (the server) exits."""

    def listening() -> bool:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stdout.read() if process.stdout else ''}")
        return False

    wait_until(listening, timeout, 0.02, f"nothing listens on 127.0.0.1:{port}")


# -- make browser's processes ----------------------------------------------------------------------------

MAKE = shutil.which("make") or "/usr/bin/make"
VENV = str(Path(sys.executable).parent.parent)


def session_processes(sid: int) -> list[int]:
    """The processes of session `sid` still running (a zombie writes nothing and cannot be ended)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, _ppid, _pgrp, session = (entry / "stat").read_text().rpartition(")")[2].split()[:4]
            except (OSError, ValueError):
                continue  # gone meanwhile
            if int(session) == sid and state != "Z":
                found.append(int(entry.name))
    return found
