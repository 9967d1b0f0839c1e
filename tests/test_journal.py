"""The journal: job states and write-ahead steps that survive a crash and can be read beside the daemon."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemowatch.daemon.journal import SCHEMA_VERSION, Journal
from nemowatch.errors import UserError
from nemowatch.states import JobState


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "state" / "journal.sqlite3") as opened:
        yield opened


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter: another process, as the daemon or `nemowatch status` would be."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_a_step_written_before_a_crash_is_there_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    crashed = run_python(
        f"""
        import os
        from pathlib import Path
        from nemowatch.daemon.journal import Journal
        j = Journal(Path({str(path)!r}))
        job = j.add_job("holiday", "folder", Path("/w/holiday"), Path("/o/holiday"))
        j.put_step(job.id, "message:0:sending", {{"draft_hash_before": "abc"}})
        os._exit(9)  # no close, no atexit: as if the power went out
        """
    )
    assert crashed.returncode == 9, crashed.stderr
    with Journal(path) as reopened:
        job = reopened.find("holiday")
        assert job is not None
        assert reopened.step(job.id, "message:0:sending") == {"draft_hash_before": "abc"}
        assert reopened.step(job.id, "message:0:sent") is None


def test_the_journal_uses_wal_and_full_sync(journal: Journal) -> None:
    mode = journal._db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = journal._db.execute("PRAGMA synchronous").fetchone()[0]
    assert mode == "wal"
    assert sync == 2  # FULL


def test_schema_version_is_recorded_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as first:
        first.add_job("a", "folder", Path("/w/a"), Path("/o/a"))
    with Journal(path) as second:
        assert second._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [job.name for job in second.jobs()] == ["a"]


def test_a_journal_from_a_newer_version_is_refused_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    db.close()
    with pytest.raises(UserError, match="newer nemowatch"):
        Journal(path)


def test_status_reads_from_another_process_while_the_daemon_writes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as daemon:
        job = daemon.add_job("beach", "folder", Path("/w/beach"), Path("/o/beach"))
        daemon.set_state(job.id, JobState.RENDERING, "45%")
        # A transaction left open by the daemon must not block or leak into the reader.
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE jobs SET detail = 'uncommitted'")
        try:
            reader = run_python(
                f"""
                import json
                from pathlib import Path
                from nemowatch.daemon.journal import Journal
                j = Journal(Path({str(path)!r}), read_only=True)
                print(json.dumps([[r.name, r.state.value, r.detail] for r in j.jobs()]))
                """
            )
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert reader.returncode == 0, reader.stderr
        assert json.loads(reader.stdout) == [["beach", "rendering", "45%"]]
        # The daemon keeps writing after the reader came and went.
        daemon.set_state(job.id, JobState.DONE)
        assert daemon.get(job.id).state is JobState.DONE


def test_a_read_only_journal_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    with Journal(path, read_only=True) as reader, pytest.raises(RuntimeError):
        reader.put_meta("x", 1)


def test_status_without_a_journal_says_to_run_the_daemon(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nemowatch run"):
        Journal(tmp_path / "none.sqlite3", read_only=True)


def test_states_details_and_errors_round_trip(journal: Journal) -> None:
    job = journal.add_job("city", "folder", Path("/w/city"), Path("/o/city"))
    assert job.state is JobState.QUEUED and job.attempt == 1 and job.error is None
    error = {"code": "render_failed", "message": "the render failed", "hint": "retry"}
    journal.set_state(job.id, JobState.FAILED, "the render failed", error=error)
    again = journal.get(job.id)
    assert again.state is JobState.FAILED
    assert again.error == error
    assert again.status_line == "failed — the render failed"
    assert [j.name for j in journal.jobs([JobState.FAILED])] == ["city"]
    assert journal.jobs([JobState.DONE]) == []


def test_steps_are_listed_by_prefix_in_write_order(journal: Journal) -> None:
    job = journal.add_job("city", "folder", Path("/w"), Path("/o"))
    journal.put_step(job.id, "upload:b.jpg", {"done": True})
    journal.put_step(job.id, "upload:a.jpg", {"done": True})
    journal.put_step(job.id, "session", {"session_id": "s"})
    assert list(journal.steps(job.id, "upload:")) == ["upload:b.jpg", "upload:a.jpg"]
    journal.put_step(job.id, "session", {"session_id": "t"})
    assert journal.step(job.id, "session") == {"session_id": "t"}


def test_retry_drops_only_unfinished_steps_and_counts_the_attempt(journal: Journal) -> None:
    job = journal.add_job("city", "folder", Path("/w"), Path("/o"))
    keep = {
        "session": {"session_id": "s"},
        "upload:a.jpg": {"done": True},
        "message:0:sending": {"draft_hash_before": "1"},
        "message:0:sent": {"reply": "ok", "completed": True},
        "render:0:submitting": {"render_id": "r0"},
        "render:0:done": {"url": "u"},
    }
    drop = {
        "message:1:sending": {"draft_hash_before": "2"},
        "render:1:submitting": {"render_id": "r1"},
        "render:1:failed": {"render_id": "r1"},
        "outbox": {"written": True},
    }
    for key, value in {**keep, **drop}.items():
        journal.put_step(job.id, key, value)
    journal.set_state(job.id, JobState.FAILED, "x", error={"code": "c", "message": "m", "hint": "h"})
    journal.requeue(job.id)
    again = journal.get(job.id)
    assert again.state is JobState.QUEUED
    assert again.attempt == 2
    assert again.error is None
    assert journal.steps(job.id) == keep


def test_meta_facts_are_kept(journal: Journal) -> None:
    assert journal.get_meta("credits") is None
    journal.put_meta("credits", {"available": 40})
    assert journal.get_meta("credits") == {"available": 40}


def test_find_knows_a_job_by_its_outbox_folder_name(journal: Journal) -> None:
    journal.add_job("trip", "folder", Path("/w/trip"), Path("/o/trip"))
    second = journal.add_job("trip", "folder", Path("/w/trip-x"), Path("/o/trip-2"))
    assert journal.find("trip") == second
    assert journal.find("trip-2") == second
    assert journal.find("nope") is None
