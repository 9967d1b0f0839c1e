"""Passing faults, injected for real: a backend whose port refuses and later answers, an outbox on a
tmpfs that fills, an outbox remounted read-only. For each: nothing dropped is lost, nothing stays
stuck, the next job is served without a restart, and the messages say what happened and what to do.

Mounts need root; without it the same faults come from what a user can do (a folder made
read-only by its mode), so the tests run either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nemowatch.daemon.faults import BackendHealth, retry_delay
from tests.daemon_helpers import (
    SMALL,
    Setup,
    check_done,
    drop_photo_job,
    free_port,
    make_setup,
    nemowatch,
    run_once,
    serve_backend,
    start_daemon,
    status_of,
    stop_daemon,
    wait_for,
)

ROOT = os.geteuid() == 0
# Short waits for the tests; the defaults (60 s, 24 h, 10 min) are for people.
FAST_FAULTS = {"retry_every_s": 0.5, "patience_h": 24, "once_patience_min": 0.1}


def next_job_is_served(setup: Setup, name: str) -> None:
    """The slot was freed and nothing is stuck: a job dropped now finishes, without a restart."""
    dropped = drop_photo_job(setup.inbox, name)
    wait_for(lambda: status_of(setup.outbox / name) == "done", "the next job")
    check_done(setup.outbox / name, inputs=dropped)


def job_states(setup: Setup) -> dict[str, dict[str, Any]]:
    """Every job as `nemowatch status --json` shows it, by name."""
    shown = nemowatch("status", "--json", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    return {job["name"]: job for job in json.loads(shown.stdout)["jobs"]}


def steps_of(setup: Setup) -> set[str]:
    """The step keys the journal holds (read-only, beside the running daemon; none before it exists)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{setup.journal()}?mode=ro", uri=True)) as db:
            return {row[0] for row in db.execute("SELECT key FROM steps")}
    except sqlite3.OperationalError:
        return set()


def daemon_output(setup: Setup) -> str:
    return "".join(path.read_text(encoding="utf-8") for path in sorted(setup.root.glob("daemon-*.log")))


def no_noise(output: str) -> None:
    """What the person at the terminal must never see, however the disk or network misbehaves."""
    assert "Traceback" not in output, output[-4000:]
    assert "Logging error in Loguru Handler" not in output, output[-4000:]
    assert "internal error" not in output, output[-4000:]


# -- the schedule ----------------------------------------------------------------------------------


def test_the_backend_is_probed_every_minute_for_an_hour_then_every_five_minutes() -> None:
    assert retry_delay(0, 60) == 60
    assert retry_delay(3599, 60) == 60
    assert retry_delay(3600, 60) == 300
    assert retry_delay(86400, 60) == 300
    assert retry_delay(7200, 600) == 600  # a longer interval of the admin's own is kept


def test_the_waiting_detail_says_since_when_and_the_next_try() -> None:
    health = BackendHealth()
    assert not health.down
    health.mark_down("cannot reach the NemoVideo backend at api.example (ConnectError)")
    assert health.down and health.detail().startswith("unreachable since ")
    health.next_try = health.down_since
    assert ", next try " in health.detail()
    assert health.mark_up() >= 0 and not health.down


# -- the backend goes away ---------------------------------------------------------------------------


def test_an_outage_in_the_middle_of_a_job_ends_in_done_not_failed(tmp_path: Path) -> None:
    backend = serve_backend(tmp_path / "api")
    port = int(backend.url.rsplit(":", 1)[1])
    setup = make_setup(tmp_path, backend="cloud", jobs=FAST_FAULTS)
    env = {"NEMO_API_URL": backend.url, "NEMO_CLIENT_ID": str(uuid.uuid4())}
    daemon = start_daemon(setup, fast_waits=True, **env)
    try:
        dropped = drop_photo_job(setup.inbox, "outage")
        # The render reached the backend: now the backend goes away (its port refuses connections).
        wait_for(lambda: "render:0:submitting" in steps_of(setup), "the render to be submitted")
        backend.proc.send_signal(signal.SIGKILL)
        backend.proc.wait(timeout=30)
        job_dir = setup.outbox / "outage"
        waiting = wait_for(
            lambda: status_of(job_dir).startswith("waiting for the backend — unreachable since ")
            and status_of(job_dir),
            "the job to wait for the backend",
        )
        assert ", next try " in waiting
        assert job_states(setup)["outage"]["state"] == "waiting_backend"
        assert not (job_dir / "FAILED.txt").exists()

        backend = serve_backend(tmp_path / "api", port=port)  # the same backend, back on its port
        wait_for(lambda: status_of(job_dir) == "done", "the job to finish after the backend came back")
        check_done(job_dir, inputs=dropped)
        sessions = [s for s in backend.sessions() if s["task_name"] == "outage"]
        assert [m for s in sessions for m in s["messages"]] == [f"{SMALL} of these photos, job outage\n".strip()]
        assert len([r for s in sessions for r in s["renders"]]) == 1  # followed, not submitted again

        # The next job flows without a restart.
        next_job_is_served(setup, "after")
    finally:
        backend.stop()
        assert stop_daemon(daemon) == 0
    output = daemon_output(setup)
    no_noise(output)
    assert "the backend answers again" in output


def test_once_waits_for_an_unreachable_backend_then_exits_1_keeping_the_job(tmp_path: Path) -> None:
    port = free_port()  # nobody listens: every connection is refused
    setup = make_setup(tmp_path, backend="cloud", jobs=FAST_FAULTS)
    env = {
        "NEMO_API_URL": f"http://127.0.0.1:{port}",
        "NEMO_CLIENT_ID": str(uuid.uuid4()),
    }
    dropped = drop_photo_job(setup.inbox, "offline")
    gave_up = run_once(setup, fast_waits=True, **env)
    output = gave_up.stdout + gave_up.stderr
    assert gave_up.returncode == 1, output
    assert "gave up waiting after 0.1 min" in output and "kept, not failed" in output
    no_noise(output)
    job_dir = setup.outbox / "offline"
    assert status_of(job_dir).startswith("waiting for the backend — unreachable since ")
    assert not (job_dir / "FAILED.txt").exists()
    assert job_states(setup)["offline"]["state"] == "waiting_backend"

    backend = serve_backend(tmp_path / "api", port=port)
    try:
        again = run_once(setup, fast_waits=True, **env)
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        backend.stop()
    check_done(job_dir, inputs=dropped)


# -- the outbox's disk -------------------------------------------------------------------------------


@contextlib.contextmanager
def full_disk(folder: Path) -> Iterator[Callable[[], None]]:
    """``folder`` on a small file system that is full; the function given frees it.

    As root: a 4 MB tmpfs filled by one file. Otherwise: the folder made read-only by its mode, the
    nearest fault a user can cause (EACCES instead of ENOSPC, the same handling).
    """
    if ROOT:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], check=True)
        try:
            with full_disk_file(folder) as free:
                yield free
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        with unwritable(folder) as release:
            yield release


@contextlib.contextmanager
def full_disk_file(folder: Path) -> Iterator[Callable[[], None]]:
    """Fill the file system under ``folder`` with one file; the function given deletes it."""
    filler = folder / "filler.bin"
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(b"\0" * 65536)
    try:
        yield lambda: filler.unlink()
    finally:
        filler.unlink(missing_ok=True)


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[Callable[[], None]]:
    """What a user without the right to mount can do: the folder's mode forbids writing (EACCES)."""
    folder.chmod(0o555)
    try:
        yield lambda: folder.chmod(0o755)
    finally:
        folder.chmod(0o755)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Callable[[], None]]:
    """``folder`` read-only until the function given makes it writable again.

    As root: a bind mount of the folder onto itself, remounted read-only (EROFS, as a remount of a
    failing disk). Otherwise: the folder's mode (EACCES).
    """
    if ROOT:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        try:
            yield lambda: subprocess.run(["mount", "-o", "remount,bind,rw", str(folder)], check=True)
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        with unwritable(folder) as release:
            yield release


def test_a_full_outbox_makes_the_job_wait_and_it_finishes_once_space_is_freed(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, jobs=FAST_FAULTS)
    with full_disk(setup.outbox) as free_space:
        daemon = start_daemon(setup)
        try:
            dropped = drop_photo_job(setup.inbox, "squeezed")
            waiting = wait_for(
                lambda: job_states(setup).get("squeezed", {}).get("state") == "waiting_outbox"
                and job_states(setup)["squeezed"],
                "the job to wait for the outbox",
            )
            assert "trying again every 0.5 s" in waiting["detail"]
            assert "No space left on device" in waiting["detail"] or "Permission denied" in waiting["detail"]
            free_space()
            job_dir = setup.outbox / "squeezed"
            wait_for(lambda: status_of(job_dir) == "done", "the job to finish once space was freed")
            check_done(job_dir, inputs=dropped)
            # The slot was freed and the daemon was never stuck: the next job flows without a restart.
            next_job_is_served(setup, "next")
        finally:
            assert stop_daemon(daemon) == 0
    output = daemon_output(setup)
    no_noise(output)
    # Said once, not once per line or per try.
    assert output.count("cannot write the job.log of squeezed") <= 1


def test_a_read_only_outbox_keeps_new_jobs_in_the_inbox_until_it_is_writable(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, jobs=FAST_FAULTS)
    with read_only(setup.outbox) as writable_again:
        daemon = start_daemon(setup)
        try:
            dropped = drop_photo_job(setup.inbox, "ro")
            wait_for(lambda: "ro stays in the inbox for now" in daemon_output(setup), "the warning")
            assert (setup.inbox / "ro" / "prompt.txt").is_file()  # nothing taken, nothing lost
            writable_again()
            wait_for(lambda: status_of(setup.outbox / "ro") == "done", "the job once the outbox is writable")
            check_done(setup.outbox / "ro", inputs=dropped)
            assert not (setup.inbox / "ro").exists()
        finally:
            assert stop_daemon(daemon) == 0
    output = daemon_output(setup)
    no_noise(output)
    assert output.count("ro stays in the inbox for now") == 1  # not once per try


def test_a_full_state_disk_keeps_new_jobs_waiting_and_they_finish_once_space_is_freed(tmp_path: Path) -> None:
    """The journal's disk fills while the daemon runs (as root: a tmpfs state folder; without the right
    to mount, a folder made read-only cannot stop an open SQLite file, so the outbox stands in)."""
    setup = make_setup(tmp_path, jobs=FAST_FAULTS)
    folder = setup.state if ROOT else setup.outbox
    folder.mkdir(exist_ok=True)
    if ROOT:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)], check=True)
    try:
        daemon = start_daemon(setup)
        try:
            wait_for(lambda: "watching" in daemon_output(setup), "the daemon to start")
            with full_disk_file(folder) if ROOT else unwritable(folder) as free_space:
                dropped = drop_photo_job(setup.inbox, "cramped")
                wait_for(
                    lambda: "cramped stays in the inbox for now" in daemon_output(setup)
                    or "cramped was taken from the inbox but not yet recorded" in daemon_output(setup)
                    or job_states(setup).get("cramped", {}).get("state") == "waiting_outbox",
                    "the job to wait for the disk",
                )
                free_space()
                wait_for(lambda: status_of(setup.outbox / "cramped") == "done", "the job once space was freed")
            check_done(setup.outbox / "cramped", inputs=dropped)
            next_job_is_served(setup, "roomy")
        finally:
            assert stop_daemon(daemon) == 0
    finally:
        if ROOT:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    no_noise(daemon_output(setup))
