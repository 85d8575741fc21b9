"""Rule key `cookies`: the Set-Cookie rewrite (pure), the hook, and a login through reverse mode in Chromium."""

from __future__ import annotations

import json

import pytest
from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon
from corsaddon.cookies import SessionCookies
from corsaddon.parsing import parse
from corsaddon.rulesfile import compile_filter
from corsaddon.schema import Cookies
from corsaddon.setcookie import is_local_host, rewrite

from .browser import Browser, require_chromium
from .flows import LOCAL, make_flow, run_hooks, upstream_response
from .proxy import Mitmdump
from .upstream import Upstream

SESSION = b"sid=s3cret; Domain=api.example.com; Path=/; Secure; HttpOnly; SameSite=Lax"


def test_same_site_drops_domain_and_keeps_secure_where_the_browser_keeps_it():
    assert (
        rewrite(SESSION, Cookies.SAME_SITE, secure_context=True)
        == b"sid=s3cret; Path=/; Secure; HttpOnly; SameSite=Lax"
    )


def test_same_site_drops_secure_on_plain_http_to_a_host_that_is_not_local():
    assert rewrite(SESSION, Cookies.SAME_SITE, secure_context=False) == b"sid=s3cret; Path=/; HttpOnly; SameSite=Lax"


def test_same_site_without_secure_drops_samesite_none_which_browsers_refuse_without_it():
    value = b"a=1; domain=.example.com; SECURE; samesite=None; Max-Age=60"
    assert rewrite(value, Cookies.SAME_SITE, secure_context=False) == b"a=1; Max-Age=60"
    assert rewrite(value, Cookies.SAME_SITE, secure_context=True) == b"a=1; SECURE; samesite=None; Max-Age=60"


def test_cross_site_sets_samesite_none_and_secure_once():
    assert rewrite(SESSION, Cookies.CROSS_SITE, secure_context=False) == (
        b"sid=s3cret; Domain=api.example.com; Path=/; HttpOnly; SameSite=None; Secure"
    )
    assert rewrite(b"b=2", Cookies.CROSS_SITE, secure_context=True) == b"b=2; SameSite=None; Secure"


def test_a_cookie_value_with_an_equals_sign_and_odd_bytes_is_kept_as_is():
    value = b"tok=a=b==\xff; Domain=x"
    assert rewrite(value, Cookies.SAME_SITE, secure_context=True) == b"tok=a=b==\xff"


def test_a_megabyte_set_cookie_is_rewritten_in_one_pass():
    value = b"a=1" + b"; Domain=x" * 100_000
    assert rewrite(value, Cookies.SAME_SITE, secure_context=True) == b"a=1"


@pytest.mark.parametrize(
    ("host", "local"),
    [("localhost", True), ("app.localhost", True), ("127.0.0.1", True), ("127.1.2.3", True), ("[::1]", True),
     ("::1", True), ("LOCALHOST.", True), ("api.example.com", False), ("10.0.0.2", False), ("localhost.evil", False)],
)  # fmt: skip
def test_local_hosts_are_those_browsers_treat_as_secure(host, local):
    assert is_local_host(host) is local


RULES = """
[[rules]]
name = "api"
hosts = ["api.example.com"]
cookies = "{mode}"
"""


def through_addon(mode: str, url: str, set_cookie: str):
    """The response's Set-Cookie fields after the addon and its SessionCookies ran, as mitmproxy orders them."""
    addon = CorsAddon()
    with taddons.context(addon) as tctx:
        tctx.options.cors_enabled = True
        addon.put_in_force(_ruleset(RULES.format(mode=mode)))
        flow = make_flow("GET", url, [("Origin", LOCAL)])
        flow.client_conn.timestamp_tls_setup = 1.0 if url.startswith("https:") else None  # how the browser came
        run_hooks(addon, flow, upstream_response(headers=[("Set-Cookie", set_cookie), ("Set-Cookie", "plain=1")]))
        next(a for a in addon.addons if isinstance(a, SessionCookies)).responseheaders(flow)
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


def test_keep_leaves_set_cookie_untouched():
    cookies, comment = through_addon("keep", "http://api.example.com/login", SESSION.decode())
    assert cookies == [SESSION.decode(), "plain=1"]
    assert "Set-Cookie" not in comment


# -- the recipe in the README, in Chromium ---------------------------------------------------------

LOGIN_RULES = """
[[rules]]
name = "api"
hosts = ["127.0.0.1:{api}"]
allow_origins = ["http://localhost:{page}"]
allow_credentials = true
cookies = "{mode}"
"""

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
