"""Reload: from saving the rules file to the first request handled by the new rules, through a
real mitmdump under steady traffic, saving in each way editors do; and the time to parse and
compile 10,000 rules."""

from __future__ import annotations

import http.client
import os
import tempfile
import threading
import time
from pathlib import Path

from corsaddon.parsing import parse_file
from corsaddon.rulesfile import compile_filter
from tests.proxy import Mitmdump, free_port
from tests.support import wait_until

from .common import ORIGIN, Nginx, median, rss_mb, write_rules

SAVES = 24
MEMORY_AFTER = 4  # saves: resident memory is compared between then and the end
SAVE_WAYS = ("in place", "temp file then rename", "delete then recreate")


class Traffic(threading.Thread):
    """Sequential GETs with Origin through the proxy: (sent at, CORS header seen, seconds, error)."""

    def __init__(self, proxy_port: int, upstream_port: int) -> None:
        super().__init__(daemon=True)
        self.proxy_port, self.url = proxy_port, f"http://127.0.0.1:{upstream_port}/api"
        self.samples: list[tuple[float, bool, float, str | None]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=10)
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                conn.request("GET", self.url, headers={"Origin": ORIGIN})
                reply = conn.getresponse()
                reply.read()
                ok = reply.status == 200
                self.samples.append(
                    (
                        sent,
                        reply.getheader("Access-Control-Allow-Origin") == ORIGIN,
                        time.monotonic() - sent,
                        None if ok else str(reply.status),
                    )
                )
            except OSError as e:
                self.samples.append((sent, False, time.monotonic() - sent, repr(e)))
                conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=10)
            time.sleep(0.002)

    def first_after(self, t: float, cors: bool, timeout: float = 5.0) -> float:
        """Seconds from `t` to the first request sent after it whose answer says `cors`."""

        def first_sent() -> float | None:
            return next((sent for sent, seen, _, _ in list(self.samples) if sent >= t and seen is cors), None)

        return wait_until(first_sent, timeout, 0.005, "the new rules never took effect") - t


def save(path: Path, text: str, way: str) -> float:
    if way == "in place":
        t = time.monotonic()
        path.write_text(text)
    elif way == "temp file then rename":
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(text)
        t = time.monotonic()
        os.replace(temp, path)
    else:
        path.unlink()
        time.sleep(0.5)  # the deletion is seen (and the rules kept) before the file returns
        t = time.monotonic()
        path.write_text(text)
    return t


def run() -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cors-bench-reload-"))
    nginx = Nginx(directory / "nginx", free_port())
    rules = directory / "rules.toml"
    on = f'[[rules]]\nhosts = ["127.0.0.1:{nginx.port}"]\n'
    rules.write_text(on)
    proxy = Mitmdump(rules, directory / "conf", "--set", "flow_detail=0", guard=False).start()
    traffic = Traffic(proxy.port, nginx.port)
    traffic.start()
    latencies: dict[str, list[float]] = {way: [] for way in SAVE_WAYS}
    memory = {}
    try:
        time.sleep(0.5)
        for i in range(SAVES):
            way = SAVE_WAYS[i % len(SAVE_WAYS)]
            cors = i % 2 == 1  # alternately switch the file off and on
            t = save(rules, on if cors else "enabled = false\n" + on, way)
            latencies[way].append(traffic.first_after(t, cors))
            time.sleep(0.3)
            if i + 1 == MEMORY_AFTER:
                memory["early"] = rss_mb(proxy.process.pid)
        memory["end"] = rss_mb(proxy.process.pid)
    finally:
        traffic.stop.set()
        traffic.join()
        proxy.stop()
        nginx.stop()
    failures = [s for s in traffic.samples if s[3] is not None]
    everything = [x for values in latencies.values() for x in values]

    big = write_rules(directory / "rules-10000.toml", 10_000)
    parse_times = []
    for _ in range(5):
        start = time.perf_counter()
        parse_file(str(big), compile_filter)
        parse_times.append(time.perf_counter() - start)
    return {
        "median_by_way": {way: median(values) for way, values in latencies.items()},
        "median": median(everything),
        "max": max(everything),
        "requests": len(traffic.samples),
        "failures": len(failures),
        "slowest_request": max(s[2] for s in traffic.samples),
        "parse_10000": median(parse_times),
        "memory_growth": memory["end"] - memory["early"],
        "file_kb": big.stat().st_size / 1024,
    }


def report(result: dict) -> list[str]:
    lines = [
        f"Reload under traffic ({SAVES} saves; median time from save to the first request handled by the new rules)"
    ]
    for way, seconds in result["median_by_way"].items():
        lines.append(f"  {way:<24} {seconds * 1000:>6.0f} ms")
    lines += [
        f"  all saves: median {result['median'] * 1000:.0f} ms, slowest {result['max'] * 1000:.0f} ms "
        "(target: median < 600 ms)",
        f"  requests during the saves: {result['requests']}, failed: {result['failures']}, "
        f"slowest: {result['slowest_request'] * 1000:.0f} ms",
        f"  resident memory from save {MEMORY_AFTER} to save {SAVES}: {result['memory_growth']:+.1f} MB",
        f"  parse and compile 10,000 rules ({result['file_kb']:.0f} KB): {result['parse_10000'] * 1000:.0f} ms "
        "(target < 1 s; median of 5)",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(report(run())))
