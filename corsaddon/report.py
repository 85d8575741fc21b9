"""What each API needs to fix: the verdicts seen per API, and the smallest CORS policy that would
have let every observed cross-origin call pass without the proxy.

Pure: imports nothing from mitmproxy. Bounded: at most MAX_APIS APIs, and per API at most
MAX_ITEMS origins, methods and headers (the report says when a cap was reached).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from .backendconfig import FRAMEWORKS, BackendPolicy
from .quote import clip
from .verdict import SAFELISTED_METHODS, CorsAsk, Finding, Reason

MAX_APIS = 100
MAX_ITEMS = 50
NOT_CHECKED = 'not checked (answered by the proxy; an observe rule or preflight = "forward" checks it)'
NOT_FROM_API = "not checked (answered by mitmproxy, not the API)"  # map_local, server replay, another addon
UNNAMED_HEADING = "## Hosts no rule names"


@dataclass
class Tally:
    count: int
    example: str  # one request that got it: method, URL, origin


@dataclass
class ApiRecord:
    verdicts: dict[str, Tally] = field(default_factory=dict)
    origins: set[str] = field(default_factory=set)
    methods: set[str] = field(default_factory=set)
    headers: set[str] = field(default_factory=set)
    exposed: set[str] = field(default_factory=set)
    credentials: bool = False
    private_network: bool = False
    max_age: int = 5
    capped: set[str] = field(default_factory=set)

    def add(self, what: str, values: set[str], value: str) -> None:
        if value in values:
            return
        if len(values) >= MAX_ITEMS:
            self.capped.add(what)
            return
        values.add(value)

    def policy(self) -> BackendPolicy:
        return BackendPolicy(
            origins=sorted(self.origins),
            methods=sorted(self.methods),
            headers=sorted(self.headers),
            credentials=self.credentials,
            private_network=self.private_network,
            max_age=self.max_age,
            expose_headers=sorted(self.exposed),
        )


@dataclass
class UnnamedHost:
    """A host no rule names whose answers failed CORS for one of the user's pages (discovery)."""

    verdicts: dict[Reason, Tally] = field(default_factory=dict)
    origins: set[str] = field(default_factory=set)
    credentials: bool = False  # some call carried cookies: its rule needs allow_credentials = true


@dataclass(frozen=True, slots=True)
class Call:
    """One cross-origin call the proxy saw, as the report needs it."""

    api: str  # scheme://host:port
    example: str  # "PUT /v1/items/1 from http://localhost:3000"
    ask: CorsAsk
    actual_method: str  # the request's own method ("OPTIONS" for a preflight)
    allowed: bool  # the origin counts for the policy (allowed by the rule, or seen by an observe rule)
    max_age: int
    expose_headers: tuple[str, ...]


class Report:
    def __init__(self) -> None:
        self.apis: dict[str, ApiRecord] = {}
        self.dropped_apis = False
        self.unnamed: dict[str, UnnamedHost] = {}  # host[:port] as `hosts` writes it
        self.dropped_unnamed = False

    def __bool__(self) -> bool:
        return bool(self.apis or self.unnamed)

    def record_unnamed(self, host: str, ask: CorsAsk, findings: list[Finding], example: str) -> list[Reason]:
        """Count a failing call to a host no rule names; the reasons not seen for it before."""
        record = self.unnamed.get(host)
        if record is None:
            if len(self.unnamed) >= MAX_APIS:
                self.dropped_unnamed = True
                return []
            record = self.unnamed[host] = UnnamedHost()
        if ask.origin not in record.origins and len(record.origins) < MAX_ITEMS:
            record.origins.add(ask.origin)
        record.credentials = record.credentials or ask.credentials
        new = []
        for finding in findings:
            verdict = record.verdicts.get(finding.reason)
            if verdict is None:
                verdict = record.verdicts[finding.reason] = Tally(0, clip(f"{example}: {finding}", 300))
                new.append(finding.reason)
            verdict.count += 1
        return new

    def forget_unnamed(self, named: Callable[[str], bool]) -> None:
        """Drop the unnamed hosts that `named` says a rule names now."""
        for host in [h for h in self.unnamed if named(h)]:
            del self.unnamed[host]

    def record(self, call: Call, findings: list[Finding] | None) -> list[Tally]:
        """Count the call's verdicts and add what it asked for to its API's policy. `findings`
        None: the answer was not checked (the proxy gave it). Returns the verdicts counted, so
        the same call seen again can be counted with `Tally.count += 1` alone."""
        record = self._api(call.api)
        if record is None:
            return []
        names = [NOT_CHECKED] if findings is None else [str(f.reason.value) for f in findings] or ["passes"]
        details = {} if findings is None else {f.reason.value: str(f) for f in findings}
        counted = []
        for name in names:
            verdict = record.verdicts.get(name)
            if verdict is None:
                example = f"{call.example}: {details[name]}" if name in details else call.example
                verdict = record.verdicts[name] = Tally(0, clip(example, 300))
            verdict.count += 1
            counted.append(verdict)
        self._shape(record, call)
        return counted

    def shape(self, call: Call) -> None:
        """Add what the call asked for to its API's policy, with no verdict: the page made the
        call, but the API did not answer it (mitmproxy or another addon did)."""
        record = self._api(call.api)
        if record is not None:
            self._shape(record, call)

    def _api(self, api: str) -> ApiRecord | None:
        record = self.apis.get(api)
        if record is None:
            if len(self.apis) >= MAX_APIS:
                self.dropped_apis = True
                return None
            record = self.apis[api] = ApiRecord()
        return record

    @staticmethod
    def _shape(record: ApiRecord, call: Call) -> None:
        ask = call.ask
        if call.allowed:
            record.add("origins", record.origins, ask.origin)
        for method in (ask.method, call.actual_method if not ask.preflight else ""):
            if method and (ask.preflight or method not in SAFELISTED_METHODS):
                record.add("methods", record.methods, method)
        for header in ask.headers:
            record.add("headers", record.headers, header)
        for header in call.expose_headers:
            record.add("expose_headers", record.exposed, header)
        record.credentials = record.credentials or ask.credentials
        record.private_network = record.private_network or ask.private_network
        record.max_age = call.max_age

    def as_dict(self) -> dict:
        apis = {}
        for api, record in sorted(self.apis.items()):
            policy = record.policy()
            apis[api] = {
                "verdicts": [
                    {"reason": reason, "count": v.count, "example": v.example} for reason, v in record.verdicts.items()
                ],
                "policy": policy.as_dict(),
                "config": {name: render(policy) for name, render in FRAMEWORKS.items()},
            }
            if record.capped:
                apis[api]["capped"] = sorted(record.capped)
        unnamed = {
            host: {
                "verdicts": [
                    {"reason": reason.value, "count": v.count, "example": v.example}
                    for reason, v in record.verdicts.items()
                ],
                "origins": sorted(record.origins),
                "credentials": record.credentials,
                "fix": f"cors.allow {host}",
            }
            for host, record in sorted(self.unnamed.items())
        }
        return {"apis": apis, "unnamed_hosts": unnamed}

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def as_markdown(self) -> str:
        if not self:
            return "# CORS report\n\nNo cross-origin call to an API a rule names was seen yet.\n"
        lines = ["# CORS report", ""]
        report = self.as_dict()
        for api, entry in report["apis"].items():
            lines += [f"## {api}", ""]
            if entry["verdicts"]:
                lines += ["| verdict | calls | example |", "|---|---|---|"]
            else:
                lines.append("No answer of the API itself was seen: mitmproxy answered every call.")
            for v in entry["verdicts"]:
                lines.append(f"| {v['reason']} | {v['count']} | {_cell(v['example'])} |")
            policy = entry["policy"]
            lines += ["", "What the API must allow, no more than was seen:", ""]
            for key, value in policy.items():
                lines.append(f"- {key}: {json.dumps(value)}")
            if "capped" in entry:
                lines.append(f"- (more {', '.join(entry['capped'])} were seen than the report keeps: {MAX_ITEMS})")
            for name, text in entry["config"].items():
                lines += ["", f"### {name}", "", f"```{_FENCE[name]}", text.rstrip("\n"), "```"]
            lines.append("")
        if self.dropped_apis:
            lines.append(f"(calls to more than {MAX_APIS} APIs were seen; the others are left out)")
        if report["unnamed_hosts"]:
            lines += [UNNAMED_HEADING, "", "Calls from your pages that fail CORS, to hosts no rule names:", ""]
            lines += ["| host | verdict | calls | example | fix |", "|---|---|---|---|---|"]
            for host, entry in report["unnamed_hosts"].items():
                for v in entry["verdicts"]:
                    lines.append(f"| {host} | {v['reason']} | {v['count']} | {_cell(v['example'])} | {entry['fix']} |")
            lines.append("")
        if self.dropped_unnamed:
            lines.append(f"(more than {MAX_APIS} such hosts were seen; the others are left out)")
        return "\n".join(lines) + "\n"

    def summary(self) -> list[str]:
        """One line per API: its verdicts and counts."""
        out = []
        for api, record in sorted(self.apis.items()):
            verdicts = "; ".join(f"{reason}: {v.count}" for reason, v in record.verdicts.items())
            out.append(f"{api}: {verdicts or NOT_FROM_API}")
        for host, unnamed in sorted(self.unnamed.items()):
            verdicts = "; ".join(f"{reason.value}: {v.count}" for reason, v in unnamed.verdicts.items())
            out.append(f"{host} (no rule names it: cors.allow {host}): {verdicts}")
        return out


_FENCE = {"express": "js", "starlette": "python", "flask": "python", "django": "python", "nginx": "nginx"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
