"""Job states, shared by every layer that speaks of jobs (journal, pipeline, outbox, status)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job stands. The value is what the journal stores and ``status --json`` shows."""

    QUEUED = "queued"
    UPLOADING = "uploading"
    PROMPTING = "prompting"
    RENDERING = "rendering"
    DOWNLOADING = "downloading"
    WAITING_CREDITS = "waiting_credits"
    # Passing faults: the job waits and resumes by itself (see daemon/service.py).
    WAITING_BACKEND = "waiting_backend"
    WAITING_OUTBOX = "waiting_outbox"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED)

    @property
    def human(self) -> str:
        """The words STATUS.txt starts with."""
        return _HUMAN.get(self, self.value)


_HUMAN = {
    JobState.WAITING_CREDITS: "waiting for credits",
    JobState.WAITING_BACKEND: "waiting for the backend",
    JobState.WAITING_OUTBOX: "waiting for the outbox",
}
