"""Chrome's Local Network Access (enforced since Chrome 142), in real Chromium.

A page on a public origin that calls an API on loopback is refused ("Permission was denied for this
request to access the `loopback` address space"), which developers take for a CORS error. Through
the profile `make browser` starts, the same call works: a request that goes through a proxy is not
placed in the loopback address space. Reverse mode does not help, because there the browser itself
connects to loopback.

The public page is https://preview.example.com, served through the proxy only: mitmproxy's
--map-remote sends it to a page server on 127.0.0.1, and a block list refuses every other name, so
nothing outside loopback is ever resolved or reached (Chromium's own resolver is closed too). The
page without the proxy is a page on 127.0.0.1 that Chromium is told to count as public
(--ip-address-space-overrides). The local-network permission is never granted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from corsaddon.browser import chrome_command
from corsaddon.findbrowser import Found

from .browser import CHROMIUM, Browser
from .certs import spki_hash
from .proxy import Mitmdump
from .upstream import Upstream

pytestmark = pytest.mark.browser

PUBLIC_ORIGIN = "https://preview.example.com"
# The README's recipe "A deployed frontend against your local API", as written there (API on port 8000).
RECIPE = """
[[rules]]
name = "local api for the deployed frontend"
hosts = ["localhost:8000", "127.0.0.1:8000"]
allow_origins = ["https://preview.example.com"]
allow_credentials = true
"""
# Chromium resolves no name itself: with the proxy it never needs to, without it only loopback is used.
CLOSED_RESOLVER = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
# Everything but the public page and loopback is refused by the proxy before it connects anywhere
# (Chromium's own background requests included). The block list runs before --map-remote.
ONLY_LOOPBACK = r"/!(~d ^localhost$ | ~d ^127\.0\.0\.1$ | ~d ^preview\.example\.com$)/444"
LOOPBACK_REFUSED = "Permission was denied for this request to access the `loopback` address space"
PERMISSION_STATE = """async () => {
  try { return (await navigator.permissions.query({name: "loopback-network"})).state; }
  catch (e) { return String(e); }
}"""
PRECONDITION_LOST = (
    "precondition lost: Chromium no longer refuses a public page's call to loopback without the proxy "
    "(or --ip-address-space-overrides stopped making the page public); the Local Network Access tests prove "
    "nothing now"
)


def recipe_for(port: int) -> str:
    """The recipe's rule with the API's real port in place of 8000."""
    assert RECIPE.count(":8000") == 2
    return RECIPE.replace(":8000", f":{port}")


def launcher_flags(proxy: Mitmdump) -> tuple[str, ...]:
    """The flags `make browser` starts Chromium with (corsaddon.browser.chrome_command), for this proxy:
    all but the executable, the profile and the URL, which Playwright supplies."""
    found = Found((CHROMIUM,), firefox=False)
    spki = spki_hash(proxy.confdir / "mitmproxy-ca-cert.pem")
    command = chrome_command(found, "PROFILE", "127.0.0.1", proxy.port, spki, "about:blank")
    assert command[: len(found.command)] == list(found.command), command
    flags = command[len(found.command) :]
    assert "--user-data-dir=PROFILE" in flags and flags[-1] == "about:blank", command
    return tuple(f for f in flags[:-1] if f != "--user-data-dir=PROFILE")


@pytest.fixture(scope="module")
def servers():
    """The deployed frontend's server and the local API, both on 127.0.0.1."""
    with Upstream("127.0.0.1") as page, Upstream("127.0.0.1") as api:
        yield {"page": page, "api": api}


@pytest.fixture(scope="module")
def proxy(servers, tmp_path_factory):
    """mitmdump with the addon on the recipe's rule; https://preview.example.com/ is the page server."""
    directory = tmp_path_factory.mktemp("proxy")
    rules = directory / "rules.toml"
    rules.write_text(recipe_for(servers["api"].port))
    page = f"http://127.0.0.1:{servers['page'].port}/"
    p = Mitmdump(
        rules,
        directory / "confdir",
        "--map-remote", rf"|^https://preview\.example\.com/|{page}",
        "--set", f"block_list={ONLY_LOOPBACK}",
    )  # fmt: skip
    try:
        yield p.start()
    finally:
        p.stop()


@pytest.fixture(scope="module")
def launched(playwright, proxy):
    """Chromium with the flags of `make browser`, on the public page served through the proxy."""
    b = Browser(playwright, args=(*launcher_flags(proxy), CLOSED_RESOLVER))
    console: list[str] = []
    b.page.on("console", lambda message: console.append(message.text))
    b.open(f"{PUBLIC_ORIGIN}/page")
    yield b, console
    b.close()


@pytest.fixture(scope="module")
def public_page(playwright, servers):
    """Chromium without a proxy on a page of 127.0.0.1 that it counts as public, and its console."""
    page_port = servers["page"].port
    b = Browser(playwright, args=(f"--ip-address-space-overrides=127.0.0.1:{page_port}=public", CLOSED_RESOLVER))
    console: list[str] = []
    b.page.on("console", lambda message: console.append(message.text))
    b.open(f"http://127.0.0.1:{page_port}/page")
    yield b, console
    b.close()


def assert_reached_loopback_only(proxy: Mitmdump) -> None:
    servers_reached = set(re.findall(r"server connect (\S+)", proxy.output))
    assert servers_reached and all(s.startswith(("127.0.0.1:", "localhost:")) for s in servers_reached), proxy.output
    assert "error establishing server connection" not in proxy.output


def assert_refused_for_loopback(result: dict, console: list[str], url: str, origin: str) -> None:
    """The fetch failed, and Chromium's console says it was Local Network Access."""
    if result != {"ok": False, "error": "TypeError: Failed to fetch"}:
        pytest.fail(f"{PRECONDITION_LOST}: fetch({url}) from {origin} gave {result}", pytrace=False)
    said = [line for line in console if f"Access to fetch at '{url}'" in line]
    expected = f"Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS policy: {LOOPBACK_REFUSED}."
    if expected not in said:
        pytest.fail(
            f"{PRECONDITION_LOST}: the call failed, but not for Local Network Access; expected the console line "
            f"{expected!r}, Chromium said {said or console}",
            pytrace=False,
        )


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_without_the_proxy_a_public_page_calling_the_local_api_is_refused_for_the_loopback_address_space(
    public_page, servers, host
):
    browser, console = public_page
    origin = f"http://127.0.0.1:{servers['page'].port}"
    path = f"/direct-{host}"
    url = f"http://{host}:{servers['api'].port}{path}"
    assert browser.page.evaluate("location.origin") == origin
    # The test never grants the permission; headless Chromium has no prompt to show, and denies.
    assert browser.page.evaluate(PERMISSION_STATE) != "granted"

    result = browser.fetch(f"{origin}/page", url, credentials="include")

    assert_refused_for_loopback(result, console, url, origin)
    # Refused before anything is sent: no Private Network Access preflight either, so there is nothing
    # for `allow_private_network` to answer.
    assert servers["api"].recorder.methods(path) == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_through_the_make_browser_profile_a_public_page_reads_the_local_api_with_credentials(
    launched, proxy, servers, host
):
    browser, console = launched
    path = f"/proxied-{host}"
    url = f"http://{host}:{servers['api'].port}{path}"
    assert browser.page.evaluate("[location.origin, isSecureContext]") == [PUBLIC_ORIGIN, True]

    result = browser.fetch(f"{PUBLIC_ORIGIN}/page", url, credentials="include")

    assert result["ok"], f"a public page through the make browser flags could not read {url}: {result}; {console}"
    assert result["status"] == 200
    assert json.loads(result["body"]) == {
        "method": "GET", "path": path, "origin": PUBLIC_ORIGIN, "status": 200, "cookie": None,
    }  # fmt: skip
    assert servers["api"].recorder.methods(path) == ["GET"]
    # It went through the addon and the recipe's rule, and the proxy reached nothing but loopback.
    rule = re.escape("(rule 'local api for the deployed frontend')")
    proxy.wait_for_log(
        rf"GET {re.escape(host)}:\d+{path}: CORS set for {re.escape(PUBLIC_ORIGIN)}: .*Credentials {rule}"
    )
    assert_reached_loopback_only(proxy)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_call_through_the_proxy_is_not_in_the_loopback_address_space_even_from_a_page_counted_public(
    playwright, servers, start_proxy, host
):
    """The page itself comes straight from 127.0.0.1 (not through the proxy) and counts as public: only
    the API call goes through the proxy, and that alone is what Local Network Access lets through."""
    page_port = servers["page"].port
    origin = f"http://127.0.0.1:{page_port}"
    rules = recipe_for(servers["api"].port).replace(f'["{PUBLIC_ORIGIN}"]', f'["{PUBLIC_ORIGIN}", "{origin}"]')
    proxy = start_proxy(rules, "--set", f"block_list={ONLY_LOOPBACK}")
    flags = launcher_flags(proxy)
    bypass = [f.split("=", 1)[1] for f in flags if f.startswith("--proxy-bypass-list=")]
    flags = (
        *(f for f in flags if not f.startswith("--proxy-bypass-list=")),
        "--proxy-bypass-list=" + ";".join([*bypass, f"127.0.0.1:{page_port}"]),  # the page: straight
        f"--ip-address-space-overrides=127.0.0.1:{page_port}=public",
        CLOSED_RESOLVER,
    )
    browser = Browser(playwright, args=flags)
    try:
        console: list[str] = []
        browser.page.on("console", lambda message: console.append(message.text))
        path = f"/public-page-{host}"
        url = f"http://{host}:{servers['api'].port}{path}"

        result = browser.fetch(f"{origin}/page?straight", url, credentials="include")

        assert result.get("status") == 200, f"{result}; {console}"
        assert json.loads(result["body"])["origin"] == origin
        proxy.wait_for_log(rf"GET {re.escape(host)}:\d+{path}: CORS set for {re.escape(origin)}")
        assert "page?straight" not in proxy.output  # the page did not come through the proxy
        assert_reached_loopback_only(proxy)
    finally:
        browser.close()


def test_a_preflighted_call_from_the_public_page_is_answered_by_the_proxy(launched, servers):
    browser, console = launched
    url = f"http://localhost:{servers['api'].port}/proxied-put"
    init = {"method": "PUT", "headers": {"Content-Type": "application/json"}, "body": "{}", "credentials": "include"}

    result = browser.fetch(f"{PUBLIC_ORIGIN}/page", url, **init)

    assert result.get("status") == 200, f"{result}; {console}"
    assert servers["api"].recorder.methods("/proxied-put") == ["PUT"]  # the OPTIONS was the proxy's


def test_reverse_mode_does_not_avoid_local_network_access(public_page, servers, start_proxy):
    """In reverse mode the page calls the proxy's own loopback address: that is refused the same way."""
    browser, console = public_page
    api = f"http://127.0.0.1:{servers['api'].port}"
    reverse = start_proxy(recipe_for(servers["api"].port), "--mode", f"reverse:{api}")
    origin = f"http://127.0.0.1:{servers['page'].port}"
    url = f"http://localhost:{reverse.port}/reverse"

    result = browser.fetch(f"{origin}/page", url, credentials="include")

    assert_refused_for_loopback(result, console, url, origin)
    assert servers["api"].recorder.methods("/reverse") == []


def test_the_rule_tested_here_is_the_readme_s_recipe():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert RECIPE.strip() in readme
