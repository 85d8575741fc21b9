"""Real Chromium runs fetch() from a page on one origin against an API on another,
through a real `mitmdump -s cors_addon.py`; each test asserts what the page's JavaScript saw.

Origins: the page is http://127.0.0.1:<page port>; the API is on 127.0.0.2 (plain and TLS), and a
second API on 127.0.0.1 with another port serves the cookie test (cross-origin, same site).
"""

from __future__ import annotations

import json
import os
import secrets
import time

import pytest

from .browser import Browser
from .certs import make_server_cert, spki_hash
from .proxy import Mitmdump
from .support import wait_until
from .upstream import Upstream

pytestmark = pytest.mark.browser

RULES = """
[[rules]]
name = "strip"
hosts = ["127.0.0.2"]
paths = ["/strip/*"]
action = "strip"

[[rules]]
name = "forward"
hosts = ["127.0.0.2"]
paths = ["/options405"]
preflight = "forward"

[[rules]]
name = "expose all"
hosts = ["127.0.0.2"]
paths = ["/expose-star/*"]
expose_headers = "*"
allow_credentials = true

[[rules]]
name = "other origins only"
hosts = ["127.0.0.2"]
paths = ["/private/*"]
allow_origins = ["https://app.example.com"]

[[rules]]
name = "api"
hosts = ["127.0.0.2", "127.0.0.1:{cookie_port}"]
allow_credentials = true
expose_headers = ["X-Request-Id"]
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The page's server, the API (plain and TLS) and the cookie API, all on loopback."""
    ca, tls = make_server_cert(tmp_path_factory.mktemp("certs"), "127.0.0.2")
    with (
        Upstream("127.0.0.1") as page,
        Upstream("127.0.0.2") as api,
        Upstream("127.0.0.2", tls=tls) as tls_api,
        Upstream("127.0.0.1") as cookie_api,
    ):
        yield {
            "page": f"http://127.0.0.1:{page.port}/page",
            "api": api,
            "base": f"http://127.0.0.2:{api.port}",
            "tls": f"https://127.0.0.2:{tls_api.port}",
            "tls_api": tls_api,
            "cookie": f"http://127.0.0.1:{cookie_api.port}",
            "cookie_port": cookie_api.port,
            "ca": ca,
        }


@pytest.fixture(scope="module")
def proxy(servers, tmp_path_factory):
    directory = tmp_path_factory.mktemp("proxy")
    rules = directory / "rules.toml"
    rules.write_text(RULES.format(cookie_port=servers["cookie_port"]))
    p = Mitmdump(rules, directory / "confdir", "--set", f"ssl_verify_upstream_trusted_ca={servers['ca']}")
    try:
        yield p.start()
    finally:
        p.stop()


@pytest.fixture(scope="module")
def browser(playwright, proxy):
    """Chromium through the addon, trusting mitmproxy's CA by its key only."""
    b = Browser(playwright, proxy.port, trust_spki=spki_hash(proxy.confdir / "mitmproxy-ca-cert.pem"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def direct(playwright):
    """Chromium with no proxy: the API as it is."""
    b = Browser(playwright)
    yield b
    b.close()


def body(result):
    assert result["ok"], result
    return json.loads(result["body"])


def test_without_the_addon_a_plain_get_fails(direct, servers):
    result = direct.fetch(servers["page"], servers["base"] + "/users")
    assert result == {"ok": False, "error": "TypeError: Failed to fetch"}


def test_get_from_an_allowed_origin_reads_the_json(browser, servers):
    result = browser.fetch(servers["page"], servers["base"] + "/users")
    assert result["status"] == 200
    assert body(result)["path"] == "/users"


def test_get_from_an_origin_not_allowed_fails(browser, servers):
    assert browser.fetch(servers["page"], servers["base"] + "/private/data")["ok"] is False


def test_preflighted_json_post_succeeds_and_the_upstream_never_sees_options(browser, servers):
    result = browser.fetch(
        servers["page"],
        servers["base"] + "/json-post",
        method="POST",
        headers={"Content-Type": "application/json"},
        body='{"a": 1}',
    )
    assert result["status"] == 200 and body(result)["method"] == "POST"
    assert servers["api"].recorder.methods("/json-post") == ["POST"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_methods_with_authorization_and_a_custom_header_succeed(browser, servers, method):
    path = f"/write-{method.lower()}"
    result = browser.fetch(
        servers["page"],
        servers["base"] + path,
        method=method,
        headers={"Authorization": "Bearer t0ken", "X-Custom": "1"},
    )
    assert result["status"] == 200 and body(result)["method"] == method
    method_seen, _, headers = servers["api"].recorder.last()
    assert method_seen == method and headers["authorization"] == "Bearer t0ken" and headers["x-custom"] == "1"


def test_credentials_carry_a_cookie_set_by_the_api_back_to_it(browser, servers):
    value = secrets.token_hex(8)
    first = browser.fetch(servers["page"], servers["cookie"] + f"/cookie/set?value={value}", credentials="include")
    assert first["status"] == 200
    second = browser.fetch(servers["page"], servers["cookie"] + "/whoami", credentials="include")
    assert f"sid={value}" in body(second)["cookie"]


def test_upstream_star_with_credentials_works_only_through_the_addon(browser, direct, servers):
    url = servers["base"] + "/cors/star"
    assert browser.fetch(servers["page"], url, credentials="include")["status"] == 200
    assert direct.fetch(servers["page"], url)["status"] == 200  # the API's `*` alone is fine...
    assert direct.fetch(servers["page"], url, credentials="include")["ok"] is False  # ...but not with credentials


def test_upstream_allowing_another_origin_twice_is_fixed_by_the_addon(browser, direct, servers):
    url = servers["base"] + "/cors/other"
    assert direct.fetch(servers["page"], url)["ok"] is False
    assert browser.fetch(servers["page"], url)["status"] == 200


@pytest.mark.parametrize("status", [404, 500])
def test_error_statuses_and_bodies_are_readable(browser, servers, status):
    result = browser.fetch(servers["page"], servers["base"] + f"/status/{status}")
    assert result["status"] == status and body(result)["status"] == status


def test_exposed_headers_are_readable_as_a_list_and_as_star_with_credentials(browser, servers):
    listed = browser.fetch(servers["page"], servers["base"] + "/listed")
    assert listed["headers"]["x-request-id"] == "abc123"
    star = browser.fetch(servers["page"], servers["base"] + "/expose-star/x", credentials="include")
    assert star["headers"]["x-request-id"] == "abc123"
    assert "set-cookie" not in star["headers"]


def test_a_redirect_to_another_path_of_the_api_is_followed(browser, servers):
    result = browser.fetch(servers["page"], servers["base"] + "/redirect")
    assert result["status"] == 200 and result["redirected"] is True
    assert body(result)["path"] == "/target"


def test_forwarded_preflight_that_the_api_refuses_still_lets_the_call_through(browser, direct, servers):
    init = {"method": "PUT", "headers": {"Content-Type": "application/json"}, "body": "{}"}
    assert direct.fetch(servers["page"], servers["base"] + "/options405", **init)["ok"] is False
    result = browser.fetch(servers["page"], servers["base"] + "/options405", **init)
    assert result["status"] == 200 and body(result)["method"] == "PUT"
    assert servers["api"].recorder.methods("/options405")[-2:] == ["OPTIONS", "PUT"]


def test_strip_makes_an_api_with_cors_fail(browser, direct, servers):
    url = servers["base"] + "/strip/cors/star"
    assert direct.fetch(servers["page"], url)["status"] == 200
    assert browser.fetch(servers["page"], url)["ok"] is False


def test_https_api_through_connect_interception(browser, servers):
    assert body(browser.fetch(servers["page"], servers["tls"] + "/tls-get"))["path"] == "/tls-get"
    post = browser.fetch(
        servers["page"],
        servers["tls"] + "/tls-post",
        method="POST",
        headers={"Content-Type": "application/json"},
        body="{}",
    )
    assert body(post)["method"] == "POST"
    assert servers["tls_api"].recorder.methods("/tls-post") == ["POST"]
    with_credentials = browser.fetch(servers["page"], servers["tls"] + "/tls-credentials", credentials="include")
    assert with_credentials["status"] == 200


def test_reverse_mode_with_no_browser_proxy_setting(direct, servers, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(cookie_port=servers["cookie_port"]))
    reverse = Mitmdump(rules, tmp_path / "confdir", "--mode", f"reverse:{servers['base']}").start()
    try:
        base = f"http://127.0.0.1:{reverse.port}"
        assert body(direct.fetch(servers["page"], base + "/via-reverse"))["path"] == "/via-reverse"
        put = direct.fetch(servers["page"], base + "/via-reverse", method="PUT", headers={"X-Custom": "1"})
        assert put["status"] == 200
    finally:
        reverse.stop()


def test_server_sent_events_arrive_before_the_stream_ends(browser, servers):
    # The API holds the stream open for 30 s after the first event.
    result = browser.first_event(servers["page"], servers["base"] + "/sse?hold=30")
    assert result == {"ok": True, "data": "first"}


def test_live_reload_switches_the_browser_calls_off_and_on(playwright, servers, tmp_path):
    rules = tmp_path / "rules.toml"
    enabled = RULES.format(cookie_port=servers["cookie_port"])
    rules.write_text(enabled)
    proxy = Mitmdump(rules, tmp_path / "confdir").start()
    browser = Browser(playwright, proxy.port)
    url = servers["base"] + "/live"

    def passes() -> bool:
        return browser.fetch(servers["page"], url)["ok"]

    def seconds_until(expected: bool) -> float:
        start = time.monotonic()
        wait_until(lambda: passes() is expected, 10, 0.05, lambda: proxy.output)
        return time.monotonic() - start

    def save(text: str) -> None:
        temp = rules.with_suffix(".tmp")
        temp.write_text(text)
        os.replace(temp, rules)

    try:
        assert passes()
        save("enabled = false\n" + enabled)
        off = seconds_until(False)
        mark = proxy.mark()
        save(enabled)
        on = seconds_until(True)
        rules.write_text(enabled + "\nmax_age = -1\n")  # broken in place, mid-edit
        proxy.wait_for_log(r"cors: .*max_age: expected a whole number", after=mark)
        assert passes()
        print(f"rule edits reached the browser in {off:.2f} s (off) and {on:.2f} s (on)")
    finally:
        browser.close()
        proxy.stop()
