"""Rule key `cookies`: the Set-Cookie rewrite (pure), the hook, and a login through reverse mode in Chromium."""

from __future__ import annotations

import json
import logging

import pytest
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon
from corsaddon.parsing import parse
from corsaddon.rulesfile import compile_filter
from corsaddon.schema import Cookies
from corsaddon.setcookie import needs_secure, rewrite

from .browser import Browser, require_chromium
from .flows import LOCAL, make_flow, run_hooks, upstream_response
from .proxy import Mitmdump
from .upstream import LOGIN_RULES, Upstream

SESSION = b"sid=s3cret; Domain=api.example.com; Path=/; Secure; HttpOnly; SameSite=Lax"


def test_same_site_drops_domain_and_keeps_secure_over_https():
    assert rewrite(SESSION, Cookies.SAME_SITE, over_https=True) == b"sid=s3cret; Path=/; Secure; HttpOnly; SameSite=Lax"


def test_same_site_drops_secure_over_plain_http():
    assert rewrite(SESSION, Cookies.SAME_SITE, over_https=False) == b"sid=s3cret; Path=/; HttpOnly; SameSite=Lax"


def test_cookies_named_secure_or_host_keep_secure_over_plain_http_since_they_cannot_live_without_it():
    for value in (b"__Host-sid=1; Path=/; Secure; SameSite=None", b"__secure-sid=1; Domain=x; Secure; SameSite=None"):
        assert needs_secure(value)
        assert rewrite(value, Cookies.SAME_SITE, over_https=False) == value.replace(b"; Domain=x", b"")
    assert not needs_secure(b"sid=__Host-1; Secure") and not needs_secure(b"Host-sid=1")


def test_same_site_without_secure_drops_samesite_none_which_browsers_refuse_without_it():
    value = b"a=1; domain=.example.com; SECURE; samesite=None; Max-Age=60"
    assert rewrite(value, Cookies.SAME_SITE, over_https=False) == b"a=1; Max-Age=60"
    assert rewrite(value, Cookies.SAME_SITE, over_https=True) == b"a=1; SECURE; samesite=None; Max-Age=60"


def test_cross_site_sets_samesite_none_and_secure_once():
    assert rewrite(SESSION, Cookies.CROSS_SITE, over_https=False) == (
        b"sid=s3cret; Domain=api.example.com; Path=/; HttpOnly; SameSite=None; Secure"
    )
    assert rewrite(b"b=2", Cookies.CROSS_SITE, over_https=True) == b"b=2; SameSite=None; Secure"


def test_a_cookie_value_with_an_equals_sign_and_odd_bytes_is_kept_as_is():
    value = b"tok=a=b==\xff; Domain=x"
    assert rewrite(value, Cookies.SAME_SITE, over_https=True) == b"tok=a=b==\xff"


def test_a_megabyte_set_cookie_is_rewritten_in_one_pass():
    value = b"a=1" + b"; Domain=x" * 100_000
    assert rewrite(value, Cookies.SAME_SITE, over_https=True) == b"a=1"


RULES = """
[[rules]]
name = "api"
hosts = ["api.example.com"]
cookies = "{mode}"
"""


def through_addon(mode: str, url: str, set_cookie: str, browser_url: str = "", times: int = 1):
    """The response's Set-Cookie fields after the addon's hooks ran (its responseheaders applies rule key cookies).
    `browser_url`: where the browser reached the proxy, in reverse mode (default: `url`, as a regular proxy)."""
    addon = CorsAddon()
    with taddons.context(addon) as tctx:
        tctx.options.cors_enabled = True
        addon.put_in_force(_ruleset(RULES.format(mode=mode)))
        for _ in range(times):
            flow = make_flow("GET", url, [("Origin", LOCAL)])
            if browser_url:
                flow.client_conn.proxy_mode = ProxyMode.parse("reverse:https://api.example.com")
                flow.client_conn.sockname = ("127.0.0.1", 8081)
            # how the browser came: TLS to the proxy, or plain HTTP
            flow.client_conn.timestamp_tls_setup = 1.0 if (browser_url or url).startswith("https:") else None
            fields = [("Set-Cookie", set_cookie), ("Set-Cookie", "plain=1")]
            run_hooks(addon, flow, upstream_response(headers=fields))
        return flow.response.headers.get_all("set-cookie"), flow.comment


def _ruleset(text):
    return parse(text, compile_filter)


def test_the_hook_rewrites_every_set_cookie_of_a_matched_flow_and_says_so():
    cookies, comment = through_addon("same-site", "https://api.example.com/login", SESSION.decode())
    assert cookies == ["sid=s3cret; Path=/; Secure; HttpOnly; SameSite=Lax", "plain=1"]
    assert comment.endswith("\nSet-Cookie rewritten (cookies = same-site)")


def test_the_hook_drops_secure_for_plain_http_to_a_host_that_is_not_local():
    cookies, _ = through_addon("same-site", "http://api.example.com/login", SESSION.decode())
    assert cookies[0] == "sid=s3cret; Path=/; HttpOnly; SameSite=Lax"


def test_the_hook_drops_secure_over_plain_http_to_localhost_in_reverse_mode_as_safari_needs():
    cookies, _ = through_addon("same-site", "https://api.example.com/login", SESSION.decode(), "http://localhost:8081")
    assert cookies[0] == "sid=s3cret; Path=/; HttpOnly; SameSite=Lax"
    cookies, _ = through_addon("same-site", "https://api.example.com/login", SESSION.decode(), "https://localhost:8081")
    assert cookies[0] == "sid=s3cret; Path=/; Secure; HttpOnly; SameSite=Lax"


def test_a_secure_only_cookie_over_plain_http_keeps_secure_and_one_notice_names_it_and_the_fix(caplog):
    caplog.set_level(logging.INFO)
    value = "__Host-sid=1; Path=/; Secure; HttpOnly"
    cookies, _ = through_addon("same-site", "http://api.example.com/login", value, times=2)
    assert cookies[0] == value
    notice = "cors: rule 'api': the cookie '__Host-sid' from api.example.com keeps Secure"
    assert caplog.text.count(notice) == 1
    assert "call the proxy over HTTPS: call https://api.example.com, where mitmproxy answers TLS" in caplog.text


def test_in_reverse_mode_the_secure_only_notice_names_the_proxy_s_https_address(caplog):
    caplog.set_level(logging.INFO)
    value = "__Secure-sid=1; Path=/; Secure"
    through_addon("same-site", "https://api.example.com/login", value, "http://localhost:8081")
    assert "call the proxy over HTTPS: in reverse mode open https://localhost:8081, where" in caplog.text


def test_a_secure_only_cookie_over_https_needs_no_notice(caplog):
    caplog.set_level(logging.INFO)
    cookies, _ = through_addon("same-site", "https://api.example.com/login", "__Host-sid=1; Path=/; Secure")
    assert cookies[0] == "__Host-sid=1; Path=/; Secure"
    assert "cors: rule 'api': the cookie" not in caplog.text


def test_keep_leaves_set_cookie_untouched():
    cookies, comment = through_addon("keep", "http://api.example.com/login", SESSION.decode())
    assert cookies == [SESSION.decode(), "plain=1"]
    assert "Set-Cookie" not in comment


# -- the recipe in the README, in Chromium ---------------------------------------------------------


LOGIN = """async (base) => {
  const login = await fetch(base + "/session/login", {method: "POST", credentials: "include"});
  const me = await fetch(base + "/session/me", {credentials: "include"});
  return [login.status, me.status, await me.text()];
}"""


@pytest.fixture(scope="module")
def chromium():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = Browser(p)  # no proxy: reverse mode is an ordinary server to the browser
        yield browser
        browser.close()


@pytest.mark.browser
@pytest.mark.parametrize(("mode", "me_status"), [("same-site", 200), ("keep", 401)])
def test_a_login_through_reverse_mode_on_localhost_keeps_its_session(chromium, tmp_path, mode, me_status):
    with Upstream("127.0.0.1") as page, Upstream("127.0.0.1") as api:
        rules = tmp_path / "rules.toml"
        rules.write_text(LOGIN_RULES.format(api=api.port, page=page.port, mode=mode))
        proxy = Mitmdump(rules, tmp_path / "confdir", "--mode", f"reverse:http://127.0.0.1:{api.port}").start()
        try:
            chromium.context.clear_cookies()  # cookies for localhost go to every port
            chromium.open(f"http://localhost:{page.port}/page")
            login, me, body = chromium.page.evaluate(LOGIN, f"http://localhost:{proxy.port}")
        finally:
            proxy.stop()
    assert login == 200
    assert me == me_status, body  # "keep": the cookie for api.example.com is refused on localhost
    if me_status == 200:
        assert "sid=s3cret" in json.loads(body)["cookie"].split("; ")
