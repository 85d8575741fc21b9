"""Telling the backend what to fix: the browser's verdict on each matched flow's answer from the API,
and the report per API (the command `cors.report`, the option `cors_report`, a summary at stop).

A part the main addon calls: its `responseheaders` calls `record` before it changes the response, so
the verdict is on what the API sent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mitmproxy import command, ctx, http

from .flownotes import Notices
from .headerfields import Fields
from .memo import BoundedMemo
from .patterns import origin_of
from .policy import Decision, Kind, exposable
from .quote import clip, printable
from .report import NOT_CHECKED, NOT_FROM_API, Call, Tally
from .schema import Action
from .verdict import check, cors_fields

if TYPE_CHECKING:
    from .shared import Shared

logger = logging.getLogger(__name__)

MEMO_BYTES = 2048  # an answer whose CORS headers are longer is judged, but not remembered


class Judged(NamedTuple):
    verdicts: list[Tally]  # counted in the report: the same request answered the same way adds 1 to each
    comment: str  # the line for the flow's comment
    fails: bool = False  # the browser refuses the API's answer


class ApiCheck:
    def __init__(self, shared: Shared) -> None:
        self.report = shared.report
        # Each (API, reason) logged at info once; kept across rule sets: a finding is about the API.
        self.findings_logged = Notices(logger)
        # The same request answered the same way, judged once. Kept for its speed: a paired A/B (process
        # CPU time, 100 rules, through mitmproxy's dispatch) measured 20 µs per preflight or GET with
        # Origin saved.
        self.judged: BoundedMemo[tuple, Judged] = BoundedMemo()

    def load(self, loader) -> None:
        loader.add_option(
            "cors_report",
            str,
            "",
            "Write the CORS report (what each API must fix, with configuration for its framework) to this "
            "file on cors.report and when the proxy stops: Markdown, or JSON for a path ending in .json.",
        )

    def record(self, flow: http.HTTPFlow, decision: Decision) -> Judged | None:
        """Check the API's answer to a matched cross-origin request as the browser would, before
        the addon changes it; log each new (API, reason) once, add it to the report, and return the
        verdict for the flow's comment. The same request answered the same way is judged once:
        later ones are only counted. A replayed flow is judged but not counted again."""
        cors, response = decision.request, flow.response
        if not cors.origins or response is None:
            return None  # not a cross-origin request from a page: CORS does not apply
        answered = decision.kind is Kind.ANSWER_PREFLIGHT
        if not answered and answered_in_mitmproxy(flow):
            self.report.shape(self.call(flow, decision, from_api=False))  # the page did make the call
            return Judged([], f"API check: {NOT_FROM_API}")
        seen = () if answered else cors_fields(response.headers.fields)
        data = flow.request.data
        # A flat tuple: hashed in C (a dataclass's hash is a Python-level call).
        status_ok = 200 <= response.status_code < 300
        key = (decision.rule, data.scheme, data.host, data.port, data.method, answered, cors.origins, cors.method,
               cors.headers, cors.credentials, cors.private_network, status_ok, seen)  # fmt: skip
        judged = self.judged.get(key)
        if judged is None:
            judged = self.judge(flow, decision, seen)
            # Not remembered: several origins (never a browser's), long CORS headers, or a rule with
            # expose_headers = "*", whose report lists every header name the API sends (not in the key).
            if (
                len(cors.origins) == 1
                and decision.rule.expose_headers is not None
                and (sum(len(v) for _, v in seen) <= MEMO_BYTES)
            ):
                self.judged.remember(key, judged)
        elif flow.is_replay != "request":
            for verdict in judged.verdicts:
                verdict.count += 1
        return judged

    def call(self, flow: http.HTTPFlow, decision: Decision, from_api: bool = True) -> Call:
        """The call as the report counts it: what the page asked of the API. `from_api`: the answer is the
        API's own (else its header names say nothing of what the API sends)."""
        request, cors, rule = flow.request, decision.request, decision.rule
        ask = cors.ask(request.method, cors.credentials or rule.allow_credentials)
        expose = rule.expose_headers
        if expose is None:  # "*": the names this API actually sends
            names = (n.decode("latin-1") for n, _ in flow.response.headers.fields) if from_api else ()
            expose = exposable(names)
        return Call(
            api=api_origin(request),
            example=printable(f"{clip(request.method)} {clip(request.path)} from {clip(ask.origin)}"),
            ask=ask,
            actual_method=request.method,
            allowed=rule.action is Action.OBSERVE or decision.allow_origin is not None,
            max_age=rule.max_age,
            expose_headers=expose,
        )

    def judge(self, flow: http.HTTPFlow, decision: Decision, seen: Fields) -> Judged:
        call = self.call(flow, decision)
        api, ask = call.api, call.ask
        if decision.kind is Kind.ANSWER_PREFLIGHT:
            return Judged(self.report.record(call, None), f"API check: {NOT_CHECKED}")
        findings = check(ask, flow.response.status_code, seen)
        verdicts = self.report.record(call, findings)
        if not findings:
            return Judged(verdicts, "API check: passes")
        for finding in findings:
            verb = "fails the browser's CORS check" if finding.reason.fails else "has a CORS warning"
            self.findings_logged.note((api, finding.reason.name), f"cors: API {api} {verb}: {finding} ({call.example})")
        fails = any(f.reason.fails for f in findings)
        text = "; ".join(str(f) for f in findings)
        return Judged(verdicts, clip(f"API check: {'fails' if fails else 'passes, but'}: {text}", 300), fails)

    @command.command("cors.report")
    def report_command(self) -> str:
        """What each API must fix, with configuration for its framework (also written to cors_report)."""
        text = self.report.as_markdown()
        logger.info(f"cors: report\n{text}")
        self.write()
        return text

    def done(self) -> None:
        if not self.report:
            return
        logger.info("cors: what the APIs must fix:\n  " + "\n  ".join(self.report.summary()))
        self.write()

    def write(self) -> None:
        path = ctx.options.cors_report
        if not path:
            return
        try:
            target = Path(path).expanduser()
        except RuntimeError as e:  # ~nosuchuser/
            logger.error(f"cors: cannot write the report to {clip(path)}: {e}")
            return
        text = self.report.as_json() if target.suffix == ".json" else self.report.as_markdown()
        try:
            target.write_text(text, encoding="utf-8", errors="backslashreplace")
        except (OSError, ValueError) as e:  # ValueError: a NUL in the path
            logger.error(f"cors: cannot write the report to {clip(str(target))}: {getattr(e, 'strerror', None) or e}")
            return
        logger.info(f"cors: report written to {target}")


def answered_in_mitmproxy(flow: http.HTTPFlow) -> bool:
    """Whether the response was set before the request reached the API: by map_local, server replay or
    another addon's `request` hook (script addons run before those, so `request` cannot see it yet).
    When `responseheaders` runs for the API's own answer, its body has not arrived, so it has no
    `timestamp_end`; a response set in `request` is complete (Response.make sets it; a replay copies it)."""
    return flow.is_replay == "response" or (flow.response is not None and flow.response.timestamp_end is not None)


def api_origin(request: http.Request) -> str:
    """scheme://host[:port] of the API, the port only when it is not the scheme's default."""
    return origin_of(request.scheme, clip(request.host), request.port)
