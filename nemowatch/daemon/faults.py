"""Passing faults: which failures make a job wait instead of fail, and how often they are tried again.

Two kinds pass by themselves, and a job that meets one waits in a state of its own:

- the backend does not answer (DNS, a refused connection, timeouts, 5xx, rate limits that outlast
  the client's own retries): ``waiting_backend``; the daemon probes the backend and resumes the
  job when it answers;
- a file cannot be written (a full disk or quota, a read-only remount, lost permissions, an I/O
  error) in the outbox or the state folder: ``waiting_outbox``; the job is tried again later.

A job waits at most ``jobs.patience_h`` (counted from the first wait, reset by progress) and then
fails with a sentence that says what to do; anything else fails at once, as before.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from nemowatch.api.errors import BackendUnreachable, NemoError, RateLimited, ServerError

# errno values of a disk or mount that may come back: full, over quota, read-only, denied, broken.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
# SQLite says the same in words (it reports no errno).
_SQLITE_DISK = ("disk is full", "readonly database", "disk i/o error", "unable to open database")
# The probe schedule: every ``retry_every_s`` during the first hour, then doubling up to this.
FIRST_HOUR_S = 3600.0
MAX_RETRY_EVERY_S = 300.0


@dataclass(frozen=True)
class DiskFault:
    """A write that failed for a reason that can clear by itself: where, and the system's words."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"cannot write {self.path} ({self.reason})" if self.path else f"cannot write ({self.reason})"


def disk_fault(exc: BaseException, journal: str = "") -> DiskFault | None:
    """The disk fault behind ``exc`` (or an exception it was raised from), or None for anything else.

    ``journal`` names the SQLite file, which SQLite's own errors do not.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_ERRNOS:
            return DiskFault(str(seen.filename or ""), seen.strerror or str(seen))
        if isinstance(seen, sqlite3.OperationalError) and any(
            words in str(seen).lower() for words in _SQLITE_DISK
        ):
            return DiskFault(journal, str(seen))
        seen = seen.__cause__
    return None


def is_backend_fault(exc: BaseException) -> bool:
    """True for a backend that did not answer or answered "not now" (5xx, 429): it passes by itself."""
    return isinstance(exc, BackendUnreachable | ServerError | RateLimited)


def retry_delay(down_for_s: float, every_s: float) -> float:
    """Seconds to the next try of a fault that has lasted ``down_for_s``: ``every_s`` for the first
    hour, then five minutes (a long outage is not hammered; its end is still seen within minutes)."""
    return every_s if down_for_s < FIRST_HOUR_S else max(every_s, MAX_RETRY_EVERY_S)


def clock(moment: datetime) -> str:
    """A wall-clock time as STATUS.txt shows it: ``14:02`` in the machine's time zone."""
    return moment.astimezone().strftime("%H:%M")


def backend_failure(error: NemoError, since: datetime) -> str:
    """FAILED.txt's "what went wrong" once a job's patience with the backend ran out."""
    return f"the backend did not answer from {clock(since)} until the job's patience ran out ({error.message})"


def backend_hint(job: str) -> str:
    """What to do about a backend that stayed away: true for that error class only."""
    return (
        "check the network connection and api.base_url (or NEMO_API_URL), then run"
        f" `nemowatch retry {job}`; to render on this machine instead, run the daemon with --backend local"
    )


class BackendHealth:
    """What the daemon knows of the backend now: answering, or down since when and until when not tried.

    Shared by the pipelines (a job that meets a known outage waits at once instead of retrying) and
    the daemon's probe (which sets ``next_try`` and clears the outage when the backend answers).
    """

    def __init__(self) -> None:
        self.down_since: datetime | None = None
        self.error = ""
        self.next_try: datetime | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def mark_down(self, error: str) -> None:
        """Record a failure; the outage starts with the first one."""
        if self.down_since is None:
            self.down_since = datetime.now().astimezone()
        self.error = error

    def mark_up(self) -> float:
        """The backend answered: the outage is over. Returns how long it lasted (seconds; 0 if none)."""
        lasted = 0.0 if self.down_since is None else (datetime.now().astimezone() - self.down_since).total_seconds()
        self.down_since, self.error, self.next_try = None, "", None
        return lasted

    def detail(self) -> str:
        """STATUS.txt's words after "waiting for the backend — "."""
        if self.down_since is None:
            return "trying again"
        words = f"unreachable since {clock(self.down_since)}"
        return f"{words}, next try {clock(self.next_try)}" if self.next_try is not None else words
