"""Credentials as the browser counts them, in real Chromium through a real mitmdump: a Bearer token
the page sets itself is sent in the default credentials mode, where `Access-Control-Allow-Origin: *`
passes; a call with `credentials: "include"` carries the cookie, where `*` fails. The API check's
verdict on each must agree with the browser."""

from __future__ import annotations

import json

import pytest

from .browser import Browser, require_chromium
from .proxy import Mitmdump, api_check_of, saved_flows
from .upstream import Upstream

pytestmark = pytest.mark.browser

RULES = '[[rules]]\nname = "public api"\nhosts = ["127.0.0.1:{port}"]\naction = "observe"\n'


@pytest.fixture
def setup(tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    # The page and the API share the site 127.0.0.1 (ports don't make another site), so the API's
    # SameSite=Lax cookie goes along whenever the fetch's credentials mode lets it.
    with Upstream() as page, Upstream() as api, sync_playwright() as playwright:
        rules = tmp_path / "rules.toml"
        rules.write_text(RULES.format(port=api.port))
        proxy = Mitmdump(rules, tmp_path / "confdir", "-w", str(tmp_path / "flows")).start()
        browser = Browser(playwright, proxy.port)
        try:
            yield browser, f"http://127.0.0.1:{page.port}/page", f"http://127.0.0.1:{api.port}", api, proxy

        finally:
            browser.close()
            proxy.stop()


def test_a_bearer_token_passes_a_star_answer_and_a_call_with_credentials_does_not(setup, tmp_path):
    browser, page, base, api, proxy = setup
    browser.page.goto(f"{base}/cookie/set?value=c00kie")  # the API's session cookie, set by a visit
    url = f"{base}/cors/public"

    bearer = browser.fetch(page, url, headers={"Authorization": "Bearer t0ken"})
    assert bearer["ok"] and bearer["status"] == 200 and json.loads(bearer["body"])["cookie"] is None, bearer
    included = browser.fetch(page, url, credentials="include")
    assert included == {"ok": False, "error": "TypeError: Failed to fetch"}  # `*` with credentials

    sent = [(method, headers.get("authorization"), headers.get("cookie")) for method, path, headers in
            api.recorder.requests if path == "/cors/public"]  # fmt: skip
    assert sent[0] == ("OPTIONS", None, None) and sent[1] == ("GET", "Bearer t0ken", None)
    assert sent[2][0] == "GET" and "sid=c00kie" in sent[2][2]  # include mode: the cookie went along
    assert len(sent) == 3
    # The API check agrees with the browser on each: only the call with the cookie fails.
    line = proxy.wait_for_log(r"cors: API http://127\.0\.0\.1:\d+ fails the browser's CORS check")
    assert "Access-Control-Allow-Origin: * on a request with credentials" in line and "GET /cors/public" in line
    assert proxy.output.count("fails the browser's CORS check") == 1
    proxy.stop()
    checks = [
        (f.request.method, api_check_of(f)) for f in saved_flows(tmp_path / "flows") if f.request.path == "/cors/public"
    ]
    assert checks == [
        ("OPTIONS", "API check: passes"),
        ("GET", "API check: passes"),
        (
            "GET",
            "API check: fails: Access-Control-Allow-Origin: * on a request with credentials "
            "(Access-Control-Allow-Origin: *)",
        ),
    ]
