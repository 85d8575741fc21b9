"""Shared by the benchmarks: interleaved repetition, medians, rules files, process memory."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

ORIGIN = "http://localhost:3000"


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each variant once per round, in A B C A B C order, so drift hits all alike."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            results[name].append(run())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


def rules_text(count: int, target_host: str = "api.example.com", extra: str = "") -> str:
    """`count` rules: mostly exact hosts, every tenth a `*.` suffix, the target host last."""
    parts = []
    for i in range(count - 1):
        host = f"*.svc{i}.example" if i % 10 == 9 else f"api{i}.example.com"
        parts.append(f'[[rules]]\nname = "r{i}"\nhosts = ["{host}"]\n')
    parts.append(f'[[rules]]\nname = "target"\nhosts = ["{target_host}"]\n{extra}')
    return "\n".join(parts)


def write_rules(path: Path, count: int, target_host: str = "api.example.com", extra: str = "") -> Path:
    path.write_text(rules_text(count, target_host, extra))
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
