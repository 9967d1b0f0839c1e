"""Every running job's job.log behind ONE loguru sink, opened and closed per job without touching loguru.

``logs.add_job_sink`` adds a loguru sink per job, and ``logger.add`` costs about 10 ms (loguru
builds an exception formatter, which walks ``sysconfig`` paths, for every sink): more than the
rest of a job's own work against a fast backend. This router is added once, through
``logs.add_sink`` (so the token masking and the job.log format are the same), and writes each
line bound to a job (``logger.bind(job=name)``) to that job's file while the job runs.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO, Any

from loguru import logger

from nemowatch.logs import JOB_FORMAT, add_sink


class JobLogs:
    """The job.log files of the jobs now running, fed by one sink (``start`` … ``stop``)."""

    def __init__(self) -> None:
        self._files: dict[str, IO[str]] = {}
        # Lines may come from worker threads (the intake, to_thread calls) while a job opens or closes.
        self._lock = threading.Lock()
        self._sink: int | None = None

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
        """From now on, lines bound to ``job`` are appended to ``path`` (line-buffered, like a file sink)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8", buffering=1)
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
            handle.close()

    def _wanted(self, record: Any) -> bool:
        # A dict lookup per line: unbound lines and other jobs' lines are never formatted here.
        return record["extra"].get("job") in self._files

    def _write(self, message: Any) -> None:
        with self._lock:
            handle = self._files.get(message.record["extra"].get("job"))
            if handle is not None:
                handle.write(message)
