"""The README's and the rules reference's examples run as written, and the reference lists what
the code accepts."""

from __future__ import annotations

import re

import pytest

from corsaddon import discovery
from corsaddon.parsing import parse, parse_file
from corsaddon.rulesfile import compile_filter
from corsaddon.schema import KEYS, LOCAL_ORIGINS

from .proxy import ROOT, Mitmdump, fetch
from .upstream import Upstream

README = (ROOT / "README.md").read_text()
REFERENCE = (ROOT / "docs" / "rules.md").read_text()


def blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


@pytest.mark.parametrize("text", blocks("toml") + blocks("toml", REFERENCE))
def test_every_toml_example_is_a_valid_rules_file(text):
    assert parse(text, compile_filter).rules


def test_the_reference_lists_exactly_the_schema_keys_with_their_defaults():
    table = REFERENCE.split("## Keys", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| .+ \|$", table, re.M)
    assert [name for name, _ in rows] == list(KEYS)
    assert {name: default.strip("`") for name, default in rows} == {k.name: k.shown_default for k in KEYS.values()}


@pytest.mark.parametrize("name", ["README.md", "docs/rules.md", "rules.toml"])
def test_the_default_origins_are_written_alike_everywhere(name):
    text = (ROOT / name).read_text()
    mentions = [m.start() for m in re.finditer(re.escape("http://127.0.0.1:*"), text)]
    assert mentions
    for at in mentions:
        around = text[max(0, at - 120) : at + 120]
        assert all(origin in around for origin in LOCAL_ORIGINS), around


def test_the_shipped_rules_file_is_valid():
    assert parse_file(str(ROOT / "rules.toml"), compile_filter).active


def test_the_curl_example_gives_the_answer_shown(tmp_path):
    """The example runs against the shipped rules.toml with no network: the proxy answers."""
    (example,) = [b for b in blocks("sh") if "curl" in b]
    url = re.search(r"(http://api\.example\.com\S*)", example).group(1)
    headers = dict(re.findall(r"-H '([^:]+): ([^']+)'", example))
    expected = re.findall(r"^# ([A-Za-z-]+): (.*)$", example, re.M)
    status = re.search(r"^# HTTP/1.1 (\d+)", example, re.M).group(1)

    proxy = Mitmdump(ROOT / "rules.toml", tmp_path / "confdir").start()
    try:
        host = "api.example.com"
        reply = fetch("OPTIONS", url.replace(host, f"{host}:80"), headers, proxy=proxy.port)
    finally:
        proxy.stop()
    assert reply.status == int(status)
    assert [(k, v) for k, v in reply.fields] == expected


def test_the_first_run_line_is_what_the_proxy_prints(tmp_path):
    """The README's first run: the shipped rules.toml names other hosts; a page's call to an API without
    CORS gets the line shown, with that API's host in place of the README's."""
    (shown,) = [line for b in blocks("text") for line in b.splitlines() if "fails CORS for" in line]
    readme_host = re.search(r"cors: (\S+) fails", shown).group(1)
    page = re.search(r"fails CORS for (\S+)", shown).group(1)
    with Upstream() as api:
        proxy = Mitmdump(ROOT / "rules.toml", tmp_path / "confdir").start()
        try:
            reply = fetch("GET", f"http://127.0.0.1:{api.port}/v1/items", {"Origin": page}, proxy=proxy.port)
            line = proxy.wait_for_log(r"fails CORS for")
        finally:
            proxy.stop()
    assert reply.status == 200 and reply.get("access-control-allow-origin") is None
    assert line[line.index("cors: ") :] == shown.replace(readme_host, f"127.0.0.1:{api.port}")


def test_the_first_run_rule_is_what_make_allow_appends(tmp_path):
    """The rule shown in the README's first run is what `make allow ... CREDENTIALS=1` appends, but for the time."""
    (shown,) = [b for b in blocks("toml") if "added by cors.allow" in b and "staging.acme" in b]
    host = re.search(r'hosts = \["([^"]+)"\]', shown).group(1)
    rules = tmp_path / "rules.toml"
    original = (ROOT / "rules.toml").read_bytes()
    rules.write_bytes(original)
    assert discovery.main(["--rules", str(rules), "--credentials", host]) == 0
    written = rules.read_bytes()
    assert written.startswith(original)
    appended = written[len(original) :].decode()
    stamp = r"on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+"
    assert re.sub(stamp, "", appended.strip()) == re.sub(stamp, "", shown.strip()).replace("cors.allow", "make allow")
    assert parse_file(str(rules), compile_filter).match([(host, 443)], "/") is not None
