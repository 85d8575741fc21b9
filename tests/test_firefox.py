"""Real Firefox ESR (headless) through a real mitmdump with the addon: the login recipe of the README
in reverse mode, `make browser BROWSER=firefox` against a self-signed HTTPS API and an HTTP API, and
a credentialed, preflighted PUT. A page served by the test's collector makes the calls and reports
what its JavaScript saw (tests/firefox.py); every API is a real server on loopback."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .certs import make_self_signed
from .firefox import (
    QUIET_ENV,
    Collector,
    Firefox,
    ProcessGroup,
    proxy_prefs,
    require_certutil,
    require_firefox,
)
from .proxy import ROOT, Mitmdump
from .upstream import LOGIN_RULES, Upstream

pytestmark = pytest.mark.browser

MAKE = shutil.which("make") or "/usr/bin/make"
VENV = str(Path(sys.executable).parent.parent)
REPORT_TIMEOUT = 90  # seconds: a first start on a busy two-core machine


@pytest.fixture(autouse=True)
def firefox_installed():
    require_firefox()


def why_not(firefox_output, *proxies: Mitmdump, collector: Collector | None = None):
    """What to show when no report came: the browser's and the proxies' output."""

    def explain() -> str:
        parts = [f"Firefox said:\n{firefox_output()}"]
        parts += [f"mitmdump said:\n{p.output[-3000:]}" for p in proxies]
        if collector is not None and collector.refused:
            parts.append(f"requests for other hosts: {collector.refused[:20]}")
        return "\n".join(parts)

    return explain


# -- 1. the README's login recipe: reverse mode on localhost, cookies = "same-site" ------------------


LOGIN = """
  const base = "http://localhost:%d";
  const login = await call(base + "/session/login", {method: "POST", credentials: "include"});
  const me = await call(base + "/session/me", {credentials: "include"});
  return {login, me};
"""


@pytest.mark.parametrize(("mode", "me_status"), [("same-site", 200), ("keep", 401)])
def test_a_login_through_reverse_mode_on_localhost_keeps_its_session_in_firefox(tmp_path, mode, me_status):
    """The API sets `sid` with Domain=api.example.com; Secure. With same-site the cookie sticks to the
    proxy's localhost port and /session/me gets it back (200); kept as it is, Firefox refuses it (401)."""
    with Upstream("127.0.0.1") as api, Collector({}) as collector:
        rules = tmp_path / "rules.toml"
        rules.write_text(LOGIN_RULES.format(api=api.port, page=collector.port, mode=mode))
        proxy = Mitmdump(rules, tmp_path / "confdir", "--mode", f"reverse:http://127.0.0.1:{api.port}").start()
        try:
            collector.pages["/page"] = LOGIN % proxy.port
            # No proxy for the page and the API (the recipe needs none); anything else goes to the
            # collector, which refuses it.
            with Firefox(collector.url(), proxy_prefs(collector.port, localhost=False)) as firefox:
                report = collector.report(REPORT_TIMEOUT, why_not(firefox.output, proxy, collector=collector))
        finally:
            proxy.stop()
    assert report["login"]["ok"] and report["login"]["status"] == 200, report
    assert report["me"]["ok"], report
    assert report["me"]["status"] == me_status, report  # keep: the cookie for api.example.com is refused
    if me_status == 200:
        assert "sid=s3cret" in json.loads(report["me"]["body"])["cookie"].split("; ")


# -- 2. make browser BROWSER=firefox, as a user runs it --------------------------------------------

LAUNCHER_RULES = """
[[rules]]
name = "http api"
hosts = ["127.0.0.1:{http}"]
allow_origins = ["http://localhost:{page}"]
allow_credentials = true

[[rules]]
name = "self-signed api"
hosts = ["127.0.0.1:{https}"]
allow_origins = ["http://localhost:{page}"]
upstream_tls_verify = false
"""

LAUNCHER_PAGE = """
  const put = await call("http://127.0.0.1:%d/items/1", {
    method: "PUT", credentials: "include",
    headers: {"Content-Type": "application/json", "X-Custom": "1"}, body: '{"a": 1}',
  });
  const get = await call("https://127.0.0.1:%d/data", {});
  return {put, get};
"""


def test_make_browser_firefox_reaches_a_self_signed_https_api_and_an_http_api_through_the_proxy(start_proxy, tmp_path):
    """The launcher's own profile (proxy for http, https and localhost; mitmproxy's CA imported with
    certutil) lets the page read a credentialed PUT to an HTTP API without CORS and a GET to a
    self-signed HTTPS API under upstream_tls_verify = false; ended, it leaves no process and no profile."""
    require_certutil()
    tls = make_self_signed(tmp_path / "certs")
    with Upstream("127.0.0.1") as http_api, Upstream("127.0.0.1", tls=tls) as https_api, Collector({}) as collector:
        collector.pages["/page"] = LAUNCHER_PAGE % (http_api.port, https_api.port)
        rules = LAUNCHER_RULES.format(http=http_api.port, https=https_api.port, page=collector.port)
        proxy = start_proxy(rules)
        output = tmp_path / "make-browser.out"
        with output.open("w") as out:
            launcher = subprocess.Popen(
                [MAKE, "--no-print-directory", "browser", f"VENV={VENV}", f"PORT={proxy.port}",
                 f"URL={collector.url()}", "BROWSER=firefox", f"CONFDIR={proxy.confdir}"],
                cwd=ROOT, env={**os.environ, **QUIET_ENV}, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        group = ProcessGroup(launcher.pid)
        try:
            report = collector.report(REPORT_TIMEOUT, why_not(output.read_text, proxy))
        finally:
            left = group.end(launcher)  # SIGTERM to make's process group, as a terminal's Ctrl-C would
    said = output.read_text()
    assert not left, f"processes left after make browser ended (killed): {left}\n{said}"
    assert report["put"]["ok"] and report["put"]["status"] == 200, report
    assert json.loads(report["put"]["body"])["method"] == "PUT"
    assert report["get"]["ok"] and report["get"]["status"] == 200, report
    assert json.loads(report["get"]["body"])["path"] == "/data"
    assert https_api.recorder.last()[2]["origin"] == f"http://localhost:{collector.port}"
    started = re.search(r"make browser: started .*firefox\S* -profile (\S+)", said)
    assert started, said
    profile = Path(started.group(1))
    temporary = next((p for p in (profile, *profile.parents) if p.name.startswith("cors-addon-browser-")), None)
    assert temporary, f"the profile {profile} is not in a temporary directory cors-addon-browser-*"
    assert not temporary.exists(), f"{temporary} is left after make browser ended"


# -- 3. a credentialed, preflighted PUT, the preflight answered by the proxy -----------------------

PUT_RULES = """
[[rules]]
name = "api"
hosts = ["127.0.0.1:{api}"]
action = "inject"
allow_origins = ["http://localhost:{page}"]
allow_credentials = true
"""

PUT_PAGE = """
  return await call("http://127.0.0.1:%d/items/1", {
    method: "PUT", credentials: "include",
    headers: {"Content-Type": "application/json", "X-Custom": "1"}, body: '{"a": 1}',
  });
"""


def test_a_credentialed_preflighted_put_from_localhost_reads_its_answer_in_firefox(start_proxy, tmp_path):
    """A PUT with a JSON body and a custom header, credentials included, from http://localhost to an
    API without CORS on another origin: Firefox's preflight is answered by the proxy (the API never
    sees an OPTIONS), and the page reads the PUT's answer."""
    with Upstream("127.0.0.1") as api, Collector({}) as collector:
        collector.pages["/page"] = PUT_PAGE % api.port
        proxy = start_proxy(PUT_RULES.format(api=api.port, page=collector.port))
        with Firefox(collector.url(), proxy_prefs(proxy.port, localhost=True)) as firefox:
            report = collector.report(REPORT_TIMEOUT, why_not(firefox.output, proxy))
    assert report["ok"] and report["status"] == 200, report
    answer = json.loads(report["body"])
    assert answer["method"] == "PUT" and answer["origin"] == f"http://localhost:{collector.port}"
    assert api.recorder.methods("/items") == ["PUT"]  # the preflight never reached the API
    _, _, headers = api.recorder.last()
    assert headers["x-custom"] == "1" and headers["content-type"] == "application/json"
    proxy.wait_for_log(rf"OPTIONS \S*127\.0\.0\.1:{api.port}/items/1")  # Firefox did send one, to the proxy
