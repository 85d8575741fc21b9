"""The browser's verdict on the API's own answer: would this response pass without the proxy?

Pure: imports nothing from mitmproxy. The Fetch standard's CORS check and CORS-preflight fetch
(../shared/reference/cors-facts.md), applied to the header fields the API sent, before the addon
changes anything. Each finding names what the API must fix, with the header values it sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .headerfields import CORS_FIRST_BYTES, CORS_PREFIX_BYTES, OWS, Fields, list_elements
from .quote import clip, printable

SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})


class Reason(Enum):
    # Failures: the browser refuses the response.
    NO_ALLOW_ORIGIN = "no Access-Control-Allow-Origin"
    ALLOW_ORIGIN_MISMATCH = "Access-Control-Allow-Origin is not the page's origin"
    WILDCARD_WITH_CREDENTIALS = "Access-Control-Allow-Origin: * on a request with credentials"
    NO_ALLOW_CREDENTIALS = "no Access-Control-Allow-Credentials: true on a request with credentials"
    PREFLIGHT_STATUS = "the preflight answer's status is not 2xx"
    METHOD_NOT_ALLOWED = "the method is not in Access-Control-Allow-Methods"
    HEADER_NOT_ALLOWED = "a request header is not in Access-Control-Allow-Headers"
    PRIVATE_NETWORK_NOT_ALLOWED = "no Access-Control-Allow-Private-Network: true"
    # Warnings: the browser accepts the response, but something is wrong.
    NO_VARY_ORIGIN = "a specific origin is allowed without Vary: Origin"
    NULL_REFLECTED = "Access-Control-Allow-Origin: null"

    @property
    def fails(self) -> bool:
        return self not in (Reason.NO_VARY_ORIGIN, Reason.NULL_REFLECTED)


@dataclass(frozen=True, slots=True)
class Finding:
    reason: Reason
    detail: str  # the values seen, for the report and the log

    def __str__(self) -> str:
        """With the API's values as they came, control characters and undecodable bytes escaped."""
        return printable(f"{self.reason.value} ({self.detail})") if self.detail else self.reason.value


@dataclass(frozen=True, slots=True)
class CorsAsk:
    """What the page asked of the API, as the browser would check the answer."""

    origin: str
    credentials: bool  # the request carries Cookie, or the rule says the page sends credentials
    preflight: bool = False
    method: str = ""  # for a preflight: Access-Control-Request-Method
    headers: tuple[str, ...] = ()  # for a preflight: Access-Control-Request-Headers, lowercase
    private_network: bool = False  # Access-Control-Request-Private-Network: true


def check(ask: CorsAsk, status: int, fields: Fields) -> list[Finding]:
    """The findings on the API's answer (`status`, header `fields`), failures first; none: it passes."""
    values = _cors_values(fields)
    findings = _cors_check(ask, values)
    if ask.preflight:
        findings += _preflight_check(ask, status, values)
    findings += _warnings(ask, values)
    return findings


def cors_fields(fields: Fields) -> Fields:
    """The fields the verdict depends on (Access-Control-* and Vary), names lowercased."""
    out = []
    for name, value in fields:
        if name and name[0] in CORS_FIRST_BYTES:
            name = name.lower()
            if name.startswith(CORS_PREFIX_BYTES) or name == b"vary":
                out.append((name, value))
    return tuple(out)


def _cors_values(fields: Fields) -> dict[bytes, list[str]]:
    values: dict[bytes, list[str]] = {}
    for name, value in fields:
        name = name.lower()
        if name.startswith(CORS_PREFIX_BYTES) or name == b"vary":
            values.setdefault(name, []).append(value.decode("latin-1"))
    return values


def _combined(values: dict[bytes, list[str]], name: bytes) -> str | None:
    """The header's value as Fetch gets it: every field joined by ", "; None when absent."""
    found = values.get(name)
    return None if found is None else ", ".join(v.strip(OWS) for v in found)


def _cors_check(ask: CorsAsk, values: dict[bytes, list[str]]) -> list[Finding]:
    allow = _combined(values, b"access-control-allow-origin")
    if allow is None:
        return [Finding(Reason.NO_ALLOW_ORIGIN, "")]
    shown = f"Access-Control-Allow-Origin: {clip(allow)}"
    if allow == "*":
        if ask.credentials:
            return [Finding(Reason.WILDCARD_WITH_CREDENTIALS, shown)]
        return []
    if allow != ask.origin:
        return [Finding(Reason.ALLOW_ORIGIN_MISMATCH, f"{shown}; the page's origin is {clip(ask.origin)}")]
    if ask.credentials and _combined(values, b"access-control-allow-credentials") != "true":
        seen = _combined(values, b"access-control-allow-credentials")
        return [Finding(Reason.NO_ALLOW_CREDENTIALS, "absent" if seen is None else f"it is {clip(seen)!r}")]
    return []


def _preflight_check(ask: CorsAsk, status: int, values: dict[bytes, list[str]]) -> list[Finding]:
    findings = []
    if not 200 <= status < 300:
        findings.append(Finding(Reason.PREFLIGHT_STATUS, f"status {status}"))
    methods = _header_list(values, b"access-control-allow-methods")
    wildcard = not ask.credentials
    if ask.method and ask.method not in SAFELISTED_METHODS:
        if ask.method not in methods and not (wildcard and "*" in methods):
            findings.append(Finding(Reason.METHOD_NOT_ALLOWED, _asked("method", ask.method, methods)))
    allowed = {h.lower() for h in _header_list(values, b"access-control-allow-headers")}
    for name in ask.headers:
        # `*` never covers Authorization, and is a literal name with credentials.
        if name not in allowed and not (wildcard and "*" in allowed and name != "authorization"):
            findings.append(Finding(Reason.HEADER_NOT_ALLOWED, _asked("header", name, sorted(allowed))))
            break
    if ask.private_network and _combined(values, b"access-control-allow-private-network") != "true":
        findings.append(Finding(Reason.PRIVATE_NETWORK_NOT_ALLOWED, "the browser asked for private network access"))
    return findings


def _asked(what: str, asked: str, allowed: list[str]) -> str:
    listed = ", ".join(allowed) if allowed else "nothing"
    return clip(f"{what} {asked} asked, {listed} allowed", 300)


def _header_list(values: dict[bytes, list[str]], name: bytes) -> list[str]:
    """The elements of a list-valued header, over all its fields (as if combined with ", ")."""
    return [element for value in values.get(name, ()) for element in list_elements(value)]


def _warnings(ask: CorsAsk, values: dict[bytes, list[str]]) -> list[Finding]:
    allow = _combined(values, b"access-control-allow-origin")
    if allow is None or allow == "*" or allow != ask.origin:
        return []
    if allow == "null":
        return [Finding(Reason.NULL_REFLECTED, "any sandboxed page or file: URL is then allowed too")]
    vary = {element.lower() for element in _header_list(values, b"vary")}
    if "origin" not in vary and "*" not in vary:
        return [Finding(Reason.NO_VARY_ORIGIN, f"Access-Control-Allow-Origin: {clip(allow)}")]
    return []
