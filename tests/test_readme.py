"""The README's examples run as written."""

from __future__ import annotations

import re

import pytest

from corsaddon.parsing import parse, parse_file
from corsaddon.rulesfile import compile_filter

from .proxy import ROOT, Mitmdump, fetch

README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


@pytest.mark.parametrize("text", blocks("toml"))
def test_every_toml_example_is_a_valid_rules_file(text):
    assert parse(text, compile_filter).rules


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
