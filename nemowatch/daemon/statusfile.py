"""STATUS.txt of one running job, rewritten at most every ``interval_s`` while the job moves fast.

Each rewrite is a temp file and a rename (about a millisecond on a busy disk); against a fast
backend a job passes eight states in a fraction of a second, and nobody reads the ones in
between. The first line and every line after a quiet ``interval_s`` are written at once, the
rest on a timer, and ``flush`` (a final state, the end of the run, a cancel) writes the latest
line straight away — so the file is never more than ``interval_s`` behind the journal, and
``Daemon._reconcile_status`` repairs it after a kill.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from nemowatch.daemon.outbox import STATUS_FILE

if TYPE_CHECKING:
    from nemowatch.daemon.outbox import Outbox

# Short enough that a person watching the file sees every state that lasts.
STATUS_INTERVAL_S = 0.5


class StatusFile:
    """The latest status line of one job, written to its STATUS.txt no more often than ``interval_s``."""

    def __init__(self, outbox: Outbox, job_dir: Path, interval_s: float = STATUS_INTERVAL_S) -> None:
        self.outbox = outbox
        self.job_dir = job_dir
        self.interval_s = interval_s
        self._pending: str | None = None
        self._written_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    def show(self, line: str, *, now: bool = False) -> None:
        """Make ``line`` the file's content: at once when ``now`` or when the last write is old enough."""
        self._pending = line
        loop = asyncio.get_running_loop()
        due = self._written_at + self.interval_s
        if now or loop.time() >= due:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.flush()
        except OSError as exc:
            # The job carries on; its next state (or the end of the run) tries the file again.
            logger.warning("could not update {}: {}", self.job_dir / STATUS_FILE, exc.strerror or exc)

    def flush(self) -> None:
        """Write the pending line now (nothing when there is none)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is None:
            return
        line, self._pending = self._pending, None
        self.outbox.write_status(self.job_dir, line)
        self._written_at = asyncio.get_running_loop().time()
