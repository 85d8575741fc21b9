"""The rules file: where it is, reading it into a RuleSet, and watching it for saves.

Whatever goes wrong while reading travels as `RulesError` (an `OSError` is
wrapped into one); `RulesFile.load` raises it to its caller, and the watcher
logs it as one `cors:` line. The rules in force stay until a good file is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from mitmproxy import connection, flowfilter, http

from .parsing import MAX_FILE_BYTES, RulesError, parse_file
from .quote import clip
from .rules import RuleSet

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # a save is read after two quiet polls: well within a second

Signature = tuple[int, int, int, int]


class RulesFileMissing(RulesError):
    """The rules file does not exist (yet): not fatal, it is read when it appears."""


def default_path() -> str:
    """`rules.toml` in the current directory, else the one beside cors_addon.py."""
    if Path("rules.toml").exists():
        return "rules.toml"
    beside = Path(__file__).resolve().parent.parent / "rules.toml"
    return str(beside) if beside.exists() else "rules.toml"


def compile_filter(expression: str) -> flowfilter.TFilter:
    """mitmproxy's filter for `expression`, tried once on a sample flow: ValueError (with
    mitmproxy's own message) when it cannot be parsed, or raises when it is evaluated."""
    try:
        predicate = flowfilter.parse(expression)
        predicate(sample_flow())
    except ValueError as e:
        raise ValueError(clip(str(e), 300)) from None
    except Exception as e:  # RecursionError from "!!!!...", and whatever else a filter can raise
        raise ValueError(f"mitmproxy cannot evaluate this filter ({type(e).__name__})") from None
    return predicate


def sample_flow() -> http.HTTPFlow:
    """A finished HTTP flow, with a request and a response, that every filter can be evaluated on
    (the constructors, not `make`, which costs twice as much: one flow per rule with a filter)."""
    client = connection.Client(peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 8080))
    flow = http.HTTPFlow(client, connection.Server(address=("example.com", 80)))
    headers = ((b"Host", b"example.com"), (b"Accept", b"*/*"))
    flow.request = http.Request("example.com", 80, b"GET", b"http", b"", b"/", b"HTTP/1.1", headers, b"", None, 0, 0)
    headers = ((b"Content-Type", b"text/plain"), (b"Content-Length", b"0"))
    flow.response = http.Response(b"HTTP/1.1", 200, b"OK", headers, b"", None, 0, 0)
    return flow


def file_signature(path: str) -> Signature | None:
    """What changes when a file is saved, in place or by rename; None if absent."""
    try:
        st = os.stat(path)  # follows a symlink: saves to its target count
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    return _signature(st)


def read_rules(path: str) -> RuleSet | None:
    """The rule set in `path`, or None when the file is empty. Raises
    RulesFileMissing when there is no file, RulesError when it cannot be
    read or applied."""
    try:
        return parse_file(path, compile_filter)
    except RulesError:
        raise
    except FileNotFoundError:
        raise RulesFileMissing(f"{path} not found") from None
    except OSError as e:
        raise RulesError(f"{path}: cannot read the rules file: {e.strerror or e}") from None
    except Exception as e:  # MemoryError, and whatever else reading hostile input may raise
        raise RulesError(f"{path}: cannot read the rules file: {type(e).__name__}: {clip(str(e))}") from None


def rewrite_rules_file(path: str, rewrite: Callable[[str], str]) -> str:
    """Replace the rules file at `path` (through a symlink, at its target) with `rewrite(its text)`,
    atomically: a temporary file in the same folder, with the file's permissions, renamed over it.
    A missing file is created. RulesError (the file unchanged) when it cannot be read or written, or
    changed meanwhile; whatever `rewrite` raises passes through. Returns the path written."""
    try:
        target = os.path.realpath(path)
        # Opened without blocking (a FIFO would wait for a writer), then stat'ed through the same file
        # before reading: a save that lands after the read then shows as a change, and is not lost.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            before = os.fstat(f.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise RulesError(f"{path} is not a regular file")
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        data, before = b"", None
    except OSError as e:
        raise RulesError(f"cannot read {path}: {e.strerror or e}") from None
    except RulesError:
        raise
    except ValueError:  # a NUL in the path
        raise RulesError(f"{clip(repr(path))} is not a file name") from None
    if before is not None and (not before.st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise RulesError(f"{path} is read-only: make it writable (chmod u+w), or edit it by hand")
    if len(data) > MAX_FILE_BYTES:
        raise RulesError(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RulesError(f"{path} is not UTF-8 text") from None
    new = rewrite(text).encode("utf-8")
    folder = os.path.dirname(target)
    try:
        fd, temporary = _new_temporary(folder, os.path.basename(target))
    except OSError as e:
        raise RulesError(f"cannot write {path}: its folder {folder} is not writable ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(new)
            f.flush()
            if before is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(before.st_mode))
                with contextlib.suppress(OSError):  # only root may give a file away
                    os.fchown(f.fileno(), before.st_uid, before.st_gid)
            os.fsync(f.fileno())
        if file_signature(target) != (None if before is None else _signature(before)):
            raise RulesError(f"{path} changed while the rule was being added; run the command again")
        os.replace(temporary, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise RulesError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def _signature(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _new_temporary(folder: str, name: str) -> tuple[int, str]:
    """A new file beside the rules file, created as an editor creates one: mode 0666 less the umask
    (read without changing it: the process's umask is shared with mitmproxy's other threads)."""
    path = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path


class RulesFile:
    """The rules file being watched, and the signature of the version last read.

    `put_in_force` receives each good rule set read; `in_force` tells which
    rules stay when a read fails, for the log line.
    """

    def __init__(self, put_in_force: Callable[[RuleSet], None], in_force: Callable[[], RuleSet]) -> None:
        self.put_in_force = put_in_force
        self.in_force = in_force
        self.path = ""  # absolute
        self.loaded_signature: Signature | None = None
        self.watcher: asyncio.Task | None = None

    def what_stays_in_force(self) -> str:
        """For the log line of a file that is not applied: which rules stay."""
        ruleset = self.in_force()
        return f"keeping the {ruleset.summary()}" if ruleset.active else "no rules in force"

    def load(self, path: str, missing_ok: bool = True) -> None:
        """Read `path` now and, if it can be applied, watch it and put its rules in
        force. Raises RulesError when it cannot (nothing changes then); a missing
        (if `missing_ok`) or empty file is watched, keeping the rules in force, with a warning."""
        signature = file_signature(path)
        try:
            ruleset = read_rules(path)
        except RulesFileMissing as e:
            if not missing_ok:
                raise
            self.watch_path(path, signature)
            self.log_error(e)
            return
        self.watch_path(path, signature)
        self.put_in_force_or_warn(path, ruleset)

    def switch_to(self, value: str, strict: bool) -> None:
        """The option `cors_rules` set to `value`. `strict` (at run time): a file that is missing or
        cannot be applied raises RulesError and changes nothing. At startup it is watched instead,
        with an error line (which makes mitmproxy exit)."""
        path = os.path.abspath(os.path.expanduser(value))
        if path == self.path and (strict or self.loaded_signature is not None):
            return  # the file in force (also mitmproxy restoring it after a refused value)
        try:
            self.load(path, missing_ok=not strict)
        except RulesError as e:
            if strict:
                raise
            self.watch_path(path, file_signature(path))
            self.log_error(e)

    def watch_path(self, path: str, signature: Signature | None = None) -> None:
        """Watch `path` from now on, as read when it had `signature`."""
        self.path, self.loaded_signature = path, signature

    def put_in_force_or_warn(self, path: str, ruleset: RuleSet | None) -> None:
        """Put the rules read from `path` in force and log them with their warnings; an empty file
        (None) changes nothing but a warning."""
        if ruleset is None:
            stays = self.what_stays_in_force()
            logger.warning(f"cors: {path} is empty; {stays} (to switch everything off, write enabled = false)")
            return
        self.put_in_force(ruleset)
        for warning in ruleset.warnings:
            logger.warning(f"cors: {path}: {warning}")
        logger.info(f"cors: loaded {path}: {ruleset.summary()}")

    def log_error(self, error: RulesError) -> None:
        """One `cors:` line: a warning for a missing file, an error otherwise."""
        if isinstance(error, RulesFileMissing):
            logger.warning(f"cors: {error}; {self.what_stays_in_force()}; it is read as soon as it appears")
        else:
            logger.error(f"cors: {error}; {self.what_stays_in_force()}")

    def start_watching(self) -> None:
        if self.watcher is None:
            self.watcher = asyncio.get_running_loop().create_task(self.watch(), name="cors rules watcher")

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None

    async def watch(self) -> None:
        pending: Signature | None = None
        failing = False
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                pending = await self.poll(pending)
                failing = False
            except Exception as e:  # one failed poll never ends the watch
                if not failing:
                    logger.error(
                        f"cors: watching {self.path} failed ({type(e).__name__}: {clip(str(e))}); still watching"
                    )
                failing = True

    async def poll(self, pending: Signature | None) -> Signature | None:
        """Read the file if it changed and has held still since the last poll (`pending`:
        the signature seen then). Returns the signature to hold still next time."""
        path = self.path
        signature = file_signature(path)
        if signature == self.loaded_signature:
            return None
        if signature != pending and signature is not None:
            return signature  # still being written: read it once it holds still
        self.loaded_signature = signature
        try:
            ruleset = await asyncio.to_thread(read_rules, path)
        except RulesError as e:
            ruleset, error = None, e
        else:
            error = None
        after = file_signature(path)
        if after != signature and after is not None:
            return after  # saved again while it was read: what was read may be half a file
        if path != self.path:
            return None
        if error is not None:
            self.log_error(error)
        else:
            self.put_in_force_or_warn(path, ruleset)
        return None
