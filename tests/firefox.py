"""Debian's Firefox ESR, headless, for the Firefox tests (Playwright's own Firefox build cannot be had here)."""

from __future__ import annotations

import os
import shutil

import pytest

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"


def require_firefox() -> None:
    """Skip (locally) or fail (in CI) when there is no Firefox to run."""
    if os.access(FIREFOX, os.X_OK):
        return
    missing = f"Firefox not found at {FIREFOX}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}; CI must install it (.ci/run does: apt-get install firefox-esr)", pytrace=False)
    pytest.skip(f"{missing}: install it with `sudo apt-get install firefox-esr libnss3-tools` to run the Firefox tests")
