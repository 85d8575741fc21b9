"""Retake docs/mitmweb-flows.png: mitmweb 12's flow list with the addon's markers and comments.

Run with `make screenshot` (mitmproxy 12, Debian's chromium, and an emoji font: fonts-noto-color-emoji).
It starts a loopback API and mitmweb with the addon, sends one request of each decision through
it, and photographs the flow list in headless Chromium.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM  # noqa: E402
from tests.proxy import DECISION_RULES, MITMWEB, Mitmdump, free_port, one_flow_per_decision  # noqa: E402
from tests.upstream import Upstream  # noqa: E402

COLUMNS = ("icon", "path", "method", "status", "comment")


def main(target: Path = ROOT / "docs" / "mitmweb-flows.png") -> None:
    with tempfile.TemporaryDirectory() as directory, Upstream() as api, sync_playwright() as p:
        rules = Path(directory, "rules.toml")
        rules.write_text(DECISION_RULES.format(port=api.port))
        web_port = free_port()
        columns = [arg for name in COLUMNS for arg in ("--set", f"web_columns={name}")]
        proxy = Mitmdump(
            rules, Path(directory, "confdir"), "--web-host", "127.0.0.1", "--web-port", str(web_port),
            "--set", "web_open_browser=false", *columns, program=MITMWEB,
        ).start()  # fmt: skip
        try:
            token = re.search(r"\?token=(\w+)", proxy.wait_for_log("Web server listening at")).group(1)
            one_flow_per_decision(proxy.port, api.port)
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 345}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{web_port}/?token={token}")
            page.locator(".flow-table tbody td.col-path").nth(4).wait_for()
            handle = page.locator("th.col-path .col-resize-handle").bounding_box()
            assert handle is not None
            y = handle["y"] + handle["height"] / 2
            page.mouse.move(handle["x"] + 2, y)  # narrow the path column so that comments can be read
            page.mouse.down()
            page.mouse.move(handle["x"] - 560, y, steps=10)
            page.mouse.up()
            page.locator("th.col-comment .col-resize-handle").dblclick()  # fit the comments
            page.screenshot(path=str(target))
            browser.close()
        finally:
            proxy.stop()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
