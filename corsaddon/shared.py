"""What the addon's parts share: one object, made by `CorsAddon` and handed to each part.

The parts (`UpstreamHealth`, `ApiCheck`, `FlowNotes`, `Discovery`, `SessionCookies`,
`UpstreamTlsVerify`) are plain objects the main addon calls from its own hooks: mitmproxy sees
one addon, and each event it dispatches walks one object, not seven (see `addon`).
"""

from __future__ import annotations

from .allowrule import host_keys
from .flownotes import FlowNotes, Notices
from .policy import AnswerMemo
from .report import Report
from .rules import RuleSet
from .rulesfile import RulesFile


class Shared:
    """The rules in force (replaced whole on each good read of the rules file) and their answer memo;
    the rules file; the notable events logged once per rule set; the flow notes; the report that the
    API check and discovery add to."""

    def __init__(self) -> None:
        self.ruleset = RuleSet()
        self.answers = AnswerMemo(self.ruleset)
        self.notices = Notices()
        self.notes = FlowNotes()
        self.report = Report()
        self.rules_file = RulesFile(self.put_in_force, self.in_force)

    def put_in_force(self, ruleset: RuleSet) -> None:
        self.ruleset, self.answers = ruleset, AnswerMemo(ruleset)
        self.notices.forget()
        # Hosts discovery listed that a rule now names are no longer "hosts no rule names" (an index lookup each).
        self.report.forget_unnamed(lambda host: bool((keys := host_keys(host)) and ruleset.candidates(keys)))

    def in_force(self) -> RuleSet:
        return self.ruleset
