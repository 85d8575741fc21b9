"""Which browser to start: the one `BROWSER` names, or the first Chrome-family browser installed
(on PATH, at the macOS and Windows install paths, or as a Flatpak, as mitmproxy's own
`browser.start` searches)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class BrowserError(Exception):
    """The browser could not be found or started; the message says what to do."""


@dataclass(frozen=True)
class Family:
    name: str
    executables: tuple[str, ...]  # names on PATH, then install paths on macOS and Windows
    flatpaks: tuple[str, ...]
    firefox: bool = False


_PROGRAMS = os.environ.get("ProgramFiles", r"C:\Program Files")
_PROGRAMS_X86 = os.environ.get("ProgramFiles(x86)", r"C:\Program Files (x86)")
_LOCAL = os.environ.get("LOCALAPPDATA", "")

CHROME_FAMILY = (
    Family("Chromium", (
        "chromium", "chromium-browser", "/Applications/Chromium.app/Contents/MacOS/Chromium",
        *([rf"{_LOCAL}\Chromium\Application\chrome.exe"] if _LOCAL else []),
    ), ("org.chromium.Chromium", "com.github.Eloston.UngoogledChromium")),
    Family("Google Chrome", (
        "google-chrome", "google-chrome-stable", "chrome",
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        rf"{_PROGRAMS}\Google\Chrome\Application\chrome.exe", rf"{_PROGRAMS_X86}\Google\Chrome\Application\chrome.exe",
    ), ("com.google.Chrome",)),
    Family("Brave", (
        "brave-browser", "brave", "/Applications/Brave Browser.app/Contents/MacOS/Brave Browser",
        rf"{_PROGRAMS}\BraveSoftware\Brave-Browser\Application\brave.exe",
    ), ("com.brave.Browser",)),
    Family("Microsoft Edge", (
        "microsoft-edge", "microsoft-edge-stable", "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
        rf"{_PROGRAMS_X86}\Microsoft\Edge\Application\msedge.exe",
        rf"{_PROGRAMS}\Microsoft\Edge\Application\msedge.exe",
    ), ("com.microsoft.Edge",)),
)  # fmt: skip
FIREFOX = Family(
    "Firefox",
    ("firefox", "/Applications/Firefox.app/Contents/MacOS/firefox", rf"{_PROGRAMS}\Mozilla Firefox\firefox.exe"),
    ("org.mozilla.firefox",),
    firefox=True,
)
ALIASES = {
    "chromium": CHROME_FAMILY[0],
    "chrome": CHROME_FAMILY[1],
    "google-chrome": CHROME_FAMILY[1],
    "brave": CHROME_FAMILY[2],
    "edge": CHROME_FAMILY[3],
    "msedge": CHROME_FAMILY[3],
    "firefox": FIREFOX,
}


@dataclass(frozen=True)
class Found:
    command: tuple[str, ...]  # the executable, or `flatpak run -p <id>`
    firefox: bool


def find_browser(choice: str = "") -> Found:
    """The browser `choice` names (a name from ALIASES, a command on PATH or a path),
    or by default the first Chrome-family browser installed."""
    choice = choice.strip()
    if not choice:
        for family in CHROME_FAMILY:
            if found := _installed(family):
                return found
        raise BrowserError(
            "no Chrome-family browser found; looked for "
            + "; ".join(f"{f.name} ({', '.join(f.executables + f.flatpaks)})" for f in CHROME_FAMILY)
            + ". Install Chromium or Google Chrome, or name a browser: make browser BROWSER=/path/to/browser "
            "(or BROWSER=firefox)"
        )
    family = ALIASES.get(choice.lower())
    if family is not None:
        if found := _installed(family):
            return found
        raise BrowserError(
            f"BROWSER={choice}: {family.name} not found; looked for {', '.join(family.executables + family.flatpaks)}. "
            "Give the browser's path instead: BROWSER=/path/to/browser"
        )
    path = shutil.which(choice)
    if path is None:
        raise BrowserError(
            f"BROWSER={choice}: no such browser (not an executable file, and not a command on PATH); "
            f"use one of {', '.join(ALIASES)} or the browser's path"
        )
    return Found((path,), "firefox" in Path(path).name.lower())


def _installed(family: Family) -> Found | None:
    for name in family.executables:
        if path := shutil.which(name):
            return Found((path,), family.firefox)
    if shutil.which("flatpak"):
        for app in family.flatpaks:
            info = subprocess.run(["flatpak", "info", app], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if info.returncode == 0:
                return Found(("flatpak", "run", "-p", app), family.firefox)
    return None
