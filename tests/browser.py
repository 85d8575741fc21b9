"""Headless Chromium (Debian's, driven by Playwright) for the browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
# A closed network: nothing but what the test asks for. Chromium's own background traffic goes through
# the proxy too, where tests/loopback_guard.py refuses whatever is not on loopback; these flags keep most
# of it from being sent, and send the rest to reserved names. Playwright passes many of them already;
# they are listed so that the set does not depend on Playwright's. No --disable-features here: Chromium
# honours only the last one, so it would replace Playwright's list.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    # --disable-component-update leaves on-demand installs alone: Chromium 156 still asks
    # update.googleapis.com for the optimisation guide's model manifest (ceofaddefefcbblgcgnibnonglccbfja),
    # and no switch or feature stops that. Point it at a reserved name (RFC 2606) instead, which the
    # proxy's guard refuses unresolved.
    "--component-updater=url-source=http://update.invalid/",
    # Every profile lists the Google accounts in its cookie jar once its network is up (POST
    # accounts.google.com/ListAccounts), and no switch stops it in Chromium 156: a reserved name again.
    "--gaia-url=https://gaia.invalid/",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--no-service-autorun",
    "--password-store=basic",
]

FETCH = """async ([url, init]) => {
  try {
    const r = await fetch(url, {cache: "no-store", ...init});
    const headers = {};
    r.headers.forEach((value, name) => { headers[name] = value; });
    return {ok: true, status: r.status, body: await r.text(), headers, redirected: r.redirected};
  } catch (e) {
    return {ok: false, error: String(e)};
  }
}"""

EVENT_SOURCE = """([url, timeout]) => new Promise((resolve) => {
  const source = new EventSource(url);
  const done = (result) => { source.close(); resolve(result); };
  source.onmessage = (e) => done({ok: true, data: e.data});
  source.onerror = () => done({ok: false, error: "EventSource error"});
  setTimeout(() => done({ok: false, error: "no event within " + timeout + " ms"}), timeout);
})"""


def require_chromium() -> None:
    """Skip (locally) or fail (in CI) when there is no Chromium to run."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing = "the Python package playwright is not installed (make test installs it)"
    else:
        missing = None if os.access(CHROMIUM, os.X_OK) else f"Chromium not found at {CHROMIUM}"
    if missing is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{missing}; CI must install it (.ci/run does: apt-get install chromium)", pytrace=False)
    pytest.skip(f"{missing}: install it with `sudo apt-get install chromium` to run the browser tests")


class Browser:
    """One Chromium with its own fresh profile, optionally behind a proxy."""

    def __init__(
        self, playwright: Any, proxy_port: int | None = None, trust_spki: str | None = None, args: tuple[str, ...] = ()
    ) -> None:
        """`args`: more Chromium flags, after the fixed ones."""
        self.profile = tempfile.mkdtemp(prefix="cors-addon-chromium-")
        args = [*FLAGS, *args]
        if proxy_port is not None:
            # Without the bypass list Chromium never sends loopback traffic through a proxy.
            args += [f"--proxy-server=http://127.0.0.1:{proxy_port}", "--proxy-bypass-list=<-loopback>"]
        if trust_spki:
            args.append(f"--ignore-certificate-errors-spki-list={trust_spki}")
        self.context = playwright.chromium.launch_persistent_context(
            self.profile, executable_path=CHROMIUM, headless=True, args=args
        )
        self.page = self.context.new_page()
        self.page_url: str | None = None

    def open(self, page_url: str) -> None:
        if page_url != self.page_url:
            self.page.goto(page_url)
            self.page_url = page_url

    def fetch(self, page_url: str, url: str, **init: Any) -> dict[str, Any]:
        """fetch(url, init) run by a page of `page_url`'s origin: what its JavaScript saw."""
        self.open(page_url)
        return self.page.evaluate(FETCH, [url, init])

    def first_event(self, page_url: str, url: str, timeout_ms: int = 10_000) -> dict[str, Any]:
        self.open(page_url)
        return self.page.evaluate(EVENT_SOURCE, [url, timeout_ms])

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            leftover = subprocess.run(["pgrep", "-f", self.profile], capture_output=True, text=True).stdout.split()
            for pid in leftover:
                subprocess.run(["kill", "-9", pid], check=False)
            shutil.rmtree(self.profile, ignore_errors=True)
            assert not leftover, f"Chromium processes left behind: {leftover}"
