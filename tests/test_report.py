"""The report's policy never allows an origin, method or header that was not observed, and the
configuration for each framework says exactly that policy."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from corsaddon.backendconfig import FRAMEWORKS, BackendPolicy
from corsaddon.report import MAX_ITEMS, Call, Report
from corsaddon.verdict import CorsAsk

ORIGINS = ["http://localhost:3000", "http://127.0.0.1:5173", "https://app.example.com", "null"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
HEADERS = ["content-type", "x-custom", "authorization", "x-request-id"]

calls = st.builds(
    lambda origin, preflight, method, headers, credentials, allowed: Call(
        api="http://api.test:80",
        example=f"{method} /x from {origin}",
        ask=CorsAsk(
            origin, credentials, preflight, method if preflight else "", tuple(sorted(headers)) if preflight else ()
        ),
        actual_method="OPTIONS" if preflight else method,
        allowed=allowed,
        max_age=5,
        expose_headers=(),
    ),
    st.sampled_from(ORIGINS), st.booleans(), st.sampled_from(METHODS), st.sets(st.sampled_from(HEADERS)),
    st.booleans(), st.booleans(),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(calls, max_size=12))
def test_the_policy_allows_nothing_that_was_not_observed(seen):
    report = Report()
    for call in seen:
        report.record(call, [])
    if not seen:
        assert not report
        return
    policy = report.apis["http://api.test:80"].policy()
    assert set(policy.origins) == {c.ask.origin for c in seen if c.allowed}
    asked = {c.ask.method for c in seen if c.ask.preflight} | {
        c.actual_method for c in seen if not c.ask.preflight and c.actual_method not in ("GET", "HEAD", "POST")
    }
    assert set(policy.methods) == asked
    assert set(policy.headers) == {h for c in seen for h in c.ask.headers}
    assert policy.credentials == any(c.ask.credentials for c in seen)
    for name, render in FRAMEWORKS.items():
        text = render(policy)
        assert set(re.findall(r'"((?:https?://|null)[^"]*)"', text)) == set(policy.origins), name


def test_caps_keep_the_report_bounded_and_say_so():
    report = Report()
    for i in range(MAX_ITEMS + 10):
        ask = CorsAsk(f"http://localhost:{3000 + i}", False, True, "PUT", (f"x-h{i}",))
        report.record(Call("http://api.test:80", "PUT /x", ask, "OPTIONS", True, 5, ()), [])
    entry = report.as_dict()["apis"]["http://api.test:80"]
    assert len(entry["policy"]["origins"]) == MAX_ITEMS and len(entry["policy"]["headers"]) == MAX_ITEMS
    assert entry["capped"] == ["headers", "origins"]
    assert "were seen than the report keeps" in report.as_markdown()


def test_an_empty_policy_allows_nothing_anywhere():
    nothing = BackendPolicy([], [], [], False, False, 5, [])
    for name, render in FRAMEWORKS.items():
        text = render(nothing)
        assert '"*"' not in text and "True" not in text and "true" not in text, name
