"""The tests' loopback guard (tests/loopback_guard.py) in a real mitmdump: a server connection that is not
on loopback is refused before it is attempted; loopback ones go through. Nothing here is ever sent
anywhere but loopback: 192.0.2.1 is TEST-NET-1 (never routed) and the guard refuses it unconnected."""

from __future__ import annotations

import pytest

from .loopback_guard import is_loopback
from .proxy import Mitmdump, fetch
from .upstream import Upstream


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("192.0.2.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("localhost.", False),
        ("a.localhost", False),
        ("2130706433", False),  # 127.0.0.1 to getaddrinfo, but a name to resolve: refused
        ("update.googleapis.com", False),
        ("", False),
    ],
)
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("with_addon", [False, True])
def test_a_server_connection_off_loopback_is_refused_before_it_is_attempted(tmp_path, with_addon):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nhosts = ["192.0.2.1:80", "api.example.com"]\n')
    proxy = Mitmdump(rules if with_addon else None, tmp_path / "confdir").start()
    try:
        with Upstream() as upstream:
            for host in ("127.0.0.1", "localhost"):  # loopback still goes through
                assert fetch("GET", f"http://{host}:{upstream.port}/x", proxy=proxy.port).status == 200
        for url, shown in (
            ("http://192.0.2.1:80/", "192.0.2.1:80"),
            ("http://api.example.com:80/", "api.example.com:80"),  # a name: refused unresolved
        ):
            reply = fetch("GET", url, proxy=proxy.port)
            assert reply.status == 502, (reply.status, reply.body)
            proxy.wait_for_log(rf"loopback guard: refused a connection to {shown} \(not on loopback\)")
            proxy.wait_for_log(rf"server connection to {shown} killed before connect: refused by the tests' loopback")
        fetch("GET", "http://192.0.2.1:80/again", proxy=proxy.port)
    finally:
        proxy.stop()
    output = proxy.output
    assert output.count("loopback guard: refused a connection to 192.0.2.1:80") == 1, output  # once per host
    assert "server connect 192.0.2.1" not in output and "server connect api.example.com" not in output, output
    assert "error establishing server connection" not in output, output  # never attempted
