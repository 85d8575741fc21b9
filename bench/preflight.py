"""Preflight saving: a burst of preflighted calls (OPTIONS then PUT, each to its own URL) against an
API 40 ms away, made one after another (a frontend awaiting each call) and six at a time (a
browser's connections per host). Direct to an API that does CORS itself pays two round trips per
call; through the addon answering preflights, one."""

from __future__ import annotations

import http.client
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.proxy import Mitmdump

from .common import ORIGIN, interleaved, median

DELAY = 0.040  # seconds per response: a remote API
CALLS_PER_LANE = 30  # calls each of the `parallel` lanes makes, one after another
PARALLEL = (1, 6)


class SlowCorsApi(BaseHTTPRequestHandler):
    """An API that answers CORS itself, after DELAY."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        time.sleep(DELAY)
        body = b"" if self.command == "OPTIONS" else b'{"ok":true}'
        self.send_response(204 if self.command == "OPTIONS" else 200)
        self.send_header("Access-Control-Allow-Origin", self.headers.get("origin", "*"))
        self.send_header("Vary", "Origin")
        if self.command == "OPTIONS":
            self.send_header("Access-Control-Allow-Methods", "PUT")
            self.send_header("Access-Control-Allow-Headers", "content-type")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_OPTIONS = do_PUT = _answer


def burst(api_port: int, proxy_port: int | None, parallel: int) -> float:
    """Seconds for CALLS_PER_LANE * parallel preflighted calls, `parallel` at a time."""
    local = threading.local()
    base = f"http://127.0.0.1:{api_port}"

    def call(i: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", proxy_port or api_port, timeout=30)
        path = f"/items/{i}?t={time.monotonic_ns()}"  # every URL pays its own preflight
        target = base + path if proxy_port else path
        local.conn.request(
            "OPTIONS",
            target,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        reply = local.conn.getresponse()
        reply.read()
        assert 200 <= reply.status < 300 and reply.getheader("Access-Control-Allow-Origin") == ORIGIN, reply.status
        local.conn.request("PUT", target, body=b"{}", headers={"Origin": ORIGIN, "Content-Type": "application/json"})
        reply = local.conn.getresponse()
        reply.read()
        assert reply.status == 200 and reply.getheader("Access-Control-Allow-Origin") == ORIGIN, reply.status

    start = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(call, range(CALLS_PER_LANE * parallel)))
    return time.perf_counter() - start  # fmt: skip


def run(rounds: int = 5) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cors-bench-preflight-"))
    api = ThreadingHTTPServer(("127.0.0.1", 0), SlowCorsApi)
    api.daemon_threads = True
    threading.Thread(target=api.serve_forever, daemon=True).start()
    port = api.server_address[1]
    proxies = {}
    for mode in ("answer", "forward"):
        rules = directory / f"rules-{mode}.toml"
        rules.write_text(f'[[rules]]\nhosts = ["127.0.0.1:{port}"]\npreflight = "{mode}"\n')
        proxies[mode] = Mitmdump(rules, directory / f"conf-{mode}", "--set", "flow_detail=0", guard=False).start()
    try:
        for p in proxies.values():
            burst(port, p.port, 6)  # warm up
        variants = {}
        for parallel in PARALLEL:
            variants[("direct to a CORS API", parallel)] = lambda n=parallel: burst(port, None, n)
            for mode, p in proxies.items():
                variants[(f'addon, preflight = "{mode}"', parallel)] = lambda n=parallel, p=p: burst(port, p.port, n)
        results = interleaved(variants, rounds)
    finally:
        for p in proxies.values():
            p.stop()
        api.shutdown()
    seconds = {key: median(values) for key, values in results.items()}
    speedup = {n: seconds[("direct to a CORS API", n)] / seconds[('addon, preflight = "answer"', n)] for n in PARALLEL}
    return {"seconds": seconds, "rounds": rounds, "speedup": speedup}


def report(result: dict) -> list[str]:
    lines = [
        f"Preflight saving: {CALLS_PER_LANE} preflighted PUTs per lane to an API {DELAY * 1000:.0f} ms away "
        f"(median of {result['rounds']} interleaved bursts)",
        f"  {'':<30} " + " ".join(f"{f'{n} at a time':>22}" for n in PARALLEL),
    ]
    names = dict.fromkeys(name for name, _ in result["seconds"])
    for name in names:
        cells = []
        for n in PARALLEL:
            seconds = result["seconds"][(name, n)]
            direct = result["seconds"][("direct to a CORS API", n)]
            cells.append(f"{seconds * 1000:>7.0f} ms ({direct / seconds:.2f}x)")
        lines.append(f"  {name:<30} " + " ".join(f"{c:>22}" for c in cells))
    speedups = ", ".join(f"{s:.2f}x {n} at a time" for n, s in result["speedup"].items())
    lines.append(f"  answer mode vs direct: {speedups} (target >= 1.6)")
    return lines


if __name__ == "__main__":
    print("\n".join(report(run())))
