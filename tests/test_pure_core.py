"""The pure core imports nothing from mitmproxy: each of its modules is imported in a fresh Python with
mitmproxy blocked. Its modules are those CONTRIBUTING.md's map lists under a "(pure core)" folder and
those whose docstring says "Pure:", so a new one is covered as soon as either says so. (Ruff's TID251,
in pyproject.toml, flags the import itself.)"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "corsaddon"
# Importing mitmproxy, or anything under it, raises ModuleNotFoundError once it is None in sys.modules.
BLOCKED_IMPORT = "import importlib, sys; sys.modules['mitmproxy'] = None; importlib.import_module(sys.argv[1])"


def mapped_pure_modules() -> set[str]:
    """The modules CONTRIBUTING.md lists in a `folder/ (pure core)` section of its map."""
    modules: set[str] = set()
    folder = None
    for line in (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8").splitlines():
        if header := re.fullmatch(r"(\S+)/ \(([^)]*)\)\s*", line):
            folder = header.group(1).replace("/", ".") if header.group(2) == "pure core" else None
        elif not line.startswith(" "):
            folder = None  # a blank line or the end of the map closes the section
        elif folder and (entry := re.match(r" {1,4}(\w+(?:/\w+)*)\.py\s", line)):
            modules.add(f"{folder}.{entry.group(1).replace('/', '.')}")
    return modules


def declared_pure_modules() -> set[str]:
    """The package's modules whose docstring says "Pure:" (or "(pure: ...)")."""
    modules = set()
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if re.search(r"\bpure:", docstring, re.IGNORECASE):
            modules.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return modules


PURE = sorted(mapped_pure_modules() | declared_pure_modules())


def test_the_pure_core_is_found():
    """Guards the parsing above: a map rewritten out of its reach would otherwise check nothing."""
    assert len(mapped_pure_modules()) >= 10, "CONTRIBUTING.md's map lists no '(pure core)' modules any more"
    assert {"corsaddon.policy", "corsaddon.verdict", "corsaddon.patterns"} <= set(PURE)


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_imports_without_mitmproxy(module):
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, module], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"{module} cannot be imported without mitmproxy:\n{result.stderr[-3000:]}"


def test_blocking_works():
    """The same import fails for a glue module: the block is real."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT, f"{PACKAGE}.addon"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "mitmproxy" in result.stderr
