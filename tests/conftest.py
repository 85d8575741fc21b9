"""Fixtures shared by the tests that run a real mitmdump."""

from __future__ import annotations

import pytest
from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon

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


@pytest.fixture
def addon_on_rules(tmp_path):
    """start(content, *other_addons): the addon on tmp_path/rules.toml holding `content` (str or bytes;
    None: no file), in one taddons context (its `tctx` attribute; its file: `path`) that ends with the test."""
    started = []

    def start(content: str | bytes | None, *others):
        path = tmp_path / "rules.toml"
        if isinstance(content, str):
            path.write_text(content)
        elif content is not None:
            path.write_bytes(content)
        a = CorsAddon()
        context = taddons.context(a, *others)
        tctx = context.__enter__()
        started.append(context)
        tctx.configure(a, cors_rules=str(path))
        a.tctx, a.path = tctx, path
        return a

    yield start
    for context in started:
        context.__exit__(None, None, None)
