"""Rule key upstream_tls_verify, through a real mitmdump to self-signed HTTPS APIs on loopback."""

from __future__ import annotations

import http.client
import json

import pytest

from .certs import make_self_signed
from .proxy import Reply
from .upstream import Upstream

PAGE = "http://localhost:3000"


def get(proxy: int, url: str) -> Reply:
    """GET an https:// URL through the proxy in absolute form (mitmproxy speaks TLS to the API)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=15)
    try:
        conn.request("GET", url, headers={"Origin": PAGE})
        response = conn.getresponse()
        return Reply(response, response.read())
    finally:
        conn.close()


@pytest.fixture
def self_signed_apis(tmp_path):
    tls = make_self_signed(tmp_path / "certs")
    with Upstream("127.0.0.1", tls=tls) as relaxed, Upstream("127.0.0.1", tls=tls) as strict:
        yield relaxed, strict


def rules(relaxed: int, strict: int) -> str:
    return f"""
[[rules]]
name = "dev api"
hosts = ["localhost:{relaxed}"]
upstream_tls_verify = false

[[rules]]
name = "strict api"
hosts = ["localhost:{strict}"]
"""


def test_a_self_signed_api_is_reached_under_a_rule_with_upstream_tls_verify_false(start_proxy, self_signed_apis):
    relaxed, strict = self_signed_apis
    proxy = start_proxy(rules(relaxed.port, strict.port))
    reply = get(proxy.port, f"https://localhost:{relaxed.port}/data")
    assert reply.status == 200
    assert json.loads(reply.body)["path"] == "/data"
    assert reply.get("access-control-allow-origin") == PAGE
    assert "ssl_insecure" not in proxy.output


def test_a_self_signed_api_without_the_key_is_refused_and_both_fixes_are_named(start_proxy, self_signed_apis):
    relaxed, strict = self_signed_apis
    proxy = start_proxy(rules(relaxed.port, strict.port))
    first = get(proxy.port, f"https://localhost:{strict.port}/data")
    assert first.status == 502  # mitmproxy's own error page: no hook sees it
    assert strict.recorder.requests == []
    line = proxy.wait_for_log(rf"cors: mitmproxy does not trust the certificate of localhost:{strict.port}")
    assert "Certificate verify failed: self-signed certificate" in line
    assert "set upstream_tls_verify = false in the rule for localhost" in line
    assert "--set ssl_verify_upstream_trusted_ca=PATH" in line
    assert "cannot reach" not in line

    second = get(proxy.port, f"https://localhost:{strict.port}/data")
    assert second.status == 502
    assert second.get("access-control-allow-origin") == PAGE  # readable by the page
    text = second.body.decode()
    assert text.startswith(
        f"cors-addon: mitmproxy does not trust the certificate of localhost:{strict.port}: "
        "certificate not trusted: self-signed certificate."
    )
    assert "set upstream_tls_verify = false in the rule for localhost" in text
    assert "--set ssl_verify_upstream_trusted_ca=PATH" in text
    assert strict.recorder.requests == []

    # the other rule's host is still accepted: the relaxation is per host
    assert get(proxy.port, f"https://localhost:{relaxed.port}/data").status == 200


def test_upstream_tls_verify_takes_effect_on_reload(start_proxy, self_signed_apis, tmp_path):
    relaxed, strict = self_signed_apis
    proxy = start_proxy(rules(relaxed.port, strict.port).replace("upstream_tls_verify = false", ""))
    assert get(proxy.port, f"https://localhost:{relaxed.port}/a").status == 502
    mark = proxy.mark()
    proxy.rules.write_text(rules(relaxed.port, strict.port))
    proxy.wait_for_log(r"cors: loaded .*rules\.toml", after=mark)
    reply = get(proxy.port, f"https://localhost:{relaxed.port}/b")
    assert reply.status == 200
    assert reply.get("access-control-allow-origin") == PAGE
