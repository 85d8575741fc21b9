"""Where mitmproxy users look: a marker and a short comment on each flow a rule decided (mitmweb,
the console), and one `cors:` log line per flow (mitmdump prints it beside its own line).

The options `cors_mark` and `cors_flow_log` switch the markers and the lines off; mitmdump's
`flow_detail=0` (which `-q` sets) switches the lines off with mitmdump's own. The wording is
in `describe`. What the addon wrote on a flow is remembered in the flow's metadata, so a replayed
flow gets its text replaced, not repeated, and a marker the user set is never overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mitmproxy import ctx, http
from mitmproxy.net.http import url

from . import describe
from .headerfields import Fields
from .memo import BoundedMemo
from .policy import Decision, Kind
from .quote import clip
from .rules import Rule

logger = logging.getLogger(__name__)

MEMO_ORIGIN = 300  # a longer Origin (never a browser's) is described afresh, not remembered
NOTE_LIMIT = 1000  # distinct notable events logged at info per rule set
OWN = "cors-addon"  # flow.metadata key: {"comment": what the addon wrote, "marker": the marker it set}


class FlowNotes:
    def __init__(self) -> None:
        self.mark = True
        self.log_flows = True
        # What a decision reads as (outcome, comment, marker): the same few recur on every flow. Kept for
        # its speed: a paired A/B (process CPU time, 100 rules, through mitmproxy's dispatch) measured
        # 5 µs per preflight and 7 µs per GET with Origin saved (2 µs without Origin).
        self.texts: BoundedMemo[tuple, tuple[str, str, str | None]] = BoundedMemo()

    def load(self, loader) -> None:
        loader.add_option(
            "cors_mark", bool, True, "Mark each flow a CORS rule decided, by decision (a marker you set is kept)."
        )
        loader.add_option("cors_flow_log", bool, True, "Log one cors: line for each flow a CORS rule decided.")

    def configure(self, updated: set[str]) -> None:
        if "cors_mark" in updated:
            self.mark = ctx.options.cors_mark
        if "cors_flow_log" in updated or "flow_detail" in updated:
            # mitmdump's flow_detail=0 (or -q) asks for no line per flow: ours neither
            self.log_flows = ctx.options.cors_flow_log and getattr(ctx.options, "flow_detail", 1) != 0

    def decided(
        self,
        flow: http.HTTPFlow,
        decision: Decision,
        replaced: Sequence[str] = (),
        sent: Fields = (),
        check: str = "",
        fails=False,
    ) -> None:
        """Comment, mark and log a flow once the addon has done its part: `replaced`, the API's CORS
        headers it removed; `sent`, the CORS fields it set; `check`, the API check's line."""
        rule, origin = decision.rule, decision.origin
        set_names = tuple(name for name, _ in sent) if decision.kind is Kind.CORS else ()
        key = (rule, decision.kind, origin, decision.allow_origin, set_names, *replaced, check, fails)
        texts = self.texts.get(key)
        if texts is None:
            text = describe.outcome(decision, replaced, set_names)
            texts = (text, describe.comment(text, rule, check), describe.marker(decision, fails))
            if (origin is None or len(origin) <= MEMO_ORIGIN) and len(replaced) <= 8:
                self.texts.remember(key, texts)
        self.write(flow, texts[1], texts[2])
        if self.log_flows:
            request = flow.request
            observed = check if fails and decision.kind is Kind.OBSERVE else ""  # else the API check notices say it
            host = url.hostport(request.scheme, clip(request.host), request.port)
            logger.info(describe.flow_line(request.method, host, request.path, texts[0], rule, observed))

    def handshake(self, flow: http.HTTPFlow, decision: Decision, status: int) -> None:
        """Comment, mark and log a WebSocket handshake a rule matched (answered with `status`)."""
        text = describe.handshake_outcome(decision, status)
        self.write(flow, describe.comment(text, decision.rule), describe.handshake_marker(decision, status))
        if self.log_flows:
            request = flow.request
            host = url.hostport(request.scheme, clip(request.host), request.port)
            logger.info(describe.flow_line(request.method, host, request.path, text, decision.rule))

    def passed_while_off(self, flow: http.HTTPFlow, rule: Rule) -> None:
        self.write(flow, f"passed untouched: cors_enabled is off · cors rule {rule.label}", None)

    def answered_for_unreachable(self, flow: http.HTTPFlow, text: str) -> None:
        self.write(flow, text, describe.UNREACHABLE)

    def write(self, flow: http.HTTPFlow, text: str, marker: str | None) -> None:
        """Put `text` in the comment in place of what the addon wrote before (a replay), keeping
        the user's own lines; set `marker` unless the user marked the flow."""
        own = flow.metadata.get(OWN)
        comment = flow.comment
        if own:
            comment = _without(comment, own.get("comment", ""))
            if flow.marked and flow.marked == own.get("marker"):
                flow.marked = ""
        flow.comment = f"{comment}\n{text}" if comment else text
        placed = ""
        if marker and self.mark and not flow.marked:
            flow.marked = placed = marker
        flow.metadata[OWN] = {"comment": text, "marker": placed}

    def append(self, flow: http.HTTPFlow, line: str) -> None:
        """One more line of the addon's own (after `decided`)."""
        own = flow.metadata.setdefault(OWN, {"comment": "", "marker": ""})
        flow.comment = f"{flow.comment}\n{line}" if flow.comment else line
        own["comment"] = f"{own['comment']}\n{line}" if own["comment"] else line


class Notices:
    """Notable events, each logged at `level` the first time and at debug after that (at most
    NOTE_LIMIT distinct ones are remembered until `forget`): the decisions' notices (forgotten with
    each new rule set) and the API check's findings. Discovery logs a host's reasons once by the
    report's own record of them (`Report.record_unnamed`), which it keeps anyway."""

    def __init__(self, log: logging.Logger = logger) -> None:
        self.seen: set[tuple[str, ...]] = set()
        self.log = log

    def note(self, key: tuple[str, ...], message: str, level: int = logging.INFO) -> None:
        """`key` and `message` hold only short prefixes of request values (see `quote`)."""
        if key in self.seen:
            self.log.debug(message)
            return
        if len(self.seen) < NOTE_LIMIT:
            self.seen.add(key)
        self.log.log(level, message)

    def forget(self) -> None:
        self.seen.clear()


def _without(comment: str, own: str) -> str:
    if not own or own not in comment:
        return comment
    before, _, after = comment.rpartition(own)
    return "\n".join(part for part in (before.rstrip("\n"), after.lstrip("\n")) if part)
