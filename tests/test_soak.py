"""Soak: 20,000 requests at concurrency 20 through a real mitmdump while the rules file is rewritten
200 times in every way editors save, half-written and broken versions included."""

from __future__ import annotations

import http.client
import os
import random
import threading
import time

import pytest

from .flows import LOCAL
from .proxy import Mitmdump
from .support import wait_until
from .upstream import Upstream

pytestmark = pytest.mark.soak

REQUESTS = 20_000  # at least; the load goes on until the rewrites are done too
CONCURRENCY = 20
REWRITES = 200
DEADLINE = 300  # seconds: the whole load stops by then, finished or not


def rule_set(port: int, name: str) -> str:
    """Two complete rule sets that answer differently, so a mix of them would show."""
    origins = '["http://localhost:*"]' if name == "A" else '["*"]'
    return (
        f'[[rules]]\nname = "set {name}"\nhosts = ["127.0.0.1:{port}"]\n'
        f'allow_origins = {origins}\nexpose_headers = ["X-Set-{name}"]\n'
    )


def expected(name: str) -> tuple[str, str]:
    return (LOCAL if name == "A" else "*", f"X-Set-{name}")


def cors_answer(proxy: Mitmdump, port: int) -> tuple[str | None, str | None]:
    """The CORS headers of one more request's answer."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", f"http://127.0.0.1:{port}/soak/final", headers={"Origin": LOCAL})
    reply = conn.getresponse()
    reply.read()
    conn.close()
    return reply.getheader("Access-Control-Allow-Origin"), reply.getheader("Access-Control-Expose-Headers")


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
                conn.request("GET", f"http://127.0.0.1:{port}/soak/{i}", headers={"Origin": LOCAL})
                reply = conn.getresponse()
                reply.read()
                allow, expose = (
                    reply.getheader("Access-Control-Allow-Origin"),
                    reply.getheader("Access-Control-Expose-Headers"),
                )
                results.append((reply.status, allow, expose, time.monotonic() - start))
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

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    threads.append(threading.Thread(target=rewriter))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    reloads = proxy.output.count("cors: loaded") - 1
    summary = (
        f"{len(results)} requests, {len(errors)} errors, {reloads} reloads, slowest {max(r[3] for r in results):.2f} s"
    )
    print(summary)
    assert not errors, errors[:5]
    assert len(results) >= REQUESTS, summary
    assert all(status == 200 for status, *_ in results)
    consistent = {expected("A"), expected("B")}
    mixed = [(allow, expose) for _, allow, expose, _ in results if (allow, expose) not in consistent]
    assert not mixed, mixed[:5]
    assert reloads > 0, summary
    last = expected("AB"[(REWRITES - 1) % 2])  # the last save is the one in force, once it has been read
    wait_until(lambda: cors_answer(proxy, port) == last, 10, 0.05, lambda: f"{cors_answer(proxy, port)} in force")
    assert "TOML syntax error" in proxy.output and "not found; keeping" in proxy.output
