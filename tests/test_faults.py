"""Upstream failures through a real mitmdump: the page gets a readable error, not a CORS failure."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading

from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon

from .certs import make_server_cert
from .flows import LOCAL
from .proxy import fetch, free_port
from .upstream import Upstream


def api_rule(hosts: str) -> str:
    return f'[[rules]]\nname = "api"\nhosts = [{hosts}]\n'


def test_unreachable_api_gives_a_readable_error_until_it_comes_back(start_proxy):
    port = free_port()  # nothing listens here yet
    proxy = start_proxy(api_rule(f'"127.0.0.1:{port}"'))
    url = f"http://127.0.0.1:{port}/users"

    first = fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port)
    assert first.status == 502 and first.get("Access-Control-Allow-Origin") is None  # mitmproxy's own page
    line = proxy.wait_for_log(rf"cors: mitmproxy cannot reach 127.0.0.1:{port}")
    assert "the addon answers its matched requests with a readable" in line

    second = fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port)
    assert second.status == 502
    assert second.get("Access-Control-Allow-Origin") == LOCAL  # so the page's JavaScript can read it
    assert f"could not reach 127.0.0.1:{port}: connection refused".encode() in second.body

    preflight = fetch("OPTIONS", url, {"Origin": LOCAL, "Access-Control-Request-Method": "PUT"}, proxy=proxy.port)
    assert preflight.status == 204  # answered locally as always

    with Upstream(port=port) as upstream:
        back = fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port)
        assert back.status == 200 and back.get("Access-Control-Allow-Origin") == LOCAL
        assert upstream.recorder.methods("/users") == ["GET"]
    proxy.wait_for_log(rf"cors: 127.0.0.1:{port} is reachable again")
    assert "replaced the CORS headers" not in proxy.output  # the addon's own answers are final


def test_a_healthy_api_costs_no_extra_connection(start_proxy):
    with Upstream() as upstream:
        proxy = start_proxy(api_rule(f'"127.0.0.1:{upstream.port}"'))
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for i in range(5):
            conn.request("GET", f"http://127.0.0.1:{upstream.port}/n{i}", headers={"Origin": LOCAL})
            reply = conn.getresponse()
            reply.read()
            assert reply.getheader("Access-Control-Allow-Origin") == LOCAL
        conn.close()
        assert upstream.connections == 1


def test_an_api_that_stops_answering_gives_504(start_proxy):
    port = free_port()
    proxy = start_proxy(api_rule(f'"127.0.0.1:{port}"'))
    url = f"http://127.0.0.1:{port}/slow"
    assert fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port).status == 502  # refused: now marked down
    # A listener whose accept queue is full: new connections are never completed.
    with socket.socket() as black_hole, socket.socket() as filler:
        black_hole.bind(("127.0.0.1", port))
        black_hole.listen(0)
        filler.connect(("127.0.0.1", port))
        reply = fetch("GET", url, {"Origin": LOCAL}, proxy=proxy.port)
    assert reply.status == 504 and reply.get("Access-Control-Allow-Origin") == LOCAL
    assert b"no answer within 3 s" in reply.body


def test_an_untrusted_certificate_through_connect_gives_a_readable_error(start_proxy, tmp_path):
    _, tls = make_server_cert(tmp_path / "certs", "127.0.0.2")  # mitmproxy is not told to trust it
    with Upstream("127.0.0.2", tls=tls) as upstream:
        proxy = start_proxy(api_rule('"127.0.0.2"'))
        client_tls = ssl.create_default_context(cafile=str(proxy.confdir / "mitmproxy-ca-cert.pem"))

        def get() -> http.client.HTTPResponse:
            conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, context=client_tls, timeout=10)
            conn.set_tunnel("127.0.0.2", upstream.port)
            conn.request("GET", "/secure", headers={"Origin": LOCAL})
            reply = conn.getresponse()
            reply.body = reply.read()
            conn.close()
            return reply

        assert get().status == 502
        line = proxy.wait_for_log(rf"cors: mitmproxy does not trust the certificate of 127.0.0.2:{upstream.port}")
        assert "(Certificate verify failed: unable to get local issuer certificate)" in line
        reply = get()
        assert reply.status == 502 and reply.getheader("Access-Control-Allow-Origin") == LOCAL
        assert b"certificate not trusted: unable to get local issuer certificate." in reply.body
        assert b"set upstream_tls_verify = false in the rule for 127.0.0.2" in reply.body


def test_slow_and_broken_upstreams_leave_other_flows_alone(start_proxy):
    """One upstream stalls, another resets mid-body; a third keeps answering meanwhile."""
    stall, reset = socket.socket(), socket.socket()
    for s in (stall, reset):
        s.bind(("127.0.0.1", 0))
        s.listen(5)
    stop = threading.Event()

    def serve_reset() -> None:
        while not stop.is_set():
            try:
                conn, _ = reset.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # RST in the middle of the body

    threading.Thread(target=serve_reset, daemon=True).start()
    with Upstream() as healthy:
        ports = [stall.getsockname()[1], reset.getsockname()[1], healthy.port]
        proxy = start_proxy(api_rule(", ".join(f'"127.0.0.1:{p}"' for p in ports)))
        stalled = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        stalled.request("GET", f"http://127.0.0.1:{ports[0]}/never", headers={"Origin": LOCAL})
        broken = fetch("GET", f"http://127.0.0.1:{ports[1]}/reset", {"Origin": LOCAL}, proxy=proxy.port)
        assert broken.status == 502  # mitmproxy's own error page, as without the addon
        assert b"peer closed connection without sending complete message body" in broken.body
        for i in range(20):
            reply = fetch("GET", f"http://127.0.0.1:{healthy.port}/ok{i}", {"Origin": LOCAL}, proxy=proxy.port)
            assert reply.status == 200 and reply.get("Access-Control-Allow-Origin") == LOCAL
        assert proxy.process.poll() is None
        stalled.close()
    stop.set()
    stall.close()
    reset.close()


async def test_listening_on_all_interfaces_is_warned_about(tmp_path, caplog):
    addon = CorsAddon()
    with taddons.context(addon) as tctx:
        tctx.options.add_option("listen_host", str, "", "")
        tctx.configure(addon, cors_rules=str(tmp_path / "none.toml"))
        addon.running()
        addon.done()
        assert "cors: mitmproxy listens on all network interfaces" in caplog.text
        caplog.clear()
        tctx.options.listen_host = "127.0.0.1"
        addon.running()
        addon.done()
        assert "all network interfaces" not in caplog.text
