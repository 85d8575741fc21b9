"""Host, path and origin patterns, and the well-formedness checks on request values.

Pure: imports nothing from mitmproxy. Every matcher here runs in time linear in
its input (no regular-expression backtracking on user patterns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .headerfields import list_elements
from .quote import quote

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# RFC 9110 token: what a method or a header name may be made of.
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Longest request value we are ready to copy into a response header.
MAX_REFLECTED = 4096
# Longest host a request can name: a DNS name has at most 253 characters (a trailing dot and
# IPv6 brackets aside). A longer one matches no host pattern but `*`.
MAX_HOST = 255
# Longest origin a browser can send: a scheme, "://", the longest host and ":65535".
MAX_ORIGIN = 300

_SCHEME = r"[a-z][a-z0-9+.-]*"
_HOSTNAME = r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?"
_IPV6 = r"\[[0-9a-f:.]+\]"
_PORT = r"[1-9][0-9]{0,4}"
# The serialisation browsers send: lowercase, no path, no trailing slash.
_ORIGIN = re.compile(rf"({_SCHEME})://(?:{_HOSTNAME}|{_IPV6})(?::({_PORT}))?")


class PatternError(ValueError):
    """A pattern in the rules file that cannot be used; the message says why."""


class Glob:
    """A glob where `*` matches any run of characters (including none).

    Matched greedily piece by piece: linear in the subject, whatever the number
    of stars, unlike the backtracking of an equivalent regular expression.
    """

    __slots__ = ("pattern", "_pieces", "_exact")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._pieces = pattern.split("*")
        self._exact = len(self._pieces) == 1

    def match(self, subject: str) -> bool:
        pieces = self._pieces
        if self._exact:
            return subject == pieces[0]
        first, last = pieces[0], pieces[-1]
        if len(subject) < len(first) + len(last):
            return False
        if not subject.startswith(first) or not subject.endswith(last):
            return False
        pos, end = len(first), len(subject) - len(last)
        for piece in pieces[1:-1]:
            if not piece:
                continue
            found = subject.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


def is_token(value: str) -> bool:
    return len(value) <= MAX_REFLECTED and TOKEN.fullmatch(value) is not None


def header_names(value: str) -> list[str] | None:
    """The names an `Access-Control-Request-Headers` value lists, or None when it is not a
    well-formed comma-separated list of header names (or too long to reflect)."""
    if len(value) > MAX_REFLECTED:
        return None
    names = list_elements(value)
    return names if all(TOKEN.fullmatch(name) for name in names) else None


def header_list(value: str) -> str | None:
    """The `Access-Control-Request-Headers` value normalised for reflection (`a,b`), or None
    when it is not a well-formed comma-separated list of header names."""
    names = header_names(value)
    return None if names is None else ",".join(names)


def is_browser_origin(value: str) -> bool:
    """True for `null` and for origins in the exact form browsers serialise."""
    if value == "null":
        return True
    if len(value) > MAX_ORIGIN:
        return False
    m = _ORIGIN.fullmatch(value)
    if m is None:
        return False
    port = m.group(2)
    if port is None:
        return True
    return int(port) <= 65535 and DEFAULT_PORTS.get(m.group(1)) != int(port)


def origin_of(scheme: str, host: str, port: int) -> str:
    """scheme://host[:port], the port only when it is not the scheme's default, an IPv6 host in brackets."""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port == DEFAULT_PORTS.get(scheme) else f"{scheme}://{host}:{port}"


def is_host_name(host: str) -> bool:
    """A DNS name, IPv4 or IPv6 address (bracketed or not) as a request can name it: nothing a log line,
    a rule or a file could not hold as it is."""
    return len(host) <= MAX_HOST and _HOST_NAME.fullmatch(host) is not None


_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+|\[?[0-9A-Fa-f:.]+\]?")


def normalize_host(host: str) -> str:
    """Lowercase, no trailing dot, no IPv6 brackets, internationalised names as punycode."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # cannot be any rule's host: punycode patterns are ascii
    return host


class HostKind(Enum):
    EXACT = "exact"  # `name`
    SUFFIX = "suffix"  # `*.name`: any subdomain, not the apex
    ANY = "any"  # `*`


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of a rule's `hosts`; port None means any port."""

    kind: HostKind
    name: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        raw = text.strip()
        if raw == "*":
            return cls(HostKind.ANY, "", None)
        if "://" in raw:
            hint = raw.split("://", 1)[1].split("/", 1)[0]
            raise PatternError(f"hosts are names, not URLs: write {quote(hint)} instead of {quote(raw)}")
        if "/" in raw:
            raise PatternError(f"{quote(raw)} has a path; hosts are names only (use paths = [...] for paths)")
        name, port = _split_host_port(raw)
        kind = HostKind.EXACT
        if name.startswith("*."):
            kind, name = HostKind.SUFFIX, name[2:]
        if "*" in name:
            raise PatternError(
                f"{quote(raw)}: '*' is allowed only as a whole host ('*') or as a leading label ('*.example.com')"
            )
        name = normalize_host(name)
        if not name or not re.fullmatch(r"[a-z0-9_.:-]+", name) or ".." in name:
            raise PatternError(f"{quote(raw)} is not a host name, IP address or [IPv6] address")
        return cls(kind, name, port)

    def names(self, host: str, port: int | None) -> bool:
        """Whether this pattern, other than `*`, names `host` (normalised) on `port` (None: on some port)."""
        if self.port is not None and port is not None and self.port != port:
            return False
        if self.kind is HostKind.EXACT:
            return host == self.name
        return self.kind is HostKind.SUFFIX and host.endswith("." + self.name)

    def __str__(self) -> str:
        """As written in `hosts`: `name`, `*.name`, `name:port`, `[::1]:port`."""
        if self.kind is HostKind.ANY:
            return "*"
        name = f"[{self.name}]" if ":" in self.name else self.name
        name = f"*.{name}" if self.kind is HostKind.SUFFIX else name
        return name if self.port is None else f"{name}:{self.port}"


def _split_host_port(raw: str) -> tuple[str, int | None]:
    if raw.startswith("["):
        close = raw.find("]")
        if close < 0:
            raise PatternError(f"{quote(raw)}: unclosed '[' in IPv6 address")
        name, rest = raw[: close + 1], raw[close + 1 :]
        if rest and not rest.startswith(":"):
            raise PatternError(f"{quote(raw)}: expected ':port' after the IPv6 address")
        port_text = rest[1:] if rest else None
    elif raw.count(":") == 1:
        name, port_text = raw.split(":")
    elif ":" in raw:
        raise PatternError(f"{quote(raw)}: write IPv6 addresses in brackets, like '[::1]' or '[::1]:8000'")
    else:
        name, port_text = raw, None
    if port_text is None:
        return name, None
    port = parse_port(port_text)
    if port is None:
        raise PatternError(f"{quote(raw)}: invalid port: the port must be a number from 1 to 65535")
    return name, port


def parse_port(text: str) -> int | None:
    """The port in `text` if it is one (ASCII digits, 1 to 65535), else None. `str.isdigit`
    alone would take `²` and 5,000-digit strings that `int()` refuses or takes long over."""
    if not 0 < len(text) <= 5 or not text.isascii() or not text.isdigit():
        return None
    port = int(text)
    return port if 0 < port <= 65535 else None


def parse_path_pattern(text: str) -> Glob:
    if not (text.startswith("/") or text.startswith("*")):
        raise PatternError(f"{quote(text)}: path patterns start with '/' (for example '/v1/*')")
    if "?" in text:
        raise PatternError(f"{quote(text)}: paths are matched without the query; remove '?...'")
    return Glob(text)


class OriginPattern:
    """One entry of `allow_origins` other than "*" and "null".

    `*` never matches `/`: scheme and host[:port] are matched apart, and a
    well-formed origin has no `/` in either part.
    """

    __slots__ = ("pattern", "_scheme", "_rest")

    def __init__(self, text: str) -> None:
        self.pattern = text
        scheme, _, rest = text.partition("://")
        self._scheme = Glob(scheme)
        self._rest = Glob(rest)

    @classmethod
    def parse(cls, text: str) -> OriginPattern:
        lowered = text.strip().lower()
        scheme, sep, rest = lowered.partition("://")
        if not sep or not scheme:
            raise PatternError(
                f"{quote(text)} is not an origin: write scheme://host[:port], like 'http://localhost:3000'"
            )
        if "/" in rest:
            hint = f"{scheme}://{rest.split('/', 1)[0]}"
            raise PatternError(f"{quote(text)}: origins have no path or trailing slash: write {quote(hint)}")
        if not rest:
            raise PatternError(f"{quote(text)} has no host")
        host, _, port = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
        if host and "*" not in port and parse_port(port) is None:
            raise PatternError(f"{quote(text)}: invalid port: the port must be a number from 1 to 65535")
        default = DEFAULT_PORTS.get(scheme)
        if host and default is not None and parse_port(port) == default:
            raise PatternError(
                f"{quote(text)}: browsers never send the default port; write {quote(scheme + '://' + host)}"
            )
        return cls(lowered)

    def match(self, origin: str) -> bool:
        scheme, _, rest = origin.partition("://")
        if "/" in rest or "/" in scheme:
            return False
        return self._scheme.match(scheme) and self._rest.match(rest)

    @property
    def is_exact(self) -> bool:
        return "*" not in self.pattern

    @property
    def admits_any_host(self) -> bool:
        """True for `https://*`, `*://*`, `http://*.*:*` and the like: no name narrows the host."""
        host = self.pattern.partition("://")[2]
        host = host.rpartition(":")[0] if not host.endswith("]") and ":" in host else host
        return not host.replace("*", "").replace(".", "")

    def __repr__(self) -> str:
        return f"OriginPattern({self.pattern!r})"
