"""`cors.allow` and `cors.allow.flow`: the rule appended to the rules file in force, byte for byte after
the user's own bytes, written atomically; every refusal leaves the file exactly as it was."""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons import view
from mitmproxy.test import tflow

from corsaddon import rulesfile
from corsaddon.parsing import RulesError
from corsaddon.rulesfile import read_rules, rewrite_rules_file

from .flows import make_flow, run_hooks, upstream_response

PAGE = "http://localhost:5173"
HOST = "api.staging.acme.dev"
RULES = '[[rules]]\nname = "api"\nhosts = ["api.example.com"]\n'
STAMP = re.compile(rb"# added by cors\.allow \(cors-addon\) on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[^\r\n]*")
ADDED = b"# added by cors.allow (cors-addon) on TIME"


@pytest.fixture
def cors(addon_on_rules):
    """start(content=RULES, *other_addons): the addon on a rules file holding `content`."""
    return lambda content=RULES, *others: addon_on_rules(content, *others)


def allow(a, *args: str) -> str:
    """`cors.allow ARGS` as mitmproxy's console and REST API call it: strings, typed by the command."""
    return a.tctx.master.commands.call_strings("cors.allow", list(args))


def added(path: Path, before: bytes) -> bytes:
    """What the command appended to `before` (which must be the file's prefix), its time replaced by TIME."""
    after = path.read_bytes()
    assert after[: len(before)] == before
    return STAMP.sub(ADDED, after[len(before) :], count=1)


def block(host: str, name: str | None = None, extra: str = "", newline: str = "\n") -> bytes:
    lines = [ADDED.decode(), "[[rules]]", f'name = "{name or host}"', f'hosts = ["{host}"]', *extra.splitlines()]
    return (newline.join(lines) + newline).encode()


def matches(path: Path, host: str, port: int):
    """The rule the file as written gives a request to host:port (None: no rule)."""
    return read_rules(str(path)).match(((host, port),), "/v1/items", tflow.tflow())


def failing_call(a, url: str, cookie: bool = False) -> http.HTTPFlow:
    headers = [("Origin", PAGE)] + ([("Cookie", "sid=1")] if cookie else [])
    return run_hooks(a, make_flow("GET", url, headers), upstream_response())


# -- what is appended ---------------------------------------------------------------


def test_the_rule_is_appended_after_the_file_s_own_bytes_and_matches_the_host(cors, caplog):
    caplog.set_level(logging.INFO)
    a = cors()
    before = a.path.read_bytes()
    message = allow(a, HOST)
    assert message == f"cors: added a rule for {HOST} to {a.path}; it takes effect within a second"
    assert message in caplog.text
    assert added(a.path, before) == b"\n" + block(HOST)
    rule = matches(a.path, HOST, 443)
    assert (rule.name, [str(h) for h in rule.hosts], rule.allow_credentials) == (HOST, [HOST], False)
    assert matches(a.path, "api.example.com", 443).name == "api"  # the user's rule as it was
    assert matches(a.path, "other.acme.dev", 443) is None


def test_a_file_without_a_trailing_newline_gets_its_line_ended_then_a_blank_line(cors):
    a = cors(RULES.rstrip("\n").encode() + b"  # last line")
    before = a.path.read_bytes()
    allow(a, HOST)
    assert added(a.path, before) == b"\n\n" + block(HOST)
    assert matches(a.path, HOST, 443).name == HOST


def test_a_crlf_file_gets_crlf_lines(cors):
    a = cors(RULES.replace("\n", "\r\n").encode())
    before = a.path.read_bytes()
    allow(a, HOST, PAGE)
    assert added(a.path, before) == b"\r\n" + block(HOST, extra=f'allow_origins = ["{PAGE}"]', newline="\r\n")
    assert matches(a.path, HOST, 443).allow_origins == (PAGE,)


def test_a_crlf_file_without_a_trailing_newline(cors):
    a = cors(RULES.rstrip("\n").replace("\n", "\r\n").encode())
    before = a.path.read_bytes()
    allow(a, HOST)
    assert added(a.path, before) == b"\r\n\r\n" + block(HOST, newline="\r\n")


def test_a_file_of_comments_and_defaults_takes_the_first_rule(cors):
    text = '# my rules\n[defaults]\nallow_origins = ["https://app.acme.dev"]\n'
    a = cors(text)
    allow(a, HOST)
    assert added(a.path, text.encode()) == b"\n" + block(HOST)
    rule = matches(a.path, HOST, 443)
    assert rule.allow_origins == ("https://app.acme.dev",)  # [defaults] applies to it


def test_an_empty_file_gets_the_rule_alone(cors):
    a = cors("")
    allow(a, HOST)
    assert added(a.path, b"") == block(HOST)


def test_origins_given_become_its_allow_origins(cors):
    a = cors()
    before = a.path.read_bytes()
    allow(a, HOST, "http://localhost:3000", "https://*.acme.dev")
    extra = 'allow_origins = ["http://localhost:3000", "https://*.acme.dev"]'
    assert added(a.path, before) == b"\n" + block(HOST, extra=extra)
    assert matches(a.path, HOST, 443).allow_origins == ("http://localhost:3000", "https://*.acme.dev")


def test_allow_credentials_only_for_a_host_whose_failing_calls_carried_cookies(cors, caplog):
    a = cors()
    failing_call(a, f"https://{HOST}/v1/items", cookie=True)
    failing_call(a, "https://plain.acme.dev/v1/items", cookie=False)
    before = a.path.read_bytes()
    message = allow(a, HOST)
    assert message == (
        f"cors: added a rule for {HOST}, allow_credentials = true (the calls seen carried cookies) to {a.path}; "
        "it takes effect within a second"
    )
    with_cookies = block(HOST, extra="allow_credentials = true  # the calls seen carried cookies")
    assert added(a.path, before) == b"\n" + with_cookies
    assert matches(a.path, HOST, 443).allow_credentials is True
    middle = a.path.read_bytes()
    allow(a, "plain.acme.dev")
    allow(a, "unseen.acme.dev")
    assert added(a.path, middle).count(b"allow_credentials") == 0
    assert matches(a.path, "plain.acme.dev", 443).allow_credentials is False


def test_allow_credentials_for_a_host_with_a_port_seen_with_cookies(cors):
    a = cors()
    failing_call(a, "http://localhost:8000/v1/items", cookie=True)
    before = a.path.read_bytes()
    allow(a, "localhost:8000")
    expected = block("localhost:8000", extra="allow_credentials = true  # the calls seen carried cookies")
    assert added(a.path, before) == b"\n" + expected


def test_the_name_is_made_unique_when_a_rule_already_has_it_for_other_hosts(cors):
    text = RULES + f'\n[[rules]]\nname = "{HOST}"\nhosts = ["old.acme.dev"]\n'
    a = cors(text)
    allow(a, HOST)
    assert added(a.path, text.encode()) == b"\n" + block(HOST, name=f"{HOST} (2)")
    assert matches(a.path, HOST, 443).name == f"{HOST} (2)"
    assert matches(a.path, "old.acme.dev", 443).name == HOST


def test_the_name_counts_on_past_names_already_taken(cors):
    text = f'[[rules]]\nname = "{HOST}"\nhosts = ["a.dev"]\n\n[[rules]]\nname = "{HOST} (2)"\nhosts = ["b.dev"]\n'
    a = cors(text)
    allow(a, HOST)
    assert added(a.path, text.encode()) == b"\n" + block(HOST, name=f"{HOST} (3)")


@pytest.mark.parametrize(
    ("given", "written", "host", "port"),
    [
        ("localhost:8000", "localhost:8000", "localhost", 8000),
        ("[::1]:8000", "[::1]:8000", "::1", 8000),
        ("API.Staging.Acme.DEV", HOST, HOST, 443),
    ],
)
def test_a_host_with_a_port_an_ipv6_address_or_capitals(cors, given, written, host, port):
    a = cors()
    before = a.path.read_bytes()
    allow(a, given)
    assert added(a.path, before) == b"\n" + block(written)
    assert matches(a.path, host, port).name == written
    if written != HOST:
        assert matches(a.path, host, port + 1) is None  # that port only


def test_a_second_cors_allow_for_the_same_host_is_refused_by_the_first_rule(cors):
    a = cors()
    allow(a, HOST)
    before = a.path.read_bytes()
    with pytest.raises(exceptions.CommandError, match=f"rule '{HOST}' already names {HOST}"):
        allow(a, HOST)
    assert a.path.read_bytes() == before


def test_allow_credentials_for_a_host_seen_with_a_trailing_dot(cors):
    a = cors()
    flow = make_flow("GET", f"https://{HOST}/v1", [("Origin", PAGE), ("Cookie", "sid=1")], host_header=HOST + ".")
    run_hooks(a, flow, upstream_response())
    before = a.path.read_bytes()
    allow(a, HOST + ".")  # as the discovery line says
    assert b"allow_credentials = true" in added(a.path, before)


# -- refusals: the file stays byte for byte ----------------------------------------


ENABLED_RULE = f'[[rules]]\nname = "acme"\nhosts = ["{HOST}"]\n'
EVERY_ORIGIN = "http://localhost:*, https://localhost:*, http://127.0.0.1:*, http://[::1]:*"


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        pytest.param(
            ENABLED_RULE,
            [HOST],
            f"cors.allow: rule 'acme' already names {HOST}: it sets CORS for {EVERY_ORIGIN}; change that rule instead",
            id="an enabled rule names it",
        ),
        pytest.param(
            RULES + '[[rules]]\nname = "acme"\nhosts = ["*.acme.dev"]\npaths = ["/v2/*"]\n',
            [HOST],
            f"cors.allow: rule 'acme' already names {HOST}: it sets CORS for {EVERY_ORIGIN}, only for paths /v2/*; "
            "change that rule instead",
            id="an enabled suffix rule with paths names it",
        ),
        pytest.param(
            ENABLED_RULE + 'action = "strip"\nfilter = "~m POST"\n',
            [HOST],
            "cors.allow: rule 'acme' already names api.staging.acme.dev: it strips the API's CORS headers "
            "(action = \"strip\"), only for filter '~m POST'; change that rule instead",
            id="an enabled strip rule with a filter names it",
        ),
        pytest.param(
            ENABLED_RULE + "enabled = false\n",
            [HOST],
            f"cors.allow: rule 'acme' names {HOST} but is disabled: set enabled = true in that rule",
            id="only a disabled rule names it",
        ),
        pytest.param(
            "enabled = false\n" + RULES,
            [HOST],
            "is switched off (enabled = false at its top): set enabled = true there first",
            id="the file is switched off",
        ),
        pytest.param(
            '[[rules]]\nname = "all"\nhosts = ["*"]\n',
            [HOST],
            "cors.allow: rule 'all' applies to every host (hosts = [\"*\"]) and comes first: "
            "a rule after it would never apply",
            id="a rule for every host comes first",
        ),
        pytest.param(
            RULES,
            ["*"],
            "cors.allow takes one host, like api.example.com or localhost:8000, not '*': "
            "write patterns into the rules file",
            id="the host is *",
        ),
        pytest.param(
            RULES,
            ["*.acme.dev"],
            "cors.allow takes one host, like api.example.com or localhost:8000, not '*.acme.dev'",
            id="the host is a suffix pattern",
        ),
        pytest.param(
            RULES,
            [f"https://{HOST}"],
            f"cors.allow: hosts are names, not URLs: write '{HOST}' instead of 'https://{HOST}'",
            id="the host is a URL",
        ),
        pytest.param(
            RULES,
            [HOST, "localhost:3000"],
            "cors.allow: 'localhost:3000' is not an origin: write scheme://host[:port]",
            id="an origin without scheme",
        ),
        pytest.param(
            RULES,
            [HOST, PAGE, "http://localhost:3000/"],
            "cors.allow: 'http://localhost:3000/': origins have no path or trailing slash: write 'http://localhost:3000'",
            id="an origin with a trailing slash",
        ),
        pytest.param(
            "[[rules]\n",
            [HOST],
            "TOML syntax error: Expected ']]' at the end of an array declaration",
            id="broken TOML",
        ),
        pytest.param(RULES + "colour = 3\n", [HOST], "rule 'api': unknown key 'colour'", id="an unknown key"),
        pytest.param(
            RULES + 'note = """started\n', [HOST], "Unterminated string", id="ends inside a multi-line string"
        ),
        pytest.param('[rules]\nname = "api"\n', [HOST], "write each rule under [[rules]]", id="a [rules] table"),
        pytest.param(
            'rules = [{name = "api", hosts = ["api.example.com"]}]\n',
            [HOST],
            "is not a plain [[rules]] file the addon can append to",
            id="an inline array of rules",
        ),
        pytest.param(b"# caf\xe9\n" + RULES.encode(), [HOST], "is not UTF-8 text", id="not UTF-8"),
    ],
)
def test_a_refusal_says_why_and_leaves_the_file_byte_for_byte(cors, tmp_path, content, args, message):
    a = cors(content)
    before, stat_before = a.path.read_bytes(), a.path.stat()
    with pytest.raises(exceptions.CommandError) as refused:
        allow(a, *args)
    assert message in str(refused.value)
    assert str(refused.value).startswith("cors.allow")
    after = a.path.stat()
    assert a.path.read_bytes() == before
    assert (after.st_mtime_ns, after.st_ino, after.st_mode) == (
        stat_before.st_mtime_ns,
        stat_before.st_ino,
        stat_before.st_mode,
    )
    assert sorted(os.listdir(tmp_path)) == ["rules.toml"]  # no temporary file left


def test_a_host_longer_than_any_dns_name_is_refused_in_a_short_message(cors):
    a = cors()
    before = a.path.read_bytes()
    with pytest.raises(exceptions.CommandError) as refused:
        allow(a, "a" * 1_000_000 + ".dev")
    assert len(str(refused.value)) < 1000
    assert a.path.read_bytes() == before


def test_a_broken_file_is_to_be_fixed_first(cors):
    a = cors("[[rules]\n")
    with pytest.raises(exceptions.CommandError, match="; fix the file first$"):
        allow(a, HOST)


@pytest.mark.parametrize(
    "content",
    [
        '[[rules]]\nname = "all"\nhosts = ["*"]\npaths = ["/static/*"]\n',
        '[[rules]]\nname = "all"\nhosts = ["*"]\nfilter = "~m POST"\n',
        '[[rules]]\nname = "all"\nhosts = ["*"]\nenabled = false\n',
    ],
)
def test_rules_that_cannot_take_the_host_s_requests_do_not_refuse(cors, content):
    a = cors(content)
    allow(a, HOST)
    assert added(a.path, content.encode()) == b"\n" + block(HOST)


PORT_RULE = f'[[rules]]\nname = "acme"\nhosts = ["{HOST}:8443"]\n'


def test_a_rule_for_the_host_on_another_port_does_not_refuse_the_host_on_its_port(cors):
    a = cors(PORT_RULE)
    allow(a, f"{HOST}:443")
    assert added(a.path, PORT_RULE.encode()) == b"\n" + block(f"{HOST}:443")
    assert matches(a.path, HOST, 443).name == f"{HOST}:443"
    assert matches(a.path, HOST, 8443).name == "acme"


def test_the_command_discovery_suggests_is_accepted_when_a_rule_names_the_host_on_another_port(cors, caplog):
    caplog.set_level(logging.INFO)
    a = cors(PORT_RULE)
    failing_call(a, f"https://{HOST}/v1/items")
    assert f"and no rule names it: run cors.allow {HOST}," in caplog.text
    allow(a, HOST)  # CommandError: rule 'acme' already names api.staging.acme.dev
    assert matches(a.path, HOST, 443).name == HOST


def test_a_read_only_file_is_refused_even_for_root(cors, tmp_path):
    a = cors()
    a.path.chmod(0o444)
    before, mtime = a.path.read_bytes(), a.path.stat().st_mtime_ns
    with pytest.raises(exceptions.CommandError) as refused:
        allow(a, HOST)
    assert str(refused.value) == (
        f"cors.allow: {a.path} is read-only: make it writable (chmod u+w), or edit it by hand; the file is unchanged"
    )
    assert (a.path.read_bytes(), a.path.stat().st_mtime_ns) == (before, mtime)
    assert stat.S_IMODE(a.path.stat().st_mode) == 0o444
    assert sorted(os.listdir(tmp_path)) == ["rules.toml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_a_folder_that_cannot_be_written_is_refused(cors, tmp_path):
    a = cors()
    before, mtime = a.path.read_bytes(), a.path.stat().st_mtime_ns
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(exceptions.CommandError, match="its folder .* is not writable"):
            allow(a, HOST)
    finally:
        tmp_path.chmod(0o755)
    assert (a.path.read_bytes(), a.path.stat().st_mtime_ns) == (before, mtime)


def test_a_folder_that_refuses_the_temporary_file_is_named_in_the_refusal(cors, tmp_path, monkeypatch):
    """The same refusal as a folder without write permission, provoked as root too."""
    a = cors()
    before, mtime = a.path.read_bytes(), a.path.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rulesfile, "_new_temporary", refuse)
    with pytest.raises(exceptions.CommandError) as refused:
        allow(a, HOST)
    assert str(refused.value) == (
        f"cors.allow: cannot write {a.path}: its folder {tmp_path} is not writable (Permission denied); "
        "the file is unchanged"
    )
    assert (a.path.read_bytes(), a.path.stat().st_mtime_ns) == (before, mtime)


# -- the write: atomic, permissions, symlinks, a missing file ---------------------


@pytest.mark.parametrize("mode", [0o640, 0o600, 0o664])
def test_the_file_keeps_its_permissions(cors, mode):
    a = cors()
    a.path.chmod(mode)
    inode = a.path.stat().st_ino
    allow(a, HOST)
    assert stat.S_IMODE(a.path.stat().st_mode) == mode
    assert a.path.stat().st_ino != inode  # replaced by rename, not written in place


def test_a_symlinked_rules_file_stays_a_symlink_and_its_target_gets_the_rule(tmp_path, cors):
    real = tmp_path / "real" / "cors.toml"
    real.parent.mkdir()
    real.write_text(RULES)
    real.chmod(0o640)
    link = tmp_path / "rules.toml"
    link.symlink_to(real)
    a = cors(None)
    message = allow(a, HOST)
    assert message == (f"cors: added a rule for {HOST} to {link} (written to {real}); it takes effect within a second")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert added(real, RULES.encode()) == b"\n" + block(HOST)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(os.listdir(real.parent)) == ["cors.toml"]


def test_a_missing_file_is_created_with_the_rule(cors, tmp_path):
    a = cors(None)
    assert not a.path.exists()
    allow(a, HOST, PAGE)
    assert added(a.path, b"") == block(HOST, extra=f'allow_origins = ["{PAGE}"]')
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(a.path.stat().st_mode) == 0o666 & ~mask
    assert matches(a.path, HOST, 443).allow_origins == (PAGE,)


def test_a_file_that_changed_while_the_rule_was_made_is_left_as_the_other_writer_left_it(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES)

    def rewrite(text: str) -> str:
        path.write_text(RULES + "# saved meanwhile, longer\n")  # an editor's save between the read and the rename
        return text + "# ours\n"

    with pytest.raises(RulesError, match="changed while the rule was being added; run the command again"):
        rewrite_rules_file(str(path), rewrite)
    assert path.read_text() == RULES + "# saved meanwhile, longer\n"
    assert sorted(os.listdir(tmp_path)) == ["rules.toml"]


def test_whatever_the_rewrite_raises_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES)

    def rewrite(text: str) -> str:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        rewrite_rules_file(str(path), rewrite)
    assert path.read_text() == RULES
    assert sorted(os.listdir(tmp_path)) == ["rules.toml"]


# -- flows: @focus, flow specs, cors.allow.flow -----------------------------------


def seen_flow(url: str, cookie: bool = False) -> http.HTTPFlow:
    flow = make_flow("GET", url, [("Origin", PAGE)] + ([("Cookie", "sid=1")] if cookie else []))
    flow.response = upstream_response()
    return flow


def test_cors_allow_at_focus_takes_the_host_of_the_focused_flow(cors):
    flows = view.View()
    a = cors(RULES, flows)
    first, focused = seen_flow("https://other.acme.dev/x"), seen_flow(f"https://{HOST}/v1/items")
    flows.add([first, focused])
    flows.focus.flow = focused
    before = a.path.read_bytes()
    assert allow(a, "@focus", PAGE).startswith(f"cors: added a rule for {HOST} to ")
    assert added(a.path, before) == b"\n" + block(HOST, extra=f'allow_origins = ["{PAGE}"]')


def test_cors_allow_with_a_filter_spec_takes_the_host_of_the_flows_it_names(cors):
    flows = view.View()
    a = cors(RULES, flows)
    flows.add(
        [seen_flow("http://localhost:8000/a"), seen_flow("http://localhost:8000/b"), seen_flow(f"https://{HOST}")]
    )
    before = a.path.read_bytes()
    allow(a, "~d localhost")
    assert added(a.path, before) == b"\n" + block("localhost:8000")


def test_cors_allow_flow_with_a_failing_call_with_cookies_allows_credentials(cors):
    flows = view.View()
    a = cors(RULES, flows)
    flow = run_hooks(a, make_flow("GET", f"https://{HOST}/v1", [("Origin", PAGE), ("Cookie", "a=b")]),
                     upstream_response())  # fmt: skip
    flows.add([flow])
    before = a.path.read_bytes()
    a.tctx.master.commands.call_strings("cors.allow.flow", ["@all", PAGE])
    extra = f'allow_origins = ["{PAGE}"]\nallow_credentials = true  # the calls seen carried cookies'
    assert added(a.path, before) == b"\n" + block(HOST, extra=extra)


def test_cors_allow_at_focus_without_a_view_names_mitmproxy_and_mitmweb(cors):
    a = cors()
    before = a.path.read_bytes()
    with pytest.raises(exceptions.CommandError) as refused:
        allow(a, "@focus")
    text = str(refused.value)
    assert "only mitmproxy and mitmweb keep flows to name; give the host instead" in text
    assert text.startswith("cors.allow: @focus names flows")
    assert a.path.read_bytes() == before


def test_cors_allow_flow_with_two_hosts_is_refused(cors):
    flows = view.View()
    a = cors(RULES, flows)
    flows.add([seen_flow(f"https://{HOST}/a"), seen_flow("http://localhost:8000/b")])
    before = a.path.read_bytes()
    with pytest.raises(exceptions.CommandError) as refused:
        a.tctx.master.commands.call_strings("cors.allow.flow", ["@all"])
    assert str(refused.value) == (f"cors.allow: one host at a time: these flows name 2 hosts ({HOST}, localhost:8000)")
    with pytest.raises(exceptions.CommandError, match="one host at a time"):
        allow(a, "@all")
    assert a.path.read_bytes() == before


def test_cors_allow_flow_with_no_http_flow_is_refused(cors):
    a = cors()
    before = a.path.read_bytes()
    with pytest.raises(exceptions.CommandError, match="no HTTP flow given"):
        a.discovery.allow_flow([tflow.ttcpflow()])
    with pytest.raises(exceptions.CommandError, match="no HTTP flow"):
        a.discovery.allow_flow([])
    assert a.path.read_bytes() == before


def test_cors_allow_flow_called_directly_with_flows_of_one_host(cors):
    a = cors()
    before = a.path.read_bytes()
    a.discovery.allow_flow([seen_flow("http://[::1]:8000/a"), seen_flow("http://[::1]:8000/b")])
    assert added(a.path, before) == b"\n" + block("[::1]:8000")
    assert matches(a.path, "::1", 8000).name == "[::1]:8000"


# -- the watcher --------------------------------------------------------------------


async def test_the_watcher_puts_the_appended_rule_in_force(cors, caplog):
    caplog.set_level(logging.INFO)
    a = cors()
    flow = run_hooks(a, make_flow("GET", f"https://{HOST}/v1/items", [("Origin", PAGE)]), upstream_response())
    assert flow.response.headers.get("Access-Control-Allow-Origin") is None  # no rule: discovery only
    assert a.ruleset.match(((HOST, 443),), "/v1/items", flow) is None
    allow(a, HOST)
    pending = await a.rules_file.poll(None)  # the save is seen ...
    assert pending is not None and a.ruleset.match(((HOST, 443),), "/v1/items", flow) is None
    assert await a.rules_file.poll(pending) is None  # ... and read once it held still
    assert a.ruleset.match(((HOST, 443),), "/v1/items", flow).name == HOST
    assert f"cors: loaded {a.path}: 2 rules enabled" in caplog.text
    again = run_hooks(a, make_flow("GET", f"https://{HOST}/v1/items", [("Origin", PAGE)]), upstream_response())
    assert again.response.headers["Access-Control-Allow-Origin"] == PAGE  # the new rule sets CORS


def test_a_rules_path_that_is_a_fifo_is_refused_at_once(tmp_path, cors):
    import os

    a = cors()
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    a.rules_file.path = str(fifo)
    with pytest.raises(exceptions.CommandError, match="is not a regular file"):
        allow(a, "api.other.dev")
