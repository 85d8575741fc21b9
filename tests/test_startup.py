"""What the addon says once the proxy runs (corsaddon/startup.py): the warning about a proxy open to
the network fires exactly when some mode listens on every interface, as mitmproxy decides it (the
mode's own address, else --listen-host)."""

from __future__ import annotations

import logging
import re
import subprocess
import threading

import pytest
from mitmproxy.test import taddons

from corsaddon.startup import is_every_interface, log_startup_hints

from .proxy import LOOPBACK_GUARD, MITMDUMP, ROOT, free_port

OPEN = "listens on all network interfaces"
EAGER = "cors: connection_strategy is eager"


@pytest.fixture
def warns(caplog):
    """warns(mode, listen_host, **options): whether the startup hints warn of a proxy open to the network."""
    with taddons.context() as tctx:

        def check(mode: list[str], listen_host: str = "", **options) -> bool:
            caplog.clear()
            tctx.options.update(**{"mode": mode, "listen_host": listen_host, "server": True, **options})
            with caplog.at_level(logging.INFO, logger="corsaddon.startup"):
                log_startup_hints()
            return OPEN in caplog.text

        yield check


def test_a_mode_with_its_own_loopback_address_does_not_warn(warns):
    assert not warns(["regular@127.0.0.1:8080"])
    assert not warns(["regular@::1:8080"], "127.0.0.1")
    assert not warns(["regular@localhost:8080", "reverse:http://127.0.0.1:9@127.0.0.1:8081"])


def test_a_mode_without_an_address_and_no_listen_host_warns(warns):
    assert warns(["regular"])
    assert warns(["regular@8080"])
    assert warns(["regular@127.0.0.1:8080", "reverse:http://127.0.0.1:9@8081"])  # the second one


def test_a_mode_naming_every_interface_warns_whatever_listen_host_says(warns):
    assert warns(["reverse:http://x@0.0.0.0:8080"], "127.0.0.1")
    assert warns(["regular@:::8080"], "127.0.0.1")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "0"])
def test_listen_host_naming_every_interface_warns(warns, host):
    assert warns(["regular"], host)


def test_listen_host_loopback_does_not_warn(warns):
    assert not warns(["regular"], "127.0.0.1")
    assert not warns(["regular", "reverse:http://127.0.0.1:9@8081"], "127.0.0.1")


def test_modes_that_open_no_socket_and_no_server_do_not_warn(warns):
    assert not warns(["local"])  # the local redirector listens on no interface
    assert not warns(["regular"], server=False)  # --no-server


def test_every_interface_is_any_spelling_of_the_unspecified_address():
    assert all(map(is_every_interface, ["", "0.0.0.0", "::", "::0", "0:0:0:0:0:0:0:0", "0"]))
    assert not any(map(is_every_interface, ["127.0.0.1", "::1", "localhost", "192.168.1.2", "[::]", "a\0b"]))


def test_mitmdump_with_a_mode_on_loopback_and_no_listen_host_does_not_warn(tmp_path):
    """Run as the issue reports it: `mitmdump --mode regular@127.0.0.1:PORT`, no --listen-host."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nhosts = ["api.example.com"]\n')
    port = free_port()
    command = [MITMDUMP, "-s", str(ROOT / "cors_addon.py"), "-s", str(LOOPBACK_GUARD),
               "--mode", f"regular@127.0.0.1:{port}", "--set", f"confdir={tmp_path}",
               "--set", f"cors_rules={rules}", "--set", "connection_strategy=eager"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = threading.Timer(60, process.kill)  # a mitmdump that hangs silently ends the loop below
    deadline.start()
    try:
        assert process.stdout
        for line in process.stdout:  # until the hints are logged: the warning would come right after
            lines.append(line)
            if EAGER in line:
                break
    finally:
        deadline.cancel()
        process.terminate()
        try:
            rest, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
    output = "".join(lines) + rest
    assert EAGER in output, output  # the startup hints ran
    assert re.search(rf"listening at .*127\.0\.0\.1:{port}\b", output), output
    assert OPEN not in output, output
