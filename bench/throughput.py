"""End-to-end overhead: requests per second through a real mitmdump in reverse mode to nginx,
with the addon and 100 rules, with mitmproxy's modify_headers adding a static
`Access-Control-Allow-Origin: *`, and with no addon at all (twice: the second is the control
that shows how noisy the machine is)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from tests.proxy import Mitmdump, free_port

from .common import ORIGIN, Nginx, interleaved, median, pin, write_rules

SECONDS = 5
CONNECTIONS = 8


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(proxy: Mitmdump) -> tuple[float, float]:
    """(requests per second, mitmdump's CPU µs per request) for one wrk run. CPU time per
    request hardly depends on what else the machine is doing; requests per second does."""
    before = cpu_seconds(proxy.process.pid)
    rps, total = wrk(proxy.port)
    return rps, (cpu_seconds(proxy.process.pid) - before) / total * 1e6


def wrk(port: int, seconds: int = SECONDS) -> tuple[float, int]:
    """(requests per second, requests in all) from wrk against 127.0.0.1:port, bounded in time."""
    out = subprocess.run(
        [*pin(0), "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-H", f"Origin: {ORIGIN}", f"http://127.0.0.1:{port}/api"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, int(re.search(r"(\d+) requests in", out).group(1))


def run(rounds: int = 7) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cors-bench-throughput-"))
    nginx = Nginx(directory / "nginx", free_port(), prefix=pin(0))
    upstream = f"reverse:http://127.0.0.1:{nginx.port}"
    common = ["--mode", upstream, "--set", "flow_detail=0"]
    rules = write_rules(directory / "rules.toml", 100, target_host="127.0.0.1")
    cpu = pin(1)  # mitmdump on its own CPU; wrk and nginx share the other
    # guard=False for all alike: nothing here leaves loopback, and the tests' guard would add a hook to each.
    proxies = {
        "plain": Mitmdump(None, directory / "c1", *common, prefix=cpu, guard=False),
        "plain (control)": Mitmdump(None, directory / "c2", *common, prefix=cpu, guard=False),
        "addon, 100 rules": Mitmdump(rules, directory / "c3", *common, prefix=cpu, guard=False),
        "modify_headers": Mitmdump(
            None,
            directory / "c4",
            *common,
            "--set",
            "modify_headers=|~s|Access-Control-Allow-Origin|*",
            prefix=cpu,
            guard=False,
        ),
    }
    try:
        for proxy in proxies.values():
            proxy.start()
            wrk(proxy.port, 1)  # warm up
        measured = interleaved({name: (lambda p=p: measure(p)) for name, p in proxies.items()}, rounds)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        nginx.stop()
    results = {name: [rps for rps, _ in values] for name, values in measured.items()}
    cpu = {name: median([us for _, us in values]) for name, values in measured.items()}
    base = results["plain"]
    ratios = {name: [v / b for v, b in zip(values, base, strict=True)] for name, values in results.items()}
    control = ratios["plain (control)"]
    return {
        "rps": {name: median(values) for name, values in results.items()},
        "ratio": {name: median(values) for name, values in ratios.items()},
        "spread": (min(control), max(control)),
        "cpu_us": cpu,
        "rounds": rounds,
    }


def report(result: dict) -> list[str]:
    low, high = result["spread"]
    addon, modify = result["ratio"]["addon, 100 rules"], result["ratio"]["modify_headers"]
    lines = [
        f"End-to-end through mitmdump (reverse mode to nginx, wrk -c{CONNECTIONS}, {SECONDS} s runs, "
        "mitmdump on its own CPU, "
        f"median of {result['rounds']} interleaved rounds)",
        f"  {'variant':<20} {'req/s':>8} {'vs plain':>9} {'mitmdump CPU µs/request':>24}",
    ]
    for name, rps in result["rps"].items():
        lines.append(f"  {name:<20} {rps:>8.0f} {result['ratio'][name]:>8.3f}x {result['cpu_us'][name]:>24.0f}")
    inside = addon >= low
    lines += [
        f"  plain/plain spread (noise): {low:.3f}x .. {high:.3f}x",
        f"  addon {addon:.3f}x: {'inside or above' if inside else 'BELOW'} the noise; "
        f"modify_headers {modify:.3f}x ({'addon no worse' if addon >= modify - (high - low) else 'addon WORSE'})",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(report(run())))
