"""Shared by the benchmarks: interleaved repetition, medians, rules files, process memory."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.flows import LOCAL as ORIGIN  # noqa: F401  (the page origin the benchmarks send)
from tests.support import wait_for_port


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each variant once per round, in A B C A B C order, so drift hits all alike."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            results[name].append(run())
    return results


def pin(cpu: int) -> tuple[str, ...]:
    """A command prefix that keeps a process on one CPU (none where that cannot be done).
    Load generator and proxy on separate CPUs make the figures much steadier."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        return ("taskset", "-c", str(cpu))
    return ()


def median(values: list[float]) -> float:
    return statistics.median(values)


def rules_text(count: int, target_host: str = "api.example.com", extra: str = "") -> str:
    """`count` rules: mostly exact hosts, every tenth a `*.` suffix, the target host last."""
    parts = []
    for i in range(count - 1):
        host = f"*.svc{i}.example" if i % 10 == 9 else f"api{i}.example.com"
        parts.append(f'[[rules]]\nname = "r{i}"\nhosts = ["{host}"]\n')
    parts.append(f'[[rules]]\nname = "target"\nhosts = ["{target_host}"]\n{extra}')
    return "\n".join(parts)


def write_rules(path: Path, count: int, target_host: str = "api.example.com", extra: str = "") -> Path:
    path.write_text(rules_text(count, target_host, extra))
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            add_header Vary Accept-Encoding;
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"""


class Nginx:
    """nginx on 127.0.0.1, answering every request with a small JSON body: a fast upstream."""

    def __init__(self, directory: Path, port: int, prefix: tuple[str, ...] = ()) -> None:
        self.port = port
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CONF.format(user=user, dir=directory, port=port))
        self.process = subprocess.Popen([*prefix, "nginx", "-c", str(conf), "-p", str(directory)])
        wait_for_port(port)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
