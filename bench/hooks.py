"""Hook cost: microseconds per flow in the addon's hooks, in-process on mitmproxy's test flows,
against mitmproxy's own modify_headers adding a static header to the same flows."""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from mitmproxy import http
from mitmproxy.addons.modifyheaders import ModifyHeaders
from mitmproxy.test import taddons, tflow

from corsaddon.addon import CorsAddon
from tests.flows import run_hooks

from .common import ORIGIN, interleaved, median, write_rules

FLOWS_PER_RUN = 2000
RULE_COUNTS = (1, 100, 10_000)
KINDS = {
    "preflight": ("OPTIONS", "api.example.com", {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
                                                 "Access-Control-Request-Headers": "content-type"}),
    "GET with Origin": ("GET", "api.example.com", {"Origin": ORIGIN}),
    "GET without Origin": ("GET", "api.example.com", {}),
    "unmatched, with Origin": ("GET", "other.example.org", {"Origin": ORIGIN}),  # fails CORS: discovered
    "unmatched, no Origin": ("GET", "other.example.org", {}),
}  # fmt: skip
UNMATCHED = ("unmatched, with Origin", "unmatched, no Origin")
MODIFY_HEADERS_SPEC = "|~d api.example.com & ~s|Access-Control-Allow-Origin|*"


def make_flows(kind: str, n: int) -> list[tuple[http.HTTPFlow, http.Response]]:
    method, host, headers = KINDS[kind]
    pairs = []
    for _ in range(n):
        f = tflow.tflow()
        f.request = http.Request.make(method, f"https://{host}/v1/users?page=2", b"", headers)
        f.response = None
        response = http.Response.make(
            200, b'{"ok":true}', {"Content-Type": "application/json", "Vary": "Accept-Encoding"}
        )
        response.timestamp_end = None  # the API's answer, as responseheaders sees it: its body still to come
        pairs.append((f, response))
    return pairs


def time_addon(addon: CorsAddon, kind: str, flows: int = FLOWS_PER_RUN) -> float:
    pairs = make_flows(kind, flows)
    gc.collect()
    start = time.perf_counter()
    for f, response in pairs:
        run_hooks(addon, f, response)
    return (time.perf_counter() - start) / flows * 1e6


def time_modify_headers(addon: ModifyHeaders, kind: str) -> float:
    pairs = make_flows(kind, FLOWS_PER_RUN)
    requestheaders, responseheaders = addon.requestheaders, addon.responseheaders
    assert all(f.live for f, _ in pairs)  # modify_headers skips flows that are not live
    gc.collect()
    start = time.perf_counter()
    for f, response in pairs:
        requestheaders(f)
        f.response = response
        responseheaders(f)
    return (time.perf_counter() - start) / FLOWS_PER_RUN * 1e6


def configured_addon(rules: Path, flow_log: bool = False) -> CorsAddon:
    """The addon on `rules`; without its per-flow log line unless `flow_log`, as in mitmdump with
    flow_detail=0 (what the end-to-end runs use), where mitmdump prints no line per flow either."""
    addon = CorsAddon()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cors_rules=str(rules), cors_flow_log=flow_log)
    assert len(addon.ruleset.active) == len(addon.ruleset.rules), "every rule should be enabled"
    return addon


def run(rounds: int = 7) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cors-bench-hooks-"))
    addons = {n: configured_addon(write_rules(directory / f"rules-{n}.toml", n)) for n in RULE_COUNTS}
    logging_addon = configured_addon(directory / "rules-100.toml", flow_log=True)
    modify = ModifyHeaders()
    with taddons.context(modify) as tctx:
        tctx.configure(modify, modify_headers=[MODIFY_HEADERS_SPEC])

    variants = {}
    for kind in KINDS:
        variants[("modify_headers", kind)] = lambda kind=kind: time_modify_headers(modify, kind)
        for n, addon in addons.items():
            variants[(n, kind)] = lambda addon=addon, kind=kind: time_addon(addon, kind)
        variants[("flow lines", kind)] = lambda kind=kind: time_addon(logging_addon, kind)
    results = interleaved(variants, rounds)
    medians = {key: median(values) for key, values in results.items()}

    worst_us = max(v for (who, _), v in medians.items() if who in RULE_COUNTS)
    worst_vs_modify = max(
        medians[(n, kind)] / medians[("modify_headers", kind)]
        for n in RULE_COUNTS
        for kind in KINDS
        if kind not in UNMATCHED
    )
    worst_growth = max(medians[(10_000, kind)] / medians[(100, kind)] for kind in KINDS)
    line_cost = max(medians[("flow lines", kind)] - medians[(100, kind)] for kind in KINDS)
    return {
        "flow_line_us": line_cost,
        "medians": medians,
        "worst_us": worst_us,
        "worst_vs_modify_headers": worst_vs_modify,
        "worst_growth_100_to_10000": worst_growth,
        "rounds": rounds,
    }


def report(result: dict) -> list[str]:
    m = result["medians"]
    lines = [
        f"Hook cost, µs per flow (median of {result['rounds']} interleaved runs of {FLOWS_PER_RUN} flows)",
        f"  {'flow':<22} {'1 rule':>8} {'100':>8} {'10,000':>8} {'modify_headers':>15}",
    ]
    for kind in KINDS:
        lines.append(
            f"  {kind:<22} {m[(1, kind)]:>8.1f} {m[(100, kind)]:>8.1f} {m[(10_000, kind)]:>8.1f} "
            f"{m[('modify_headers', kind)]:>15.1f}"
        )
    lines += [
        f"  worst: {result['worst_us']:.1f} µs (target < 30)",
        f"  worst addon / modify_headers on matched flows: {result['worst_vs_modify_headers']:.2f}x (target <= 2)",
        f"  worst growth from 100 to 10,000 rules: {result['worst_growth_100_to_10000']:.2f}x (target <= 1.20)",
        f"  the per-flow cors: line (cors_flow_log, when mitmdump prints its own flow lines) adds up to "
        f"{result['flow_line_us']:.1f} µs (100 rules)",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(report(run())))
