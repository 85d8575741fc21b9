"""Bad input: odd requests, odd upstream responses and broken rules files. Nothing raises out of
a hook, nothing malformed reaches a response header, and the rules in force are never lost."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys

import httpx
import pytest

from corsaddon.addon import CorsAddon
from corsaddon.parsing import RulesError, parse
from corsaddon.rulesfile import compile_filter, read_rules

from .certs import make_server_cert
from .flows import LOCAL, make_flow, run_hooks, upstream_response
from .nginx import start_nginx
from .proxy import ROOT, Mitmdump, fetch, free_port
from .upstream import Upstream

RULE = parse('[[rules]]\nname = "api"\nhosts = ["api.example.com"]\nexpose_headers = "*"\n', compile_filter)


def run(fields, method="OPTIONS", upstream_fields=((b"Content-Type", b"text/plain"),)):
    addon = CorsAddon()
    addon.put_in_force(RULE)
    flow = make_flow(method, "https://api.example.com/x", [(b"Host", b"api.example.com"), *fields])
    response = upstream_response(200, (), b"ok")
    response.headers.fields = tuple(upstream_fields)
    return run_hooks(addon, flow, response)


def assert_clean(flow):
    for name, value in flow.response.headers.fields:
        assert b"\r" not in value and b"\n" not in value and b"\0" not in value, (name, value)


BIG = b"a" * 65536


@pytest.mark.parametrize(
    "fields",
    [
        [(b"Origin", b"")],
        [(b"Origin", b"http://localhost:" + BIG)],
        [(b"Origin", "http://bücher.example".encode())],
        [(b"Origin", b"http://localhost:3000\r\nSet-Cookie: a=b")],
        [(b"Origin", b"http://localhost:3000\x00")],
        [(b"Origin", LOCAL.encode()), (b"Origin", LOCAL.encode())],
        [(b"Origin", b"localhost:3000")],
    ],
    ids=["empty", "64KB", "non-ascii", "crlf", "nul", "repeated", "no-scheme"],
)
def test_malformed_origins_are_disallowed_and_the_flow_passes_untouched(fields):
    flow = run([*fields, (b"Access-Control-Request-Method", b"GET")])
    assert flow.response.status_code == 200  # went upstream: not answered, not blocked
    assert flow.response.headers.fields == ((b"Content-Type", b"text/plain"),)


@pytest.mark.parametrize(
    "method, requested",
    [
        (b"", b""),
        (BIG, BIG),
        ("PÜT".encode(), "x-ü".encode()),
        (b"PUT\r\nSet-Cookie: a=b", b"x-a\r\nSet-Cookie: a=b"),
        (b"PUT\x00", b"x-a\x00"),
        (b"PUT DELETE", b"x-a,;,x-b"),
    ],
    ids=["empty", "64KB", "non-ascii", "crlf", "nul", "malformed"],
)
def test_malformed_preflight_values_are_answered_without_being_reflected(method, requested):
    flow = run(
        [
            (b"Origin", LOCAL.encode()),
            (b"Access-Control-Request-Method", method),
            (b"Access-Control-Request-Headers", requested),
        ]
    )
    assert flow.response.status_code == 204
    assert_clean(flow)
    assert "Access-Control-Allow-Methods" not in flow.response.headers
    assert "Access-Control-Allow-Headers" not in flow.response.headers
    assert flow.response.headers["Access-Control-Allow-Origin"] == LOCAL


def test_missing_preflight_method_means_not_a_preflight():
    flow = run([(b"Origin", LOCAL.encode())])
    assert flow.response.status_code == 200
    assert flow.response.headers["Access-Control-Allow-Origin"] == LOCAL


@pytest.mark.parametrize(
    "upstream",
    [
        [(b"Access-Control-Allow-Origin", b"*"), (b"Access-Control-Allow-Origin", b"*")],
        [(b"Access-Control-Allow-Origin", b"")],
        [(b"access-control-allow-origin", b"\xff\xfe"), (b"ACCESS-CONTROL-MAX-AGE", b"-1")],
        [(b"Vary", b""), (b"Vary", b",,"), (b"vary", b"Cookie")],
        [(b"Vary", b"*")],
    ],
    ids=["repeated", "empty", "malformed", "odd-vary", "vary-star"],
)
def test_odd_upstream_cors_and_vary_headers_are_replaced_cleanly(upstream):
    flow = run([(b"Origin", LOCAL.encode())], method="GET", upstream_fields=upstream)
    headers = flow.response.headers
    assert headers.get_all("Access-Control-Allow-Origin") == [LOCAL]
    assert {k for k in headers if k.lower().startswith("access-control-")} <= {
        "Access-Control-Allow-Origin",
        "Access-Control-Expose-Headers",
    }
    assert "access-control" not in headers.get("Access-Control-Expose-Headers", "").lower()
    vary = ", ".join(headers.get_all("Vary"))
    assert "origin" in vary.lower() or vary == "*"
    assert vary.lower().count("origin") <= 1


def test_a_thousand_response_headers():
    upstream = [(f"X-H{i}".encode(), b"v") for i in range(1000)]
    flow = run([(b"Origin", LOCAL.encode())], method="GET", upstream_fields=upstream)
    exposed = flow.response.headers["Access-Control-Expose-Headers"].split(", ")
    assert len(exposed) == 1000 and exposed[0] == "X-H0"
    assert len(flow.response.headers.fields) == 1000 + 3  # Allow-Origin, Expose-Headers, Vary


def test_oversized_and_repeated_headers_through_a_real_proxy(tmp_path):
    rules = tmp_path / "rules.toml"
    with Upstream() as upstream:
        rules.write_text(f'[[rules]]\nhosts = ["127.0.0.1:{upstream.port}"]\n')
        proxy = Mitmdump(rules, tmp_path / "conf").start()
        try:
            url = f"http://127.0.0.1:{upstream.port}/x"
            big = fetch("OPTIONS", url, {"Origin": LOCAL, "Access-Control-Request-Headers": "x" * 65536,
                                         "Access-Control-Request-Method": "PUT"}, proxy=proxy.port)  # fmt: skip
            assert big.status == 204  # answered by the addon (the API itself would say 431)
            assert big.get("Access-Control-Allow-Origin") == LOCAL and big.get("Access-Control-Allow-Headers") is None
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:  # two Origin headers
                s.sendall(
                    f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {LOCAL}\r\nOrigin: {LOCAL}\r\n\r\n".encode()
                )
                head = s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200") and b"Access-Control-Allow-Origin" not in head
            ok = fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port)
            assert ok.status == 200 and ok.get("Access-Control-Allow-Origin") == LOCAL
        finally:
            proxy.stop()


@pytest.mark.skipif(
    not shutil.which("nginx"), reason="needs nginx (apt-get install nginx-light) for an HTTP/2 upstream"
)
def test_http2_upstream(tmp_path):
    ca, _ = make_server_cert(tmp_path / "certs", "127.0.0.1")
    port = free_port()
    nginx = start_nginx(
        tmp_path / "nginx",
        f"""
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {tmp_path}/certs/server.pem; ssl_certificate_key {tmp_path}/certs/server.pem;
        location / {{
            add_header Access-Control-Allow-Origin "*" always;
            add_header X-Proto $server_protocol always;
            default_type application/json; return 200 '{{"ok":true}}';
        }}
        """,
    )
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nhosts = ["127.0.0.1"]\nallow_credentials = true\n')
    proxy = Mitmdump(rules, tmp_path / "conf", "--mode", f"reverse:https://127.0.0.1:{port}",
                     "--set", f"ssl_verify_upstream_trusted_ca={ca}", lazy=False)  # fmt: skip
    try:
        proxy.start()
        # HTTP/2 end to end: connecting eagerly, mitmproxy learns that the API speaks HTTP/2 and offers it.
        trust = ssl.create_default_context(cafile=str(tmp_path / "conf" / "mitmproxy-ca-cert.pem"))
        with httpx.Client(http2=True, verify=trust) as client:
            reply = client.get(f"https://127.0.0.1:{proxy.port}/h2", headers={"Origin": LOCAL})
        assert reply.status_code == 200 and reply.http_version == "HTTP/2"
        assert reply.headers["X-Proto"] == "HTTP/2.0"
        assert reply.headers.get_list("Access-Control-Allow-Origin") == [LOCAL]
        assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    finally:
        proxy.stop()
        nginx.terminate()
        nginx.wait(10)


def test_a_directory_is_not_a_rules_file(tmp_path):
    with pytest.raises(RulesError) as caught:
        read_rules(str(tmp_path))
    assert str(caught.value) == f"{tmp_path}: cannot read the rules file: Is a directory"


def test_an_unreadable_rules_file_is_a_clear_error(tmp_path):
    """Permission denied, as a user meets it. Root reads any file, so as root the glue runs
    without the capabilities that allow that (the checkout stays readable: root owns it)."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nhosts = ["a"]\n')
    path.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv (util-linux) to run without root's file capabilities")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
    code = (
        "import sys\nfrom corsaddon.rulesfile import read_rules\n"
        "try:\n    read_rules(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)"
    )
    out = subprocess.run([*prefix, sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.stdout.strip() == f"RulesError {path}: cannot read the rules file: Permission denied", out
