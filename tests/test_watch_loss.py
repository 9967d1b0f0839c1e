"""A daemon that cannot go blind: the inbox or the state folder lost under a running daemon, and the lock.

Every daemon here is the real one (a subprocess on the local backend) with real inotify (or polling),
real deletions, renames and — as root — real tmpfs mounts. ``rescan_s`` is set far beyond any test's
length, so a job found after the inbox came back was found by the re-armed watch, not by the rescan.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nemowatch.daemon.presence import Looker
from tests.daemon_helpers import (
    SMALL,
    WAIT_TIMEOUT_S,
    Setup,
    daemon_env,
    make_setup,
    nemowatch,
    photo,
    start_daemon,
    status_of,
    stop_daemon,
    wait_for,
    write_prompt,
)

# Far beyond any test: a job found after the inbox's return was found by the re-armed watch.
NO_RESCAN = {"rescan_s": 3600}
GONE = "is gone (deleted, renamed, or the disk under it unmounted); nemowatch waits for it to come back"


def _log(setup: Setup, n: int = 0) -> str:
    return (setup.root / f"daemon-{n}.log").read_text(encoding="utf-8", errors="replace")


def _errors(setup: Setup, words: str, n: int = 0) -> list[str]:
    return [line for line in _log(setup, n).splitlines() if " ERROR " in line and words in line]


def _status(setup: Setup) -> dict[str, Any]:
    shown = nemowatch("status", "--json", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    info: dict[str, Any] = json.loads(shown.stdout)
    return info


def _status_text(setup: Setup) -> str:
    shown = nemowatch("status", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def _started(setup: Setup, polling: bool = False, **env: str) -> subprocess.Popen[str]:
    """A daemon that is watching its inbox (its start-up line is in its log)."""
    daemon = start_daemon(setup, **env)
    n = len(list(setup.root.glob("daemon-*.log"))) - 1
    mode = "polling every" if polling else "inotify"

    def watching() -> bool:
        assert daemon.poll() is None, _log(setup, n)
        return f"watching {setup.inbox} ({mode}" in _log(setup, n)

    wait_for(watching, "the daemon to watch its inbox")
    return daemon


def _drop_job(inbox: Path, name: str) -> Path:
    job = inbox / name
    photo(job / "p.jpg", (30, 120, 200))
    write_prompt(job, f"{SMALL} of this photo\n")
    return job


def _done(setup: Setup, name: str, daemon: subprocess.Popen[str]) -> None:
    def finished() -> bool:
        assert daemon.poll() is None, _log(setup)
        return status_of(setup.outbox / name) == "done"

    wait_for(finished, f"job {name} to be done")


def _lose_and_recover(
    setup: Setup,
    daemon: subprocess.Popen[str],
    lose: Any,
    restore: Any,
    words: str,
    *,
    waiting: bool = False,
) -> None:
    """The common arc: the inbox is lost (one ERROR line, status says missing); it comes back; a job
    dropped then is done without a rescan. ``waiting``: a folder waiting for its prompt.txt is listed
    by status before the loss (the daemon's heartbeat writes it, every 30 s) and still while it lasts."""
    if waiting:
        photo(setup.inbox / "waiting" / "p.jpg", (1, 2, 3))  # media but no prompt.txt: pending
        wait_for(
            lambda: _status(setup)["waiting_folders"] == {"waiting": "no prompt.txt"}, "the waiting folder"
        )
    lose()
    wait_for(lambda: _errors(setup, words), "an ERROR line about the lost inbox", timeout=30)
    info = wait_for(lambda: (s := _status(setup))["inbox_missing"] and s, "status to show the inbox missing")
    assert info["inbox_missing"]["reason"] in _errors(setup, words)[0]
    assert info["daemon"]["running"] is True
    if waiting:
        assert info["waiting_folders"] == {"waiting": "no prompt.txt"}, "the waiting job was wiped"
    assert "MISSING since" in _status_text(setup)
    time.sleep(2.0)  # several looks at the missing inbox (every 0.5 s) — none may log again
    restore()
    _drop_job(setup.inbox, "after")
    _done(setup, "after", daemon)
    assert len(_errors(setup, words)) == 1, _log(setup)
    assert _status(setup)["inbox_missing"] is None
    assert "Traceback" not in _log(setup)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path, watch=NO_RESCAN)


# -- the inbox ---------------------------------------------------------------------------------


def test_deleted_inbox_is_reported_once_and_watched_again_when_recreated(setup: Setup) -> None:
    daemon = _started(setup)
    try:
        _lose_and_recover(
            setup,
            daemon,
            lose=lambda: shutil.rmtree(setup.inbox),
            restore=lambda: setup.inbox.mkdir(),
            words=f"the inbox {setup.inbox} {GONE}",
            waiting=True,
        )
        assert f"the inbox {setup.inbox} is back after" in _log(setup)
    finally:
        assert stop_daemon(daemon) == 0


def test_inbox_renamed_away_and_back_is_watched_again_and_its_jobs_found(setup: Setup) -> None:
    daemon = _started(setup)
    away = setup.root / "inbox-away"

    def back() -> None:
        # A job arrives while the folder is elsewhere: found by the re-arm's scan, not by an event.
        _drop_job(away, "meanwhile")
        away.rename(setup.inbox)

    try:
        _lose_and_recover(
            setup,
            daemon,
            lose=lambda: setup.inbox.rename(away),
            restore=back,
            words=f"the inbox {setup.inbox} {GONE}",
        )
        _done(setup, "meanwhile", daemon)
    finally:
        assert stop_daemon(daemon) == 0


def _can_mount(where: Path) -> bool:
    """Root, with the right to mount here (a container may refuse even root)."""
    if os.geteuid() != 0:
        return False
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)], check=False)
    return mounted.returncode == 0


@pytest.fixture
def tmpfs_inbox(setup: Setup) -> Iterator[bool]:
    """The inbox as a tmpfs mount point when root may mount (True); else a plain folder (False)."""
    mounted = _can_mount(setup.inbox)
    yield mounted
    if mounted:
        while os.path.ismount(setup.inbox):
            subprocess.run(["umount", "-l", str(setup.inbox)], check=False)


def test_unmounted_inbox_waits_for_a_new_mount(setup: Setup, tmpfs_inbox: bool) -> None:
    """As root: umount the inbox's tmpfs (the bare mount point is not the inbox), mount a fresh one.
    Otherwise: the inbox is replaced by another folder in one rename (a new inode at once)."""
    daemon = _started(setup)
    try:
        if tmpfs_inbox:
            _lose_and_recover(
                setup,
                daemon,
                lose=lambda: subprocess.run(["umount", str(setup.inbox)], check=True),
                restore=lambda: _can_mount(setup.inbox) or pytest.fail("mounting a new tmpfs failed"),
                words=f"the inbox {setup.inbox} is no longer mounted",
            )
            assert os.path.ismount(setup.inbox)
        else:
            fresh = setup.root / "fresh"
            _drop_job(fresh, "moved-in")
            trash = setup.root / "old-inbox"
            setup.inbox.rename(trash)
            fresh.rename(setup.inbox)  # gone for microseconds: the guard sees another folder, not a gap
            wait_for(lambda: "was replaced by another folder" in _log(setup), "the replaced inbox noticed")
            _done(setup, "moved-in", daemon)
            _drop_job(setup.inbox, "after")
            _done(setup, "after", daemon)
    finally:
        assert stop_daemon(daemon) == 0
    assert "Traceback" not in _log(setup)


def test_polling_mode_watches_a_recreated_inbox_again(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, watch={**NO_RESCAN, "polling": True})
    daemon = _started(setup, polling=True)
    try:
        _lose_and_recover(
            setup,
            daemon,
            lose=lambda: shutil.rmtree(setup.inbox),
            restore=lambda: setup.inbox.mkdir(),
            words=f"the inbox {setup.inbox} {GONE}",
        )
    finally:
        assert stop_daemon(daemon) == 0


# -- the state folder and the lock --------------------------------------------------------------


def _refused(setup: Setup, config: Path, first: subprocess.Popen[str], what: str) -> None:
    second = nemowatch("run", "--config", str(config), timeout=WAIT_TIMEOUT_S)
    said = second.stdout + second.stderr
    assert second.returncode == 2, said  # bad usage: stop the first, or point this one elsewhere
    assert f"another nemowatch daemon (pid {first.pid}) is already {what}" in said, said
    assert "stop that one first" in said and "Traceback" not in said
    assert len(said.strip().splitlines()) == 1, said


def test_deleted_state_folder_stops_the_daemon_with_exit_status_1(setup: Setup) -> None:
    daemon = _started(setup)
    try:
        shutil.rmtree(setup.state)
        code = daemon.wait(timeout=WAIT_TIMEOUT_S)
    finally:
        stop_daemon(daemon)
    log = _log(setup)
    assert code == 1, log
    lost = [line for line in log.splitlines() if " ERROR " in line and "state folder" in line]
    assert lost == [line for line in lost if f"the state folder {setup.state} was deleted" in line]
    assert len(lost) == 1 and "start it again" in lost[0], log
    assert "Traceback" not in log and "resume on the next start" not in log


def test_deleting_the_lock_file_lets_no_second_daemon_start(setup: Setup) -> None:
    first = _started(setup)
    try:
        (setup.state / "daemon.lock").unlink()
        _refused(setup, setup.config, first, f"using the state folder {setup.state}")
        # Another state folder changes nothing: the inbox is taken.
        other = make_setup(setup.root / "other", watch=NO_RESCAN)
        config = other.config.read_text().replace(str(other.inbox), str(setup.inbox))
        other.config.write_text(config)
        _refused(other, other.config, first, f"watching the inbox {setup.inbox}")
        # Another inbox, the same state folder: the state folder is taken.
        config = other.config.read_text().replace(str(setup.inbox), str(other.inbox))
        other.config.write_text(config.replace(str(other.state), str(setup.state)))
        _refused(other, other.config, first, f"using the state folder {setup.state}")
        assert first.poll() is None
    finally:
        assert stop_daemon(first) == 0


def test_state_folder_deleted_and_recreated_empty_still_refuses_a_second_daemon(setup: Setup) -> None:
    """The first daemon is frozen (SIGSTOP) so it cannot notice and exit: only the lock stands."""
    first = _started(setup)
    try:
        first.send_signal(signal.SIGSTOP)
        shutil.rmtree(setup.state)
        setup.state.mkdir()
        _refused(setup, setup.config, first, f"using the state folder {setup.state}")
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=WAIT_TIMEOUT_S) == 1  # then it notices the lost state folder
    finally:
        first.send_signal(signal.SIGCONT)
        stop_daemon(first)
    assert f"the state folder {setup.state} was replaced while nemowatch ran" in _log(setup)


def test_a_daemon_holding_only_the_lock_file_is_named(tmp_path: Path) -> None:
    """A daemon in another network namespace (its sockets invisible here) still holds daemon.lock."""
    setup = make_setup(tmp_path)
    setup.state.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _FLOCK_HOLDER, str(setup.state / "daemon.lock")],
        stdout=subprocess.PIPE,
        text=True,
        env=daemon_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        second = nemowatch("run", "--config", str(setup.config), timeout=WAIT_TIMEOUT_S)
        said = second.stdout + second.stderr
        assert second.returncode == 2, said
        assert f"another nemowatch daemon (pid {holder.pid}) is already using the state folder" in said
    finally:
        holder.kill()
        holder.wait()


_FLOCK_HOLDER = """
import fcntl, os, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
handle.truncate(0); handle.write(f"{os.getpid()}\\n"); handle.flush()
print("locked", flush=True)
time.sleep(600)
"""


# -- the look that must not hang the daemon --------------------------------------------------------


async def test_a_look_that_hangs_is_abandoned_and_never_piled_up() -> None:
    """A stat on a hung network share: the look gives up (None), and the next one waits for the same call."""
    release = threading.Event()
    calls: list[int] = []

    def hung() -> str:
        calls.append(1)
        release.wait(30)
        return "answered"

    look = Looker(timeout_s=0.2)
    assert await look(hung) is None
    assert await look(hung) is None
    assert len(calls) == 1  # one thread stuck, not one more per look
    release.set()
    assert await look(hung) == "answered"
    assert await look(lambda: "fresh") == "fresh"
