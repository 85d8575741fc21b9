"""Hook cost: microseconds per flow that the addon adds to mitmproxy's dispatch of the flow's hook events,
in-process on mitmproxy's test flows, against mitmproxy's own modify_headers adding a static header to
the same flows.

Each event goes through an addon manager's `handle_lifecycle`, as mitmproxy's proxy server hands it on
(the event to every addon in the chain and every addon each one nests, then `update` for the flow),
with the measured addon alone in the chain; the cost of the same dispatch with an empty chain is
taken off, so a figure is what adding the addon to mitmproxy's chain costs (its nested addons walked
for every event included).
"""

from __future__ import annotations

import gc
import tempfile
import time
from pathlib import Path

from mitmproxy import http
from mitmproxy.addons.modifyheaders import ModifyHeaders
from mitmproxy.test import taddons, tflow

from corsaddon.addon import CorsAddon
from tests import flows as in_process

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


class Chain:
    """A master whose addon chain is `addon` alone (none: empty), configured with `options`."""

    def __init__(self, addon=None, **options) -> None:
        with taddons.context(*([addon] if addon is not None else []), loadcore=False) as tctx:
            if addon is not None:
                tctx.configure(addon, **options)
        self.addon, self.manager = addon, tctx.master.addons

    def time(self, kind: str, flows: int = FLOWS_PER_RUN) -> float:
        """µs of CPU per flow: `flows` flows of `kind`, each event through `handle_lifecycle`."""
        pairs = make_flows(kind, flows + 1)
        if self.addon is not None:
            in_process.run_hooks(self.addon, *pairs.pop())  # raises if a hook does (handle_lifecycle would only log it)
        dispatch = self.manager.handle_lifecycle

        async def play() -> float:
            gc.collect()
            start = time.process_time()  # CPU time: what other processes on a shared machine take is not counted
            for f, response in pairs[:flows]:
                await in_process.cycle(self.addon, f, response, dispatch)
            return (time.process_time() - start) / flows * 1e6

        return in_process.run(play())


def configured_addon(rules: Path, flow_log: bool = False) -> Chain:
    """The addon on `rules`; without its per-flow log line unless `flow_log`, as in mitmdump with
    flow_detail=0 (what the end-to-end runs use), where mitmdump prints no line per flow either."""
    chain = Chain(CorsAddon(), cors_rules=str(rules), cors_flow_log=flow_log)
    ruleset = chain.addon.ruleset
    assert len(ruleset.active) == len(ruleset.rules), "every rule should be enabled"
    return chain


def run(rounds: int = 7) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="cors-bench-hooks-"))
    addons = {n: configured_addon(write_rules(directory / f"rules-{n}.toml", n)) for n in RULE_COUNTS}
    logging_addon = configured_addon(directory / "rules-100.toml", flow_log=True)
    modify = Chain(ModifyHeaders(), modify_headers=[MODIFY_HEADERS_SPEC])
    empty = Chain()

    variants = {}
    for kind in KINDS:
        variants[("dispatch", kind)] = lambda kind=kind: empty.time(kind)
        variants[("modify_headers", kind)] = lambda kind=kind: modify.time(kind)
        for n, addon in addons.items():
            variants[(n, kind)] = lambda addon=addon, kind=kind: addon.time(kind)
        variants[("flow lines", kind)] = lambda kind=kind: logging_addon.time(kind)
    results = interleaved(variants, rounds)
    dispatch = {kind: median(results[("dispatch", kind)]) for kind in KINDS}
    # what each adds to the dispatch with an empty chain
    medians = {(who, kind): median(values) - dispatch[kind] for (who, kind), values in results.items()}

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
        "dispatch_us": dispatch,
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
        f"Hook cost, µs per flow (median of {result['rounds']} interleaved runs of {FLOWS_PER_RUN} flows): "
        "what each adds to mitmproxy's dispatch of the flow's events",
        f"  {'flow':<22} {'1 rule':>8} {'100':>8} {'10,000':>8} {'modify_headers':>15}",
    ]
    for kind in KINDS:
        lines.append(
            f"  {kind:<22} {m[(1, kind)]:>8.1f} {m[(100, kind)]:>8.1f} {m[(10_000, kind)]:>8.1f} "
            f"{m[('modify_headers', kind)]:>15.1f}"
        )
    dispatch = result["dispatch_us"]
    lines += [
        f"  (the dispatch itself, with no addon in the chain: {min(dispatch.values()):.1f} to "
        f"{max(dispatch.values()):.1f} µs per flow, taken off each figure)",
        f"  worst: {result['worst_us']:.1f} µs (mitmproxy's dispatch to the addon included)",
        f"  worst addon / modify_headers on matched flows: {result['worst_vs_modify_headers']:.2f}x (target <= 2.5)",
        f"  worst growth from 100 to 10,000 rules: {result['worst_growth_100_to_10000']:.2f}x (target <= 1.20)",
        f"  the per-flow cors: line (cors_flow_log, when mitmdump prints its own flow lines) adds up to "
        f"{result['flow_line_us']:.1f} µs (100 rules)",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(report(run())))
