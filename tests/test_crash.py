"""kill -9 at every step of a job, then restart: each job is done exactly once, nothing is sent twice.

The daemon dies by its own SIGKILL right after the chosen journal record is committed
(``--crash-at``: the daemon runs as ``tests/crash_daemon.py``, nemowatch built with a crash hook),
so the crash point is exact, not a guess made with sleeps. The local backend runs as a separate process (`nemowatch
serve`) and the daemon talks to it as to the cloud, so the backend outlives the daemon the
way the cloud would, and it counts what reached it.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import (
    Backend,
    Setup,
    check_done,
    check_failed,
    drop_photo_job,
    make_setup,
    nemowatch,
    run_once,
    serve_backend,
)

# Every write-ahead record a job goes through, in order (see docs/internals.md, "Step keys").
CRASH_POINTS = [
    "intake:intent",
    "intake:reserved",
    "intake:claimed",
    "intake:done",
    "run",
    "session",
    "state:uploading",
    "upload:p1.jpg",
    "message:0:sending",
    "message:0:returned",
    "message:0:sent",
    "render:0:submitting",
    "render:0:submitted",
    "render:0:done",
    "download:0",
    "outbox",
    "state:done",
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    server = serve_backend(tmp_path_factory.mktemp("backend"))
    yield server
    server.stop()


def _setup(tmp_path: Path, backend: Backend) -> tuple[Setup, dict[str, str]]:
    setup = make_setup(tmp_path, backend="cloud")
    # A client id of its own: the backend limits anonymous tokens per client id.
    env = {"NEMO_API_URL": backend.url, "NEMO_CLIENT_ID": str(uuid.uuid4())}
    return setup, env


def _reached(backend: Backend, name: str) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """What reached the backend for this job: its messages, renders and uploaded file names."""
    sessions = [s for s in backend.sessions() if s["task_name"] == name]
    messages = [m for s in sessions for m in s["messages"]]
    renders = [r for s in sessions for r in s["renders"]]
    uploaded = [u.get("name") or u.get("file_name") or "" for s in sessions for u in s["uploads"]]
    return messages, renders, uploaded


def _only_this_job(setup: Setup, name: str) -> None:
    """One outbox folder, an empty inbox, one journal entry: the job was taken exactly once."""
    assert sorted(p.name for p in setup.outbox.iterdir()) == [name]
    assert list(setup.inbox.iterdir()) == []
    shown = nemowatch("status", "--json", "--config", str(setup.config))
    jobs = json.loads(shown.stdout)["jobs"]
    assert [job["name"] for job in jobs] == [name]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_at_any_step_the_job_finishes_once_after_restart(
    tmp_path: Path, backend: Backend, point: str
) -> None:
    setup, env = _setup(tmp_path, backend)
    name = "job-" + point.replace(":", "-").replace(".", "-")
    dropped = drop_photo_job(setup.inbox, name)

    crashed = run_once(setup, crash_at=point, fast_waits=True, **env)
    assert crashed.returncode == -signal.SIGKILL, (
        f"the daemon did not reach {point}:\n{crashed.stderr[-3000:]}"
    )

    again = run_once(setup, fast_waits=True, **env)
    output = again.stdout + again.stderr
    assert "Traceback" not in output
    if point == "message:0:sending":
        # Killed after the write-ahead record, before the request left: the backend never saw the
        # message, and the restart must not send it behind the user's back. It says so instead.
        assert again.returncode == 1, output
        check_failed(setup.outbox / name, "did not confirm", "retry")
        assert _reached(backend, name)[0] == []
        retried = nemowatch("retry", name, "--config", str(setup.config), env=None)
        assert retried.returncode == 0, retried.stderr
        again = run_once(setup, fast_waits=True, **env)
    assert again.returncode == 0, again.stdout + again.stderr
    check_done(setup.outbox / name, inputs=dropped)
    _only_this_job(setup, name)
    messages, renders, uploaded = _reached(backend, name)
    assert len(messages) == 1, f"the message reached the backend {len(messages)} times"
    assert len(renders) == 1, f"{len(renders)} renders for one export"
    assert sorted(uploaded) == sorted(set(uploaded))  # no file uploaded twice into a session
