"""`make bench`: every benchmark in one run, then a table of the targets.

Figures are medians of interleaved runs (variants take turns, A B A B, so the machine's drift
hits all of them alike) and ratios measured in this one run: compare them, not absolute times.
"""

from __future__ import annotations

import os
import platform
import sys
import time

import mitmproxy.version

from . import hooks, hostile, memory, preflight, reload, throughput


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_gb:.0f} GiB; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, mitmproxy {mitmproxy.version.VERSION}"
    )


def main() -> int:
    started = time.monotonic()
    print(f"cors-addon benchmark on {machine()}\n", flush=True)
    results = {}
    for name, module in (
        ("hooks", hooks),
        ("throughput", throughput),
        ("preflight", preflight),
        ("reload", reload),
        ("memory", memory),
        ("hostile", hostile),
    ):
        results[name] = module.run()
        print("\n".join(module.report(results[name])) + "\n", flush=True)

    h, t, p, r, m, x = (results[k] for k in ("hooks", "throughput", "preflight", "reload", "memory", "hostile"))
    extra_ms = x["ms"]["addon"] - x["ms"]["plain"]
    extra_mb = x["rss_growth"]["addon"] - x["rss_growth"]["plain"]
    unmatched_ms = x["ms"]["unmatched"] - x["ms"]["plain"]
    unmatched_mb = x["rss_growth"]["unmatched"] - x["rss_growth"]["plain"]
    low, high = t["spread"]
    addon, modify = t["ratio"]["addon, 100 rules"], t["ratio"]["modify_headers"]
    targets = [
        (
            "hook cost vs modify_headers (matched flows, 1 to 10,000 rules)",
            f"{h['worst_vs_modify_headers']:.2f}x",
            "<= 2.5x",
            h["worst_vs_modify_headers"] <= 2.5,
        ),
        (
            "hook cost growth, 100 -> 10,000 rules",
            f"{h['worst_growth_100_to_10000']:.2f}x",
            "<= 1.20x",
            h["worst_growth_100_to_10000"] <= 1.2,
        ),
        ("req/s with addon vs plain mitmdump", f"{addon:.3f}x", f"within noise ({low:.3f}..{high:.3f}x)", addon >= low),
        (
            "req/s with addon vs modify_headers",
            f"{addon:.3f}x vs {modify:.3f}x",
            "no worse (within noise)",
            addon >= modify - (high - low),
        ),
    ]
    for n, speedup in p["speedup"].items():
        targets.append((f"preflight answer vs direct, {n} at a time", f"{speedup:.2f}x", ">= 1.6x", speedup >= 1.6))
    targets += [
        ("save -> new rules in force (median)", f"{r['median'] * 1000:.0f} ms", "< 600 ms", r["median"] < 0.6),
        ("requests failed during reloads", f"{r['failures']} of {r['requests']}", "0", r["failures"] == 0),
        ("slowest request during reloads", f"{r['slowest_request'] * 1000:.0f} ms", "< 5000 ms",
         r["slowest_request"] < 5),
        ("memory growth over the reloads", f"{r['memory_growth']:+.1f} MB", "< 15 MB", r["memory_growth"] < 15),
        ("parse and compile 10,000 rules", f"{r['parse_10000'] * 1000:.0f} ms", "< 1000 ms", r["parse_10000"] < 1),
        ("memory with 10,000 rules", f"+{m['with'] - m['without']:.1f} MB", "< 20 MB", m["with"] - m["without"] < 20),
        ("1 MB Host and Origin: extra time per request", f"{extra_ms:+.1f} ms", "< 5 ms", extra_ms < 5),
        ("150 such requests: extra memory vs plain", f"{extra_mb:+.1f} MB", "< 10 MB", extra_mb < 10),
        ("the same, no rule naming the host: extra time", f"{unmatched_ms:+.1f} ms", "< 5 ms", unmatched_ms < 5),
        ("the same, no rule naming the host: extra memory", f"{unmatched_mb:+.1f} MB", "< 10 MB", unmatched_mb < 10),
    ]  # fmt: skip
    print("Targets")
    for name, measured, target, ok in targets:
        print(f"  {'met' if ok else 'MISSED':<6}  {name:<46} {measured:>22}   target {target}")
    print(f"\n(benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
