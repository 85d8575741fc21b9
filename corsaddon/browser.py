"""A browser that goes through the proxy: `make browser` and the command `cors.browser`.

The browser gets a fresh temporary profile (removed when it exits) whose only
settings are the proxy, loopback through the proxy too, and trust in mitmproxy's
CA for this profile alone (Chrome family: the CA's SPKI hash on the command line;
Firefox: the CA imported into the profile with NSS's certutil). The user's own
profile, the system proxy and the system certificate store are never touched.
Running it, showing why it failed and cleaning up after it: browserprocess.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import command, ctx
from mitmproxy.certs import CertStore
from mitmproxy.proxy.mode_specs import ProxyMode, RegularMode

from .browserprocess import BrowserProcess, StopSignals
from .findbrowser import BrowserError, Found, find_browser
from .startup import is_every_interface

logger = logging.getLogger(__name__)

CA_BASENAME = "mitmproxy"  # mitmproxy's CONF_BASENAME: its CA is <confdir>/mitmproxy-ca-cert.pem
CA_KEY_SIZE = 2048  # mitmproxy's default key_size, used when the CA is created here first

CHROME_QUIET = ("--no-first-run", "--no-default-browser-check", "--disable-search-engine-choice-screen")
NO_SANDBOX_NOTE = (
    "running as root, so the browser gets --no-sandbox (Chrome-family browsers refuse to start as root "
    "without it); acceptable for this throwaway development profile, not for everyday browsing"
)
FIREFOX_PREFS = {
    "network.proxy.type": 1,
    "network.proxy.share_proxy_settings": True,
    "network.proxy.no_proxies_on": "",
    "network.proxy.allow_hijacking_localhost": True,  # else localhost never goes through the proxy
    "browser.shell.checkDefaultBrowser": False,
    "browser.aboutwelcome.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "toolkit.telemetry.reportingpolicy.firstRun": False,
}


def ca_certificate(confdir: str | Path) -> Path:
    """mitmproxy's CA certificate in `confdir`, created first (as mitmproxy does) if it does not exist."""
    confdir = Path(confdir).expanduser()
    path = confdir / f"{CA_BASENAME}-ca-cert.pem"
    if not path.exists():
        try:
            CertStore.from_store(confdir, CA_BASENAME, CA_KEY_SIZE)
        except (OSError, ValueError) as e:
            raise BrowserError(f"cannot create mitmproxy's CA in {confdir}: {e}") from None
    return path


def spki_hash(certificate: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes."""
    try:
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError) as e:
        raise BrowserError(f"cannot read mitmproxy's CA certificate {certificate}: {e}") from None
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chrome_command(
    found: Found, profile: str, host: str, port: int, spki: str, url: str, no_sandbox: bool = False
) -> list[str]:
    return [
        *found.command,
        f"--user-data-dir={profile}",
        f"--proxy-server=http://{host}:{port}",
        "--proxy-bypass-list=<-loopback>",  # Chromium's default bypasses loopback: the local APIs too
        f"--ignore-certificate-errors-spki-list={spki}",  # honoured only with --user-data-dir
        *CHROME_QUIET,
        *(["--no-sandbox"] if no_sandbox else []),
        url,
    ]


def running_as_root() -> bool:
    """Root, where there is such a thing (containers, dev containers and WSL often run as root)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def firefox_command(found: Found, profile: str, host: str, port: int, ca: Path, url: str) -> tuple[list[str], str]:
    """The command, after writing the profile; and a line to show when the CA could not be imported."""
    prefs = {**FIREFOX_PREFS, "network.proxy.http": host, "network.proxy.http_port": port,
             "network.proxy.ssl": host, "network.proxy.ssl_port": port}  # fmt: skip
    lines = (f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in prefs.items())
    Path(profile, "user.js").write_text("\n".join(lines) + "\n")
    return [*found.command, "-profile", profile, "-no-remote", "-new-instance", url], _import_ca(profile, ca)


def _import_ca(profile: str, ca: Path) -> str:
    certutil = shutil.which("certutil")
    if certutil is None:
        return (
            "NSS's certutil is not installed, so Firefox will not trust mitmproxy's CA and HTTPS APIs will show "
            "certificate errors; install it (Debian/Ubuntu: apt install libnss3-tools; Fedora: dnf install nss-tools; "
            "macOS: brew install nss) and start the browser again"
        )
    db = f"sql:{profile}"
    for args in (["-N", "-d", db, "--empty-password"], ["-A", "-d", db, "-n", "mitmproxy", "-t", "C,,", "-i", str(ca)]):
        result = subprocess.run([certutil, *args], capture_output=True, text=True)
        if result.returncode != 0:
            return f"certutil could not import mitmproxy's CA into the profile: {result.stderr.strip()[:300]}"
    return ""


@dataclass
class Launched:
    run: BrowserProcess
    command: list[str]
    note: str  # "" or why a flag was added
    warning: str  # "" when all went as planned

    def failure(self, status: int) -> str:
        """The browser exited with `status` (not 0) by itself: that, and the last lines it printed."""
        name = Path(self.command[0]).name
        ended = f"was ended by signal {-status}" if status < 0 else f"exited with status {status}"
        tail = self.run.tail()
        if not tail:
            return f"{name} {ended} without printing anything"
        return f"{name} {ended}; its last lines of output:\n{textwrap.indent(tail, '  ')}"


def launch(choice: str, host: str, port: int, confdir: str | Path, url: str) -> Launched:
    """Start the browser on a fresh profile, through the proxy at host:port. Raises BrowserError."""
    found = find_browser(choice)
    ca = ca_certificate(confdir)
    no_sandbox = not found.firefox and running_as_root()
    run = BrowserProcess()
    try:
        if found.firefox:
            cmd, warning = firefox_command(found, str(run.profile), host, port, ca, url)
        else:
            cmd, warning = chrome_command(found, str(run.profile), host, port, spki_hash(ca), url, no_sandbox), ""
        run.start(cmd)
    except OSError as e:
        run.end(grace=0)
        raise BrowserError(f"cannot start {found.command[0]}: {e.strerror or e}") from None
    except BaseException:
        run.end(grace=0)
        raise
    return Launched(run, cmd, NO_SANDBOX_NOTE if no_sandbox else "", warning)


def proxy_listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """`make browser`: start the browser and wait until it is closed."""
    parser = argparse.ArgumentParser(prog="make browser", description="A browser through the proxy.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--browser", default="")
    parser.add_argument("--confdir", default="~/.mitmproxy")
    parser.add_argument("url", nargs="?", default="")
    args = parser.parse_args(argv)
    with StopSignals() as stop:  # from before the launch to after the cleanup
        if not proxy_listening(args.host, args.port):
            print(
                f"make browser: nothing listens on {args.host}:{args.port} yet: start the proxy with make run",
                flush=True,
            )
        try:
            launched = launch(args.browser, args.host, args.port, args.confdir, args.url or "about:blank")
        except BrowserError as e:
            print(f"make browser: {e}", file=sys.stderr)
            return 1
        print(f"make browser: started {shlex.join(launched.command)}", flush=True)
        if launched.note:
            print(f"make browser: {launched.note}", flush=True)
        if launched.warning:
            print(f"make browser: {launched.warning}", file=sys.stderr)
        try:
            return _wait_for(launched, stop)
        finally:
            if problem := launched.run.end(grace=10):
                print(f"make browser: {problem}", file=sys.stderr)


def _wait_for(launched: Launched, stop: StopSignals) -> int:
    """make browser's exit status: the browser's, after showing why it failed; 128 + the signal that came first."""
    status = launched.run.wait(stop=lambda: stop.received)
    if status is None:
        return 128 + stop.received
    if status != 0:
        print(f"make browser: {launched.failure(status)}", file=sys.stderr)
    return status if status >= 0 else 128 - status


class BrowserCommand:
    """`cors.browser [url] [browser]`: the same browser, from mitmproxy or mitmweb."""

    def __init__(self) -> None:
        self.launched: list[Launched] = []

    @command.command("cors.browser")
    def browser(self, url: str = "about:blank", browser: str = "") -> None:
        """Open a browser with its own temporary profile through this proxy, trusting mitmproxy's CA."""
        options = ctx.options
        try:
            host, port = regular_proxy_address(options.mode, options.listen_host, options.listen_port)
        except ValueError as e:
            logger.error(f"cors: cors.browser: {e}")
            return
        try:
            launched = launch(browser, host, port, options.confdir, url)
        except Exception as e:  # never the proxy's problem
            logger.error(f"cors: cors.browser: {e}")
            return
        self.launched.append(launched)
        logger.info(f"cors: started {shlex.join(launched.command)}")
        if launched.note:
            logger.info(f"cors: {launched.note}")
        if launched.warning:
            logger.warning(f"cors: {launched.warning}")
        threading.Thread(target=_watch, args=(launched,), daemon=True).start()

    def done(self) -> None:
        for launched in self.launched:
            launched.run.end(grace=5)
        self.launched.clear()


def regular_proxy_address(modes: Sequence[str], listen_host: str, listen_port: int | None) -> tuple[str, int]:
    """Where the browser reaches this mitmproxy as a proxy: its first regular mode, at the address
    mitmproxy gives it (`mode.listen_host(listen_host)`, `mode.listen_port(listen_port)`), on
    loopback when it listens everywhere."""
    for spec in modes:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError:  # mitmproxy refuses it at startup
            continue
        if isinstance(mode, RegularMode):
            host = mode.listen_host(listen_host)
            return "127.0.0.1" if is_every_interface(host) else host, mode.listen_port(listen_port) or 8080
    raise ValueError(
        f"mitmproxy runs as {', '.join(modes) or 'no proxy'}, not as a regular proxy, so a browser cannot use it "
        "as its proxy; add --mode regular (beside the other modes) or open the reverse proxy's address directly"
    )


def _watch(launched: Launched) -> None:
    """cors.browser's thread: wait for the browser, say why it failed, clean up after it."""
    status = launched.run.wait()
    if status != 0 and not launched.run.stopped:
        logger.error(f"cors: cors.browser: {launched.failure(status)}")
    if problem := launched.run.end(grace=5):
        logger.warning(f"cors: cors.browser: {problem}")


if __name__ == "__main__":
    sys.exit(main())
