"""Fixtures shared by the tests that run a real mitmdump."""

from __future__ import annotations

import pytest

from .browser import require_chromium
from .proxy import Mitmdump


@pytest.fixture
def start_proxy(tmp_path):
    """start(rules_text, *mitmdump_args, lazy=True): mitmdump with the addon on a rules file
    holding `rules_text`, listening on 127.0.0.1; every one started is stopped after the test."""
    started: list[Mitmdump] = []

    def start(text: str, *args: str, lazy: bool = True) -> Mitmdump:
        rules = tmp_path / "rules.toml"
        rules.write_text(text)
        proxy = Mitmdump(rules, tmp_path / "confdir", *args, lazy=lazy)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="module")
def playwright():
    """Playwright for Debian's Chromium (skipped locally without it, required in CI)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p
