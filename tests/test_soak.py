"""Soak: 20,000 requests at concurrency 20 through a real mitmdump while the rules file is rewritten
200 times in every way editors save, half-written and broken versions included."""

from __future__ import annotations

import http.client
import os
import random
import threading
import time

import pytest

from .proxy import Mitmdump
from .upstream import Upstream

pytestmark = pytest.mark.soak

REQUESTS = 20_000  # at least; the load goes on until the rewrites are done too
CONCURRENCY = 20
REWRITES = 200
DEADLINE = 300  # seconds: the whole load stops by then, finished or not
ORIGIN = "http://localhost:3000"


def rule_set(port: int, name: str) -> str:
    """Two complete rule sets that answer differently, so a mix of them would show."""
    origins = '["http://localhost:*"]' if name == "A" else '["*"]'
    return (
        f'[[rules]]\nname = "set {name}"\nhosts = ["127.0.0.1:{port}"]\n'
        f'allow_origins = {origins}\nexpose_headers = ["X-Set-{name}"]\n'
    )


def expected(name: str) -> tuple[str, str]:
    return (ORIGIN if name == "A" else "*", f"X-Set-{name}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_soak_under_reloads(tmp_path):
    with Upstream() as upstream:
        rules = tmp_path / "rules.toml"
        texts = {name: rule_set(upstream.port, name) for name in "AB"}
        rules.write_text(texts["A"])
        proxy = Mitmdump(rules, tmp_path / "conf", "--set", "flow_detail=0").start()
        try:
            run_soak(proxy, rules, texts, upstream.port)
        finally:
            proxy.stop()


def run_soak(proxy: Mitmdump, rules, texts, port: int) -> None:
    counter = iter(range(10 * REQUESTS))
    lock = threading.Lock()
    rewrites_done = threading.Event()
    results: list[tuple[int, str | None, str | None, float]] = []
    errors: list[str] = []
    deadline = time.monotonic() + DEADLINE

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None or (i >= REQUESTS and rewrites_done.is_set()):
                return
            start = time.monotonic()
            try:
                conn.request("GET", f"http://127.0.0.1:{port}/soak/{i}", headers={"Origin": ORIGIN})
                reply = conn.getresponse()
                reply.read()
                results.append((reply.status, reply.getheader("Access-Control-Allow-Origin"),
                                reply.getheader("Access-Control-Expose-Headers"), time.monotonic() - start))  # fmt: skip
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)

    def rewriter() -> None:
        rng = random.Random(7)
        for n in range(REWRITES):
            text = texts["AB"[n % 2]]
            way = n % 5
            if way == 0:  # in place
                rules.write_text(text)
            elif way == 1:  # temp file, then rename over
                temp = rules.with_name(".rules.toml.swp")
                temp.write_text(text)
                os.replace(temp, rules)
            elif way == 2:  # delete, then recreate
                rules.unlink()
                time.sleep(rng.uniform(0.01, 0.3))
                rules.write_text(text)
            elif way == 3:  # half-written, then finished
                with open(rules, "w") as f:
                    f.write(text[: len(text) // 2])
                    f.flush()
                    time.sleep(0.03)
                    f.write(text[len(text) // 2 :])
            else:  # a broken save, then a good one
                rules.write_text(text.replace("]\n", "\n", 1))
                time.sleep(rng.uniform(0.3, 0.6))
                rules.write_text(text)
            time.sleep(rng.uniform(0.05, 0.45))  # some saves are read, some are overtaken by the next
        rewrites_done.set()

    memory: dict[str, float] = {}

    def watch_memory() -> None:
        while "after 20 reloads" not in memory and not rewrites_done.is_set():
            if proxy.output.count("cors: loaded") >= 21:
                memory["after 20 reloads"] = rss_mb(proxy.process.pid)
            time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    threads += [threading.Thread(target=rewriter), threading.Thread(target=watch_memory)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    memory["at the end"] = rss_mb(proxy.process.pid)

    reloads = proxy.output.count("cors: loaded") - 1
    summary = (
        f"{len(results)} requests, {len(errors)} errors, {reloads} reloads, slowest "
        f"{max(r[3] for r in results):.2f} s, memory {memory}"
    )
    print(summary)
    assert not errors, errors[:5]
    assert len(results) >= REQUESTS, summary
    assert all(status == 200 for status, *_ in results)
    assert max(r[3] for r in results) < 5, summary  # no stalled request
    consistent = {expected("A"), expected("B")}
    mixed = [(allow, expose) for _, allow, expose, _ in results if (allow, expose) not in consistent]
    assert not mixed, mixed[:5]
    assert reloads >= 50, summary
    assert "TOML syntax error" in proxy.output and "not found; keeping" in proxy.output
    assert memory["at the end"] - memory["after 20 reloads"] < 15, summary
