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
        return self in _FINISHED

    @classmethod
    def working(cls) -> frozenset[JobState]:
        """The states a job passes through while the daemon works on it. Progress: the journal
        records them without an fsync of their own, and STATUS.txt may show them a moment late."""
        return _WORKING

    @classmethod
    def runnable(cls) -> tuple[JobState, ...]:
        """The states a pipeline is started (or resumed) for: the working ones and the passing faults'
        waits (those start only when their time has come, see daemon/service.py). Waiting for credits
        is not among them: such a job needs a credit check's release first."""
        return _RUNNABLE

    @classmethod
    def unfinished(cls) -> tuple[JobState, ...]:
        """Every state but done and failed, in the order a job goes through them."""
        return _UNFINISHED

    @property
    def human(self) -> str:
        """The words STATUS.txt starts with."""
        return _HUMAN.get(self, self.value)


_HUMAN = {
    JobState.WAITING_CREDITS: "waiting for credits",
    JobState.WAITING_BACKEND: "waiting for the backend",
    JobState.WAITING_OUTBOX: "waiting for the outbox",
}


_FINISHED = frozenset({JobState.DONE, JobState.FAILED})
_UNFINISHED = tuple(state for state in JobState if state not in _FINISHED)
_WORKING = frozenset(
    {JobState.QUEUED, JobState.UPLOADING, JobState.PROMPTING, JobState.RENDERING, JobState.DOWNLOADING}
)
_PASSING = (JobState.WAITING_BACKEND, JobState.WAITING_OUTBOX)  # faults.py: they end by themselves
_RUNNABLE = tuple(state for state in _UNFINISHED if state in _WORKING or state in _PASSING)
