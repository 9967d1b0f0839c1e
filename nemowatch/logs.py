"""Logging: loguru sinks (console, daemon file, per-job file) and secret masking.

Every sink is added through :func:`add_sink`, which installs the masking
formatter, so a token can never reach a terminal, a journal or a job.log —
whatever code logged it. Tokens are masked by shape (``nmv_usr_…``,
``clm_…``, ``Bearer …``) and by value (every secret passed to
:func:`register_secret`, such as a user-supplied token of any shape).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from loguru import logger

from nemowatch.fsutil import private_dir, private_opener

MASK = "***"

_SHAPES = re.compile(
    r"(?P<prefix>nmv_usr_|nmv_|clm_)[A-Za-z0-9._\-]+"
    r"|(?P<bearer>[Bb]earer\s+)[A-Za-z0-9._~+/=\-]+"
    r"|(?P<ct>[?&]ct=)[A-Za-z0-9._\-]+"
)
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it would be logged from now on (ignores short or empty values)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def mask(text: str, *, keep_claim_links: bool = False) -> str:
    """``text`` with every known secret and every token-shaped string replaced by ``***``.

    ``keep_claim_links`` leaves ``?ct=clm_…`` project links whole: result.json hands that link to
    the user on purpose (it opens the project in a browser), while logs never show it.
    """
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)

    def _sub(match: re.Match[str]) -> str:
        if keep_claim_links and (match.group("ct") or match.group("prefix") == "clm_"):
            return match.group(0)
        keep = match.group("prefix") or match.group("bearer") or match.group("ct") or ""
        return keep + MASK

    return _SHAPES.sub(_sub, text)


# C0 controls (newline, carriage return, escape, tab …), DEL and the C1 controls (0x80-0x9f: 0x9b
# is a one-byte CSI on some terminals, 0x85 a line break to some viewers), and the Unicode line and
# paragraph separators, which some log viewers break lines at.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``, ``\\u2028``), so
    that a name from the inbox can neither start a line of its own nor drive the terminal."""

    def _escape(match: re.Match[str]) -> str:
        char = match.group(0)
        return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")

    return _CONTROLS.sub(_escape, text)


def _formatter(template: str) -> Callable[[Any], str]:
    """A loguru format function that masks the finished message (and any exception text) and escapes
    its control characters.

    Escaping happens here, on the finished message of every sink (console, journald, the daemon log,
    job.log), not where names are logged: file and folder names reach messages through f-strings,
    exception texts and library lines, and one missed place would let a job named
    ``"x\\n2026-01-01 INFO done"`` forge a log line, or ``"\\x1b[2J"`` clear the operator's screen.
    The price is deliberate: no message can span lines, including our own multi-line ones (the
    internal-error traceback in ``daemon/pipeline.py`` becomes one line with ``\\n`` between its
    frames). That keeps a bug report in one record — journald would otherwise split it into one entry
    per line, interleaved with other jobs' lines — and the exception inside a traceback may itself
    carry a user's file name, so its lines could not be trusted to stay as lines anyway.
    """

    def fmt(record: Any) -> str:
        text = mask(record["message"])
        if record["exception"] is not None:
            # Exceptions are rendered as one masked line: a traceback is for bugs, not for users' logs.
            exc = record["exception"].value
            text += f" ({mask(type(exc).__name__ + ': ' + str(exc))})"
        record["extra"]["masked"] = escape_controls(text)
        return template + "\n"

    return fmt


CONSOLE_FORMAT = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {extra[masked]}"
PLAIN_FORMAT = "{level: <7} {extra[masked]}"
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {extra[masked]}"
JOB_FORMAT = "{time:YYYY-MM-DD HH:mm:ss} {level: <7} {extra[masked]}"


def add_sink(sink: TextIO | Path | Callable[[Any], None], template: str, **options: Any) -> int:
    """Add a loguru sink with masking; returns its id for ``logger.remove``."""
    options.setdefault("backtrace", False)
    options.setdefault("diagnose", False)
    return logger.add(sink, format=_formatter(template), **options)


# Known-harmless library chatter, shown only at DEBUG: watchdog's inotify thread reports a read that
# raced with its own shutdown as an error.
_BENIGN = ("called when the thread is inactive",)


class _ToLoguru(logging.Handler):
    """Routes the standard logging of libraries (watchdog, uvicorn, apscheduler, httpx) into loguru,
    so their lines get the same sinks, format and secret masking as ours."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        level: str | int = record.levelname if record.levelname in _LEVELS else record.levelno
        if any(text in message for text in _BENIGN):
            level = "DEBUG"
        logger.opt(exception=record.exc_info).log(level, "{}: {}", record.name, message)


_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


def under_systemd() -> bool:
    """True when stderr goes to the journal (systemd sets JOURNAL_STREAM)."""
    return bool(os.environ.get("JOURNAL_STREAM"))


def setup_logging(
    state_dir: Path | None = None, *, level: str = "INFO", stderr: TextIO | None = None
) -> None:
    """Console sink (plain under systemd: no colours, no timestamps) and, with ``state_dir``,
    a rotating daemon log at ``state_dir/logs/nemowatch.log`` (0700 folder, 0600 files: it names
    every job and folder)."""
    logger.remove()
    logging.basicConfig(handlers=[_ToLoguru()], level=logging.WARNING, force=True)
    stream = stderr or sys.stderr
    if under_systemd():
        add_sink(stream, PLAIN_FORMAT, level=level, colorize=False)
    else:
        add_sink(stream, CONSOLE_FORMAT, level=level, colorize=stream.isatty())
    if state_dir is not None:
        log_dir = private_dir(state_dir / "logs")
        add_sink(RotatingFile(log_dir / "nemowatch.log", report=stream).write, FILE_FORMAT, level="DEBUG")


class Outage:
    """Says a failure once when it starts and once when it ends, never once per failed attempt."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.active = False

    def failed(self, text: str) -> None:
        if not self.active:
            self.active = True
            self.say(text)

    def recovered(self, text: str) -> None:
        if self.active:
            self.active = False
            self.say(text)


class RotatingFile:
    """The daemon's own log file, rotated by size (``NAME.1`` … ``NAME.<backups>``).

    A write that fails (a full disk, a read-only remount) is said once on ``report`` — the console,
    which is the journal under systemd — not once per line as a failing loguru file sink would;
    the file is tried again at every line and the recovery is said too. Nothing here may log
    through loguru: it runs inside a sink.
    """

    def __init__(
        self, path: Path, *, max_bytes: int = 10_000_000, backups: int = 5, report: TextIO | None = None
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._report = report or sys.stderr
        self._handle: TextIO | None = None
        self._size = 0
        self._outage = Outage(self._say)
        self._lock = threading.Lock()

    def write(self, message: str) -> None:
        with self._lock:
            try:
                if self._handle is None:
                    self._open()
                if self._size and self._size + len(message) > self.max_bytes:
                    self._rotate()
                assert self._handle is not None
                self._handle.write(message)
                self._handle.flush()
                self._size += len(message)
            except OSError as exc:
                self._close()
                self._outage.failed(
                    f"nemowatch: cannot write the daemon log {self.path} ({exc.strerror or exc});"
                    " its lines go to the console only until it can"
                )
                return
            self._outage.recovered(f"nemowatch: writing the daemon log {self.path} again")

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._report.write(text + "\n")
            self._report.flush()

    def _rotate(self) -> None:
        self._close()
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def _open(self) -> None:
        # Held open between lines on purpose (one open per daemon, not per line); private like the state.
        self._handle = open(self.path, "a", encoding="utf-8", opener=private_opener)  # noqa: SIM115
        self._size = self._handle.tell()

    def _close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None


def add_job_sink(job_id: str, path: Path) -> int:
    """A sink writing only the lines bound to ``job_id`` (``logger.bind(job=job_id)``) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return add_sink(
        path,
        JOB_FORMAT,
        level="INFO",
        encoding="utf-8",
        colorize=False,
        filter=lambda record: record["extra"].get("job") == job_id,
    )
