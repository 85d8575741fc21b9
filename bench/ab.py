"""The hook cost of the package at a git revision against the working tree's, in one process, taking
turns: steadier than two runs of `make bench` on a shared machine.

    python -m bench.ab REV [KIND ...]     (KIND: the flow kinds of bench/hooks.py; default all)

The revision's `corsaddon` is extracted (git archive) into a temporary folder under another name, so
both load side by side; each takes 25 turns of 1,000 flows per kind at 100 rules.
"""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .common import median, write_rules
from .hooks import KINDS, Chain

ROOT = Path(__file__).resolve().parent.parent
TURNS = 25
FLOWS = 1000


def package_at(revision: str, folder: Path):
    """`corsaddon` as it was at `revision`, imported as `corsaddon_at_rev`."""
    archive = subprocess.run(["git", "archive", revision, "corsaddon"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "corsaddon").rename(folder / "corsaddon_at_rev")
    sys.path.insert(0, str(folder))
    return importlib.import_module("corsaddon_at_rev.addon")


def configured(module, rules: Path) -> Chain:
    return Chain(module.CorsAddon(), cors_rules=str(rules), cors_flow_log=False)


def main(argv: list[str]) -> None:
    revision, kinds = argv[0], argv[1:] or list(KINDS)
    folder = Path(tempfile.mkdtemp(prefix="cors-bench-ab-"))
    rules = write_rules(folder / "rules.toml", 100)
    import corsaddon.addon as current

    addons = {
        revision: configured(package_at(revision, folder), rules),
        "working tree": configured(current, rules),
        "no addon": Chain(),  # mitmproxy's dispatch of the events alone
    }
    times: dict[tuple[str, str], list[float]] = {(who, kind): [] for who in addons for kind in kinds}
    for _ in range(TURNS):
        for kind in kinds:
            for who, addon in addons.items():
                times[(who, kind)].append(addon.time(kind, FLOWS))
    print(
        f"Hook cost, µs per flow at 100 rules, each event through mitmproxy's dispatch (no addon: the "
        f"dispatch alone): fastest and median of {TURNS} turns of {FLOWS} flows"
    )
    for kind in kinds:
        cells = "   ".join(
            f"{who}: {min(times[(who, kind)]):5.1f} / {median(times[(who, kind)]):5.1f}" for who in addons
        )
        print(f"  {kind:<24} {cells}")


if __name__ == "__main__":
    main(sys.argv[1:])
