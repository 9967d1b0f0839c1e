"""Passing faults: which failures make a job wait instead of fail, and how often they are tried again.

Two kinds pass by themselves, and a job that meets one waits in a state of its own:

- the backend does not answer (DNS, a refused connection, timeouts, 5xx, rate limits that outlast
  the client's own retries): ``waiting_backend``; the daemon probes the backend and resumes the
  job when it answers;
- a file cannot be written (a full disk or quota, a read-only remount, lost permissions, an I/O
  error) in the outbox or the state folder: ``waiting_outbox``; the job is tried again later.

A job waits at most ``jobs.patience_h`` (counted from the first wait, reset by progress) and then
fails with a sentence that says what to do; anything else fails at once, as before.

How often one call is tried before the job waits is decided once, not per layer
(:class:`StepRetry`): the client (``NemoClient._attempts``) retries what it knows to be safe —
an idempotent call on 5xx, 429 and transport errors, any call that never left the machine — with
its backoff, up to ``api`` ``retry_attempts`` (5) tries. The pipeline adds tries only where the
client took one: a step it can repeat safely (a session, an upload) after a 5xx or 429, and a
message the backend refused before any work (429). It never repeats a call the client already
retried: that job waits for the backend instead, and the daemon's probe tells when to go on.
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


@dataclass(frozen=True)
class StepRetry:
    """The pipeline's part of the retry policy (module docstring): which step takes its call again, when."""

    attempts: int = 3  # tries of a repeatable step whose call the client takes once (5xx)
    wait_s: float = 15.0  # before the next try of such a step
    rate_limit_wait_s: float = 30.0  # after a 429 that names no Retry-After

    def tries(self, *, client_retried: bool) -> StepTries:
        """The count of one step's tries; ``client_retried`` for a call the client already retried."""
        return StepTries(self, client_retried=client_retried)


class StepTries:
    """One step's tries under a :class:`StepRetry`."""

    def __init__(self, policy: StepRetry, *, client_retried: bool) -> None:
        self.policy = policy
        self.client_retried = client_retried
        self.tries = 0
        self.rate_limited = False

    def wait_before_next(self, exc: NemoError, *, backend_down: bool) -> float | None:
        """Seconds to wait before the step takes its call again after ``exc``; None: the job waits
        for the backend (the client retried already, no connection could be made, the backend is
        known to be down, or the step had its tries)."""
        self.tries += 1
        if self.client_retried or backend_down or isinstance(exc, BackendUnreachable):
            return None
        if isinstance(exc, RateLimited):
            # Refused before any work: once more after the wait, then the job waits.
            if self.rate_limited:
                return None
            self.rate_limited = True
            return exc.retry_after if exc.retry_after is not None else self.policy.rate_limit_wait_s
        if isinstance(exc, ServerError) and self.tries < self.policy.attempts:
            return self.policy.wait_s
        return None


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
