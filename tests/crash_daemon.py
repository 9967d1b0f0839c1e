"""The daemon the crash and fault tests run and kill: ``python -m tests.crash_daemon COMMAND … [--crash-at KEY] [--fast-waits]``.

It is `nemowatch` itself — the same command line, config loading, exit statuses and
``run_daemon`` — with the daemon built from test parts (``service.Parts``) instead of the
production ones; nothing here is read by a production run.

- ``--crash-at KEY``: the process SIGKILLs itself right after the first record whose key starts
  with ``KEY`` is committed: a journal step (``message:0:sending``), the pipeline's
  ``message:<i>:returned`` / ``render:<i>:returned`` (a call just returned), ``state:<state>``
  for a job state change, ``intake:<stage>`` for the intake's write-ahead records
  (``intake:intent``, ``intake:reserved``, ``intake:claimed``, ``intake:done``). The crash
  point is exact, not a guess made with sleeps.
- ``--fast-waits``: the pipeline's recovery, settle and retry waits shrink from the production
  schedule (30 s, 60 s …) to fractions of a second, so the tests finish in seconds.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from nemowatch import cli
from nemowatch.daemon import facts, service
from nemowatch.daemon.faults import StepRetry
from nemowatch.daemon.journal import Journal
from nemowatch.daemon.pipeline import Waits
from nemowatch.daemon.service import Parts
from nemowatch.states import JobState

FAST_WAITS = Waits(
    recovery_first_s=0.5,
    recovery_s=0.5,
    settle_s=0.3,
    retry=StepRetry(wait_s=0.2, rate_limit_wait_s=0.2),
)


class CrashHook:
    """SIGKILL this process right after the chosen record is committed (keys: see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, key: str) -> None:
        if key.startswith(self.prefix):
            logger.warning("test hook: crashing right after {}", key)
            os.kill(os.getpid(), signal.SIGKILL)


class CrashingJournal(Journal):
    """The journal with the crash hook called after each committed state change and intake record."""

    def __init__(self, path: Path, hook: CrashHook) -> None:
        super().__init__(path)
        self.hook = hook

    def set_state(
        self, job_id: int, state: JobState, detail: str = "", error: dict[str, Any] | None = None
    ) -> None:
        super().set_state(job_id, state, detail, error)
        self.hook(f"state:{JobState(state).value}")

    def put_meta(self, key: str, value: Any, *, durable: bool = True) -> None:
        super().put_meta(key, value, durable=durable)
        if key == facts.INTAKE:
            stage = "done" if value is None else value.get("stage", "intent")
            self.hook(f"intake:{stage}")


def parts_for(crash_at: str | None, fast_waits: bool) -> Parts:
    """The daemon's parts for these options (production parts when neither is given)."""
    waits = FAST_WAITS if fast_waits else Waits()
    if not crash_at:
        return Parts(waits=waits)
    hook = CrashHook(crash_at)
    # Steps reach the hook through the pipeline's checkpoint, states and intake records through the journal.
    return Parts(journal=functools.partial(CrashingJournal, hook=hook), checkpoint=hook, waits=waits)


def main(argv: Sequence[str] | None = None) -> int:
    """Take this module's options off the command line, hand the rest to nemowatch's own."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--crash-at", default="")
    own.add_argument("--fast-waits", action="store_true")
    options, rest = own.parse_known_args(argv)
    # `nemowatch run` and `once` call service.run_daemon: here it builds the daemon from the test parts.
    service.run_daemon = functools.partial(  # type: ignore[assignment]
        service.run_daemon, parts=parts_for(options.crash_at, options.fast_waits)
    )
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
