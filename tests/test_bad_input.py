"""Bad input: odd requests, odd upstream responses and broken rules files. Nothing raises out of
a hook, nothing malformed reaches a response header, and the rules in force are never lost."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import textwrap

import httpx
import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from corsaddon.addon import CorsAddon, compile_filter, read_rules
from corsaddon.rules import parse

from .certs import make_server_cert
from .proxy import ROOT, Mitmdump, fetch, free_port
from .upstream import Upstream

LOCAL = "http://localhost:3000"
RULE = parse('[[rules]]\nname = "api"\nhosts = ["api.example.com"]\nexpose_headers = "*"\n', compile_filter)


def run(fields, method="OPTIONS", upstream_fields=((b"Content-Type", b"text/plain"),)):
    addon = CorsAddon()
    addon.ruleset = RULE
    flow = tflow.tflow()
    flow.request = http.Request.make(method, "https://api.example.com/x", b"", [(b"Host", b"api.example.com"), *fields])
    flow.response = None
    addon.requestheaders(flow)
    addon.request(flow)
    if flow.response is None:
        flow.response = http.Response.make(200, b"ok")
        flow.response.headers.fields = tuple(upstream_fields)
    addon.responseheaders(flow)
    return flow


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
        (b"PUT DELETE", b"x-a,,x-b"),
    ],
    ids=["empty", "64KB", "non-ascii", "crlf", "nul", "malformed"],
)
def test_malformed_preflight_values_are_answered_without_being_reflected(method, requested):
    flow = run(
        [(b"Origin", LOCAL.encode()), (b"Access-Control-Request-Method", method), (b"Access-Control-Request-Headers", requested)]
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
        "Access-Control-Allow-Origin", "Access-Control-Expose-Headers"}
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
            assert big.status in (204, 400, 431)
            assert "x" * 100 not in (big.get("Access-Control-Allow-Headers") or "")
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:  # two Origin headers
                s.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {LOCAL}\r\nOrigin: {LOCAL}\r\n\r\n".encode())
                head = s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200") and b"Access-Control-Allow-Origin" not in head
            ok = fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port)
            assert ok.status == 200 and ok.get("Access-Control-Allow-Origin") == LOCAL
        finally:
            proxy.stop()


@pytest.mark.skipif(not shutil.which("nginx"), reason="needs nginx (apt-get install nginx-light) for an HTTP/2 upstream")
def test_http2_upstream(tmp_path):
    ca, _ = make_server_cert(tmp_path / "certs", "127.0.0.1")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        {"user root;" if os.geteuid() == 0 else ""}
        daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log crit;
        events {{}}
        http {{
            access_log off;
            client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
            fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
            server {{
                listen 127.0.0.1:{port} ssl http2;
                ssl_certificate {tmp_path}/certs/server.pem; ssl_certificate_key {tmp_path}/certs/server.pem;
                location / {{
                    add_header Access-Control-Allow-Origin "*" always;
                    add_header X-Proto $server_protocol always;
                    default_type application/json; return 200 '{{"ok":true}}';
                }}
            }}
        }}"""))
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)])
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nhosts = ["127.0.0.1"]\nallow_credentials = true\n')
    proxy = Mitmdump(rules, tmp_path / "conf", "--mode", f"reverse:https://127.0.0.1:{port}",
                     "--set", f"ssl_verify_upstream_trusted_ca={ca}", lazy=False)  # fmt: skip
    try:
        proxy.start()
        # HTTP/2 end to end: connecting eagerly, mitmproxy learns that the API speaks HTTP/2 and offers it.
        with httpx.Client(http2=True, verify=str(tmp_path / "conf" / "mitmproxy-ca-cert.pem")) as client:
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
    assert read_rules(str(tmp_path)) == f"{tmp_path}: cannot read the rules file: Is a directory"


@pytest.mark.skipif(not shutil.which("setpriv") or os.geteuid() != 0, reason="needs root and setpriv to drop to nobody")
def test_an_unreadable_rules_file_is_a_clear_error():
    directory = tempfile.mkdtemp(prefix="cors-unreadable-")
    os.chmod(directory, 0o755)
    try:
        readable, unreadable = os.path.join(directory, "ok.toml"), os.path.join(directory, "rules.toml")
        for path, mode in ((readable, 0o644), (unreadable, 0o600)):
            with open(path, "w") as f:
                f.write('[[rules]]\nhosts = ["a"]\n')
            os.chmod(path, mode)
        # The pure core, run as nobody by a Python that nobody may execute.
        code = (
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); from corsaddon.rules import parse_file\n"
            f"print(len(parse_file({readable!r}, None)))\n"
            f"try:\n    parse_file({unreadable!r}, None)\nexcept OSError as e:\n    print(e.strerror)"
        )
        out = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", code],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.stdout.split("\n")[:2] == ["1", "Permission denied"], out
    finally:
        shutil.rmtree(directory)
    # ...and the glue turns that into one line naming the file (here for a directory, which root cannot read either).
    assert read_rules(directory) is None  # gone: a missing file keeps the rules in force
