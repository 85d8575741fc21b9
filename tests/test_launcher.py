"""`make browser` and `cors.browser`: a stand-in browser records what it was started with,
and real headless Chromium, started by the same code, reaches an HTTPS API through the proxy."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mitmproxy.test import taddons

from corsaddon.addon import CorsAddon
from corsaddon.browser import BrowserCommand, regular_proxy_address

from .browser import CHROMIUM, FETCH, require_chromium
from .certs import make_server_cert
from .proxy import ROOT, free_port
from .support import MAKE, VENV, session_processes, wait_until
from .upstream import Upstream


def stand_in(directory: Path, name: str) -> Path:
    """An executable `name` that records its arguments (one per line) and a copy of its profile."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{directory}/args"\n'
        f'for a in "$@"; do case "$a" in --user-data-dir=*) echo "${{a#*=}}" > "{directory}/profile";; esac; done\n'
        f'[ "$1" = -profile ] && /bin/cp -r "$2" "{directory}/profile-copy" && echo "$2" > "{directory}/profile"\n'
        "exit 0\n"
    )
    path.chmod(0o755)
    return path


def make_browser(path: str, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAKE, "--no-print-directory", "browser", f"VENV={VENV}", *variables],
        cwd=ROOT, env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def independent_spki(cert: Path) -> str:
    """SPKI hash by the openssl command line (the launcher uses Python's cryptography)."""
    der = subprocess.run(
        f"openssl x509 -in '{cert}' -pubkey -noout | openssl pkey -pubin -outform der",
        shell=True, capture_output=True, check=True,
    ).stdout  # fmt: skip
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_make_browser_starts_the_first_chrome_family_browser_with_exactly_these_flags(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "chromium")
    confdir = tmp_path / "confdir"  # does not exist yet: the CA is created first
    done = make_browser(
        f"{bin_dir}:{os.environ['PATH']}", "PORT=18123", "URL=http://localhost:5173/", f"CONFDIR={confdir}"
    )
    assert done.returncode == 0, done.stderr
    profile = (bin_dir / "profile").read_text().strip()
    assert (bin_dir / "args").read_text().splitlines() == [
        f"--user-data-dir={profile}",
        "--proxy-server=http://127.0.0.1:18123",
        "--proxy-bypass-list=<-loopback>",
        f"--ignore-certificate-errors-spki-list={independent_spki(confdir / 'mitmproxy-ca-cert.pem')}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-search-engine-choice-screen",
        *(["--no-sandbox"] if os.geteuid() == 0 else []),  # as root (CI): Chromium refuses to start without it
        "http://localhost:5173/",
    ]
    assert ("make browser: running as root, so the browser gets --no-sandbox" in done.stdout) == (os.geteuid() == 0)
    assert profile.startswith(("/tmp/", os.environ.get("TMPDIR", "/tmp")))
    assert not os.path.exists(profile), "the temporary profile is removed when the browser exits"
    assert not os.path.exists(Path(profile).parent), "and the directory that held it and the browser's output"
    assert (confdir / "mitmproxy-ca.pem").exists()
    assert f"make browser: started {bin_dir}/chromium --user-data-dir=" in done.stdout
    assert "nothing listens on 127.0.0.1:18123 yet: start the proxy with make run" in done.stdout


def test_make_browser_without_a_browser_says_what_it_looked_for_and_how_to_set_browser(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = make_browser(str(empty), f"CONFDIR={tmp_path / 'confdir'}")
    assert done.returncode != 0
    assert (
        "make browser: no Chrome-family browser found; looked for Chromium (chromium, chromium-browser" in done.stderr
    )
    assert "Google Chrome (google-chrome" in done.stderr and "com.microsoft.Edge" in done.stderr
    assert "make browser BROWSER=/path/to/browser" in done.stderr


def test_make_browser_with_a_browser_that_does_not_exist_says_so(tmp_path):
    done = make_browser(os.environ["PATH"], "BROWSER=/no/such/browser", f"CONFDIR={tmp_path}")
    assert done.returncode != 0
    assert "make browser: BROWSER=/no/such/browser: no such browser (not an executable file" in done.stderr
    done = make_browser(os.environ["PATH"], "BROWSER=brave", f"CONFDIR={tmp_path}")
    assert "BROWSER=brave: Brave not found; looked for brave-browser, brave" in done.stderr


def test_make_browser_ignores_a_browser_variable_from_the_environment(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "chromium")
    done = subprocess.run(
        [MAKE, "--no-print-directory", "browser", f"VENV={VENV}", f"CONFDIR={tmp_path / 'c'}"],
        cwd=ROOT, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "BROWSER": "xdg-open"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"started {bin_dir}/chromium" in done.stdout


def test_firefox_gets_a_profile_with_the_proxy_for_http_https_and_localhost(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "firefox")
    done = make_browser(
        str(bin_dir), "BROWSER=firefox", "PORT=18124", "URL=http://localhost:3000/", f"CONFDIR={tmp_path}"
    )
    assert done.returncode == 0, done.stderr
    profile = (bin_dir / "profile").read_text().strip()
    assert (bin_dir / "args").read_text().splitlines() == [
        "-profile", profile, "-no-remote", "-new-instance", "http://localhost:3000/"
    ]  # fmt: skip
    prefs = (bin_dir / "profile-copy" / "user.js").read_text()
    for pref in (
        'user_pref("network.proxy.type", 1);',
        'user_pref("network.proxy.http", "127.0.0.1");',
        'user_pref("network.proxy.http_port", 18124);',
        'user_pref("network.proxy.ssl", "127.0.0.1");',
        'user_pref("network.proxy.ssl_port", 18124);',
        'user_pref("network.proxy.allow_hijacking_localhost", true);',
    ):
        assert pref in prefs
    # PATH holds only the stand-in: no certutil, so the launcher says what to install
    assert "NSS's certutil is not installed" in done.stderr and "libnss3-tools" in done.stderr
    assert not os.path.exists(profile)


@pytest.mark.skipif(not shutil.which("certutil"), reason="needs NSS's certutil (CI installs libnss3-tools)")
def test_firefox_profile_trusts_mitmproxys_ca_when_certutil_is_installed(tmp_path):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "firefox")
    done = make_browser(f"{bin_dir}:{os.environ['PATH']}", "BROWSER=firefox", f"CONFDIR={tmp_path}")
    assert done.returncode == 0, done.stderr
    assert "certutil" not in done.stderr
    listed = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{bin_dir / 'profile-copy'}"], capture_output=True, text=True, check=True
    )
    assert re.search(r"^mitmproxy\s+C,,\s*$", listed.stdout, re.MULTILINE), listed.stdout  # a trusted CA


def test_cors_browser_uses_the_running_proxys_address_and_confdir(tmp_path, monkeypatch, caplog):
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "chromium")
    monkeypatch.setenv("PATH", str(bin_dir))
    launcher = BrowserCommand()
    with taddons.context(launcher) as tctx:
        tctx.options.update(listen_host="0.0.0.0", listen_port=18125, confdir=str(tmp_path / "conf"))
        with caplog.at_level(logging.INFO):
            launcher.browser("http://localhost:3000/")
            launcher.launched[0].run.process.wait(10)
            launcher.done()
    args = (bin_dir / "args").read_text().splitlines()
    assert "--proxy-server=http://127.0.0.1:18125" in args and args[-1] == "http://localhost:3000/"
    assert (tmp_path / "conf" / "mitmproxy-ca-cert.pem").exists()
    assert "cors: started " in caplog.text
    assert not os.path.exists(args[0].partition("=")[2])


def test_a_failing_cors_browser_logs_one_line_and_the_proxy_goes_on(tmp_path, caplog):
    addon = CorsAddon()
    with taddons.context(addon) as tctx:
        tctx.options.update(confdir=str(tmp_path))
        with caplog.at_level(logging.INFO):
            tctx.command(addon.browser_command.browser, "about:blank", "/no/such/browser")
        assert "cors: cors.browser: BROWSER=/no/such/browser: no such browser" in caplog.text
        tctx.options.update(mode=["reverse:http://127.0.0.1:9"])
        caplog.clear()
        tctx.command(addon.browser_command.browser)
        assert "not as a regular proxy, so a browser cannot use it as its proxy; add --mode regular" in caplog.text


def test_the_proxy_address_for_the_browser_comes_from_the_first_regular_mode():
    assert regular_proxy_address(["regular"], "", None) == ("127.0.0.1", 8080)
    assert regular_proxy_address(["reverse:http://x@9000", "regular@8081"], "127.0.0.1", 8080) == ("127.0.0.1", 8081)
    assert regular_proxy_address(["regular@127.0.0.2:8082"], "", None) == ("127.0.0.2", 8082)


def test_the_proxy_address_is_read_as_mitmproxy_reads_the_mode():
    """ProxyMode.parse: mode names in any case, every spelling of "every interface" means loopback here,
    --listen-host and --listen-port when the mode names neither, and specs mitmproxy refuses are skipped."""
    assert regular_proxy_address(["reverse:http://x@9000", "Regular@0.0.0.0:8081"], "", None) == ("127.0.0.1", 8081)
    assert regular_proxy_address(["regular@:::8083"], "127.0.0.2", None) == ("127.0.0.1", 8083)
    assert regular_proxy_address(["regular"], "0", 8084) == ("127.0.0.1", 8084)
    assert regular_proxy_address(["regular@8085"], "127.0.0.2", 9000) == ("127.0.0.2", 8085)
    assert regular_proxy_address(["nonsense@1", "regular@99999", "regular"], "::1", None) == ("::1", 8080)
    with pytest.raises(ValueError, match="runs as upstream:http://x, not as a regular proxy"):
        regular_proxy_address(["upstream:http://x"], "", None)


# -- what the browser printed when it fails; the cleanup after it ------------------------------------


def script(directory: Path, name: str, body: str) -> Path:
    """An executable shell script `name`; in `body`, $profile is the profile it was given (either family)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in --user-data-dir=*) profile="${a#*=}";; esac; done\n'
        '[ "$1" = -profile ] && profile="$2"\n'
        f"echo $$ > '{directory}/pid'\n{body}\n"
    )
    path.chmod(0o755)
    return path


def running(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]) != "Z"
    except OSError:
        return False


def wait_for_file(path: Path, timeout: float = 30) -> str:
    return wait_until(lambda: path.exists() and path.read_text().strip(), timeout, message=f"{path} never written")


FAILS_AT_ONCE = """
echo "chromium: starting"
echo "[1:1:ERROR:zygote_host_impl_linux.cc(101)] Running as root without --no-sandbox is not supported." >&2
exit 1
"""


def test_a_browser_that_fails_at_once_shows_its_last_lines_on_make_browsers_stderr(tmp_path):
    bin_dir = tmp_path / "bin"
    script(bin_dir, "chromium", FAILS_AT_ONCE)
    done = make_browser(f"{bin_dir}:{os.environ['PATH']}", f"CONFDIR={tmp_path / 'conf'}")
    assert done.returncode != 0
    lead = "make browser: chromium exited with status 1; its last lines of output:\n"
    assert lead + "  chromium: starting\n  [1:1:ERROR:zygote_host_impl_linux.cc(101)] Running as root" in done.stderr
    assert "Error 1" in done.stderr  # make's own line comes after ours


@contextlib.contextmanager
def cors_browser_started(tmp_path, monkeypatch, caplog, body: str):
    """cors.browser run in mitmproxy (its log at INFO into caplog) on a stand-in chromium running
    `body`; yields the launcher and the stand-in's folder."""
    bin_dir = tmp_path / "bin"
    script(bin_dir, "chromium", body)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    launcher = BrowserCommand()
    with taddons.context(launcher) as tctx:
        tctx.options.update(confdir=str(tmp_path / "conf"))
        with caplog.at_level(logging.INFO):
            launcher.browser()
            yield launcher, bin_dir


def test_a_browser_that_fails_at_once_is_logged_by_cors_browser_as_one_error(tmp_path, monkeypatch, caplog):
    with cors_browser_started(tmp_path, monkeypatch, caplog, FAILS_AT_ONCE) as (launcher, _):
        run = launcher.launched[0].run
        wait_for_errors(caplog)
        launcher.done()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # also after the shutdown
    assert len(errors) == 1
    assert errors[0].startswith("cors: cors.browser: chromium exited with status 1; its last lines of output:\n")
    assert errors[0].endswith("\n  chromium: starting\n  [1:1:ERROR:zygote_host_impl_linux.cc(101)] Running as "
                              "root without --no-sandbox is not supported.")  # fmt: skip
    assert not run.directory.exists()


def wait_for_errors(caplog, timeout: float = 30) -> list[str]:
    """The error entries logged so far, once there is one (cors.browser's thread logs it)."""
    return wait_until(
        lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR],
        timeout,
        message=lambda: f"no error logged:\n{caplog.text}",
    )


def test_only_the_last_twenty_lines_of_a_long_failing_output_are_shown(tmp_path):
    bin_dir = tmp_path / "bin"
    script(bin_dir, "chromium", "head -c 1000000 /dev/zero | tr '\\0' x; i=0\n"
           'while [ $i -lt 5000 ]; do i=$((i+1)); echo "line $i"; done; exit 3')  # fmt: skip
    done = make_browser(f"{bin_dir}:{os.environ['PATH']}", f"CONFDIR={tmp_path / 'conf'}")
    assert done.returncode != 0
    shown = done.stderr.partition("its last lines of output:\n")[2].splitlines()
    assert [line for line in shown if line.startswith("  ")] == [f"  line {i}" for i in range(4981, 5001)]
    assert len(done.stderr) < 5000


def test_a_browser_that_exits_normally_leaves_make_browser_quiet(tmp_path):
    bin_dir = tmp_path / "bin"
    script(bin_dir, "chromium", "echo chatter on stdout; echo chatter on stderr >&2; exit 0")
    done = make_browser(f"{bin_dir}:{os.environ['PATH']}", f"CONFDIR={tmp_path / 'conf'}")
    assert done.returncode == 0, done.stderr
    assert "chatter" not in done.stdout + done.stderr
    assert "exited" not in done.stderr


def test_as_a_regular_user_chromium_gets_no_no_sandbox_flag(tmp_path):
    if os.geteuid() != 0:  # the flags test above already ran as this user
        pytest.skip("runs as root only: then it runs the launcher as nobody")
    shared = Path(tempfile.mkdtemp(prefix="cors-addon-test-"))  # pytest's tmp_path is closed to nobody
    try:
        shared.chmod(0o777)
        bin_dir = shared / "bin"
        stand_in(bin_dir, "chromium")
        bin_dir.chmod(0o777)
        # The interpreter may live where nobody cannot read (pyenv under /root): the launcher is imported
        # as root, then runs with nobody's effective user id, which is what it looks at.
        as_nobody = (
            "import os, sys, encodings.idna, corsaddon.browser as b\n"
            "os.setegid(65534); os.seteuid(65534); sys.exit(b.main())"
        )
        done = subprocess.run(
            [sys.executable, "-c", as_nobody, "--browser", str(bin_dir / "chromium"), "--confdir", str(shared / "c")],
            cwd=ROOT, env={**os.environ, "TMPDIR": str(shared)}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        args = (bin_dir / "args").read_text().splitlines()
        assert args[0].startswith(f"--user-data-dir={shared}/cors-addon-browser-")
        assert "--no-sandbox" not in args and "--no-sandbox" not in done.stdout
        assert "make browser: started" in done.stdout
    finally:
        shutil.rmtree(shared)


def test_processes_the_browser_leaves_behind_are_ended_before_its_profile_is_removed(tmp_path):
    """As Firefox's content processes can outlive the main process, still writing into the profile."""
    bin_dir = tmp_path / "bin"
    script(bin_dir, "chromium", f"""
echo "$profile" > '{bin_dir}/profile'
# touch, not `: >`: a failed redirection would end the shell once the profile is gone
(i=0; while :; do i=$((i+1)); touch "$profile/w-$i" 2>/dev/null; echo $i > '{bin_dir}/written'; sleep 0.01; done) &
echo $! > '{bin_dir}/writer'
while [ ! -s '{bin_dir}/written' ]; do sleep 0.01; done
exit 0""")  # fmt: skip
    done = make_browser(f"{bin_dir}:{os.environ['PATH']}", f"CONFDIR={tmp_path / 'conf'}")
    assert done.returncode == 0, done.stderr
    writer = int((bin_dir / "writer").read_text())
    assert not running(writer), "the writer the browser left behind is ended"
    assert not Path((bin_dir / "profile").read_text().strip()).parent.exists()


def test_make_browser_interrupted_kills_a_browser_that_ignores_sigterm_then_removes_its_profile(tmp_path):
    bin_dir = tmp_path / "bin"
    script(bin_dir, "chromium", f"""
trap '' TERM HUP INT
echo "$profile" > '{bin_dir}/profile'
i=0; while :; do i=$((i+1)); touch "$profile/written-$i" 2>/dev/null; sleep 0.01; done""")  # fmt: skip
    launcher = subprocess.Popen(
        [MAKE, "--no-print-directory", "browser", f"VENV={VENV}", f"CONFDIR={tmp_path / 'conf'}"],
        cwd=ROOT, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        profile = Path(wait_for_file(bin_dir / "profile"))
        sid = int(wait_for_file(bin_dir / "pid"))
        assert session_processes(sid), "the browser runs in a session of its own"
        os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C: the terminal signals make's process group
        _, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    assert launcher.returncode != 0
    assert session_processes(sid) == [], "the browser that ignored SIGTERM was killed, with all its processes"
    assert not profile.parent.exists(), "then its profile was removed"
    assert "exited" not in stderr and "could not remove" not in stderr, stderr


def test_cors_browser_ends_a_running_browser_when_mitmproxy_shuts_down_without_an_error(tmp_path, monkeypatch, caplog):
    body = f"echo \"$profile\" > '{tmp_path / 'bin'}/profile'; sleep 600 & wait"
    with cors_browser_started(tmp_path, monkeypatch, caplog, body) as (launcher, bin_dir):
        profile = Path(wait_for_file(bin_dir / "profile"))
        sid = int(wait_for_file(bin_dir / "pid"))
        assert session_processes(sid), "the browser runs in a session of its own"
        launcher.done()
    assert session_processes(sid) == []
    assert not profile.parent.exists()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- real Chromium, started by make browser ----------------------------------------------------------

RULES = """
[[rules]]
name = "tls api"
hosts = ["127.0.0.2"]
"""


@pytest.mark.browser
def test_make_browser_opens_chromium_that_reaches_an_https_api_through_the_proxy(start_proxy, tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    ca, tls = make_server_cert(tmp_path / "certs", "127.0.0.2")
    debug_port = free_port()
    wrapper = tmp_path / "bin" / "headless-chromium"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nexec "{CHROMIUM}" --headless --no-sandbox --disable-gpu '
        f'--remote-debugging-port={debug_port} "$@"\n'
    )
    wrapper.chmod(0o755)
    with Upstream("127.0.0.1") as page, Upstream("127.0.0.2", tls=tls) as api:
        proxy = start_proxy(RULES, "--set", f"ssl_verify_upstream_trusted_ca={ca}")
        page_url = f"http://localhost:{page.port}/page"
        launcher = subprocess.Popen(
            [MAKE, "--no-print-directory", "browser", f"VENV={VENV}", f"PORT={proxy.port}", f"URL={page_url}",
             f"BROWSER={wrapper}", f"CONFDIR={proxy.confdir}"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            with sync_playwright() as p:
                browser = connect(p, debug_port)
                tab = wait_for_page(browser, page_url)
                result = tab.evaluate(FETCH, [f"https://127.0.0.2:{api.port}/data", {}])
                browser.new_browser_cdp_session().send("Browser.close")
            output, _ = launcher.communicate(timeout=30)
        finally:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGTERM)
                launcher.wait()
    assert result["ok"], result
    assert result["status"] == 200 and '"path": "/data"' in result["body"]
    # readable cross-origin: the rule's CORS headers arrived, and no certificate error stopped it
    assert api.recorder.last()[2]["origin"] == f"http://localhost:{page.port}"
    assert launcher.returncode == 0, output
    profile = re.search(r"--user-data-dir=(\S+)", output).group(1)
    assert not os.path.exists(profile), "the temporary profile is removed when the browser exits"


def connect(playwright, port: int):
    deadline = time.monotonic() + 30
    while True:
        try:
            return playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for_page(browser, url: str):
    def tab():
        return next((t for c in browser.contexts for t in c.pages if t.url == url), None)

    found = wait_until(
        tab, 30, 0.2, message=lambda: f"no tab at {url}: {[t.url for c in browser.contexts for t in c.pages]}"
    )
    found.wait_for_load_state()
    return found
