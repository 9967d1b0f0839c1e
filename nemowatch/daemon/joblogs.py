"""Every running job's job.log behind ONE loguru sink, opened and closed per job without touching loguru.

``logs.add_job_sink`` adds a loguru sink per job, and ``logger.add`` costs about 10 ms (loguru
builds an exception formatter, which walks ``sysconfig`` paths, for every sink): more than the
rest of a job's own work against a fast backend. This router is added once, through
``logs.add_sink`` (so the token masking and the job.log format are the same), and writes each
line bound to a job (``logger.bind(job=name)``) to that job's file while the job runs.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import IO, Any

from loguru import logger

from nemowatch.logs import JOB_FORMAT, Outage, add_sink


def _warn_later(text: str) -> None:
    """Log a warning from another thread: a sink may not log itself (loguru refuses re-entry)."""
    threading.Thread(target=logger.warning, args=("{}", text), name="joblog-notice", daemon=True).start()


class JobLogs:
    """The job.log files of the jobs now running, fed by one sink (``start`` … ``stop``)."""

    def __init__(self) -> None:
        self._files: dict[str, IO[str]] = {}
        # Lines may come from worker threads (the intake, to_thread calls) while a job opens or closes.
        self._lock = threading.Lock()
        self._sink: int | None = None
        # Jobs whose job.log cannot be written (a full or read-only outbox): said once, not per line.
        self._outages: dict[str, Outage] = {}

    def start(self) -> None:
        """Add the one sink (INFO and up, as ``add_job_sink`` writes)."""
        if self._sink is None:
            self._sink = add_sink(self._write, JOB_FORMAT, level="INFO", colorize=False, filter=self._wanted)

    def stop(self) -> None:
        """Remove the sink and close every file still open."""
        if self._sink is not None:
            logger.remove(self._sink)
            self._sink = None
        with self._lock:
            handles, self._files = list(self._files.values()), {}
        for handle in handles:
            handle.close()

    def open(self, job: str, path: Path) -> None:
        """From now on, lines bound to ``job`` are appended to ``path`` (line-buffered, like a file sink).

        A file that cannot be opened is said once; the job runs on without it (its lines still reach
        the daemon log), and the next run of the job tries again.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a", encoding="utf-8", buffering=1)
        except OSError as exc:
            self._failed(job, exc)
            self.close(job)
            return
        self._recovered(job)
        with self._lock:
            previous = self._files.pop(job, None)
            self._files[job] = handle
        if previous is not None:
            previous.close()

    def close(self, job: str) -> None:
        """Stop writing ``job``'s lines and close its file."""
        with self._lock:
            handle = self._files.pop(job, None)
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()

    def _wanted(self, record: Any) -> bool:
        # A dict lookup per line: unbound lines and other jobs' lines are never formatted here.
        return record["extra"].get("job") in self._files

    def _write(self, message: Any) -> None:
        job = message.record["extra"].get("job")
        with self._lock:
            handle = self._files.get(job)
            if handle is None:
                return
            try:
                handle.write(message)
            except OSError as exc:
                self._failed(job, exc)
                return
        self._recovered(job)

    def _failed(self, job: str, exc: OSError) -> None:
        outage = self._outages.setdefault(job, Outage(_warn_later))
        outage.failed(f"cannot write the job.log of {job} ({exc.strerror or exc}); its lines go to the daemon log only")

    def _recovered(self, job: str) -> None:
        # Only jobs whose log is failing have an entry: the map stays as small as the trouble.
        outage = self._outages.pop(job, None)
        if outage is not None:
            outage.recovered(f"writing the job.log of {job} again")
