"""Logging: loguru sinks (console, daemon file, per-job file) and secret masking.

Every sink is added through :func:`add_sink`, which installs the masking
formatter, so a token can never reach a terminal, a journal or a job.log —
whatever code logged it. Tokens are masked by shape (``nmv_usr_…``,
``clm_…``, ``Bearer …``) and by value (every secret passed to
:func:`register_secret`, such as a user-supplied token of any shape).
"""

from __future__ import annotations

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
        add_sink(
            log_dir / "nemowatch.log",
            FILE_FORMAT,
            level="DEBUG",
            rotation="10 MB",
            retention=5,
            encoding="utf-8",
            enqueue=False,
            opener=private_opener,  # also for each file a rotation opens
        )


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
