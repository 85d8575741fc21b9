"""Memory: resident memory of mitmdump with the addon and 10,000 rules versus without, each after
the same short load."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.proxy import Mitmdump, free_port

from .common import Nginx, interleaved, median, rss_mb, write_rules
from .throughput import wrk


def run(rounds: int = 3) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cors-bench-memory-"))
    nginx = Nginx(directory / "nginx", free_port())
    rules = write_rules(directory / "rules.toml", 10_000, target_host="127.0.0.1")
    args = ("--mode", f"reverse:http://127.0.0.1:{nginx.port}", "--set", "flow_detail=0")

    def measure(with_rules: Path | None) -> float:
        proxy = Mitmdump(with_rules, directory / "conf", *args, guard=False).start()
        try:
            if with_rules:
                proxy.wait_for_log(r"cors: loaded .*: 10000 rules enabled")
            wrk(proxy.port, 2)
            time.sleep(0.5)
            return rss_mb(proxy.process.pid)
        finally:
            proxy.stop()

    try:
        results = interleaved({"without": lambda: measure(None), "with": lambda: measure(rules)}, rounds)
    finally:
        nginx.stop()
    return {
        "without": median(results["without"]),
        "with": median(results["with"]),
        "rounds": rounds,
    }


def report(result: dict) -> list[str]:
    more = result["with"] - result["without"]
    return [
        f"Memory: mitmdump resident set after 2 s of load (median of {result['rounds']} interleaved starts)",
        f"  without the addon          {result['without']:>6.1f} MB",
        f"  with addon, 10,000 rules   {result['with']:>6.1f} MB  (+{more:.1f} MB; target < 20 MB more)",
    ]


if __name__ == "__main__":
    print("\n".join(report(run())))
