"""Hostile input: what a request with a 1 MB `Host` and a 1 MB `Origin` costs through mitmdump with
the addon, against plain mitmdump on the same requests: time per request, and resident memory and
log growth after 150 of them, each with values of its own. The addon runs twice: with a rule that
matches every host, and with none that names the host (the requests then go to discovery)."""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

from tests.proxy import Mitmdump, free_port

from .common import Nginx, interleaved, median, rss_mb

VALUE_BYTES = 1024 * 1024
REQUESTS = 150
TIMED = 10  # requests per timing run


def request(proxy_port: int, upstream_port: int, n: int) -> None:
    """One GET through the proxy with a 1 MB Host and a 1 MB Origin of its own (`n` makes them distinct)."""
    tag = b"%d." % n
    host = tag + b"h" * (VALUE_BYTES - len(tag))
    origin = b"http://" + tag + b"o" * (VALUE_BYTES - len(tag) - 7)
    head = b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\n\r\n" % (upstream_port, host, origin)
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=60) as s:
        s.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 "):
        raise RuntimeError(f"no answer through the proxy: {answer[:200]!r}")


def run(rounds: int = 5) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cors-bench-hostile-"))
    nginx = Nginx(directory / "nginx", free_port())
    rules = directory / "rules.toml"
    rules.write_text(f'[[rules]]\nhosts = ["127.0.0.1:{nginx.port}"]\n[[rules]]\nname = "every host"\nhosts = ["*"]\n')
    other = directory / "other.toml"  # no rule names the host: the requests go to discovery
    other.write_text('[[rules]]\nhosts = ["api.example.com"]\n')
    proxies = {
        "plain": Mitmdump(None, directory / "conf-plain", guard=False).start(),
        "addon": Mitmdump(rules, directory / "conf-addon", guard=False).start(),
        "unmatched": Mitmdump(other, directory / "conf-unmatched", guard=False).start(),
    }
    counter = iter(range(10**9))

    def timed(proxy: Mitmdump) -> float:
        start = time.perf_counter()
        for _ in range(TIMED):
            request(proxy.port, nginx.port, next(counter))
        return (time.perf_counter() - start) / TIMED * 1000

    try:
        before = {name: (rss_mb(p.process.pid), len(p.output)) for name, p in proxies.items()}
        times = interleaved({name: (lambda p=p: timed(p)) for name, p in proxies.items()}, rounds)
        for proxy in proxies.values():
            for _ in range(REQUESTS - rounds * TIMED):
                request(proxy.port, nginx.port, next(counter))
        time.sleep(0.5)
        after = {name: (rss_mb(p.process.pid), len(p.output)) for name, p in proxies.items()}
    finally:
        for proxy in proxies.values():
            proxy.stop()
        nginx.stop()
    return {
        "ms": {name: median(values) for name, values in times.items()},
        "rss_growth": {name: after[name][0] - before[name][0] for name in proxies},
        "log_growth": {name: after[name][1] - before[name][1] for name in proxies},
        "rounds": rounds,
    }


def report(result: dict) -> list[str]:
    ms, rss, log = result["ms"], result["rss_growth"], result["log_growth"]
    return [
        f"Hostile input: requests with a 1 MB Host and a 1 MB Origin (median of {result['rounds']} interleaved "
        f"runs of {TIMED}; {REQUESTS} requests in all, each with its own values)",
        f"  time per request: plain {ms['plain']:.1f} ms, addon {ms['addon']:.1f} ms "
        f"(extra {ms['addon'] - ms['plain']:+.1f} ms; target < 5 ms)",
        f"  resident memory growth: plain {rss['plain']:+.1f} MB, addon {rss['addon']:+.1f} MB "
        f"(extra {rss['addon'] - rss['plain']:+.1f} MB; target < 10 MB)",
        f"  log growth: plain {log['plain'] / 1024:.0f} KB, addon {log['addon'] / 1024:.0f} KB",
        f"  no rule naming the host (discovery): {ms['unmatched']:.1f} ms per request "
        f"(extra {ms['unmatched'] - ms['plain']:+.1f} ms), memory {rss['unmatched']:+.1f} MB "
        f"(extra {rss['unmatched'] - rss['plain']:+.1f} MB), log {log['unmatched'] / 1024:.0f} KB",
    ]


if __name__ == "__main__":
    print("\n".join(report(run())))
