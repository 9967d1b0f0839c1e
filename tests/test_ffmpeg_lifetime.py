"""No ffmpeg outlives the process that started it, and a killed render leaves nothing behind.

Real processes throughout: ffmpeg found through /proc, real SIGKILLs, the real daemon
(``python -m nemowatch run``) with the local backend in-process, its video decoded again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from nemowatch.ffmpeg import die_with_parent
from nemowatch.local.server import LocalSettings, start_server
from tests.daemon_helpers import (
    FFMPEG,
    REPO,
    check_done,
    daemon_env,
    make_setup,
    photo,
    start_daemon,
    status_of,
    stop_daemon,
    tree_digest,
    wait_for,
    write_prompt,
)

# Long enough (a few seconds on two busy cores) to be caught while ffmpeg is encoding.
SLOW = "a 15-second 720p video"


def _children(parent: int, marker: str) -> list[int]:
    """Live children of ``parent`` whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z" and marker in cmdline:
            found.append(int(entry.name))
    return found


def _running(pid: int, marker: str) -> bool:
    """True while ``pid`` is still the process we saw (not exited, not a zombie, not reused)."""
    try:
        state = (Path(f"/proc/{pid}/stat").read_text()).rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return state != "Z" and marker in cmdline


def test_an_ffmpeg_started_from_a_worker_thread_dies_when_its_process_is_sigkilled(tmp_path: Path) -> None:
    # A process that starts a 10-minute ffmpeg from a pool thread, as the local backend does.
    script = textwrap.dedent(
        """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from nemowatch.ffmpeg import run_to_end

        args = ["-nostdin", "-re", "-f", "lavfi", "-i", "testsrc=size=64x36:rate=5", "-t", "600", "-f", "null", "-"]
        ThreadPoolExecutor(1).submit(run_to_end, args, 900)
        threading.Event().wait()
        """
    )
    starter = subprocess.Popen([sys.executable, "-c", script], env=daemon_env(), cwd=REPO)
    try:
        found = wait_for(lambda: _children(starter.pid, "testsrc=size=64x36"), "the ffmpeg to start")
        (ffmpeg,) = found
        starter.kill()
        starter.wait(timeout=30)
        # Without the parent-death signal this ffmpeg would run for ten minutes.
        wait_for(lambda: not _running(ffmpeg, "testsrc=size=64x36"), "the orphaned ffmpeg to die", timeout=60)
    finally:
        starter.kill()
        starter.wait(timeout=30)


def test_a_child_whose_parent_died_before_it_asked_for_the_signal_kills_itself() -> None:
    """The race: the parent dies between fork and prctl. The child sees another parent and stops."""
    normal = subprocess.run([FFMPEG, "-version"], capture_output=True, preexec_fn=die_with_parent())
    assert normal.returncode == 0, "a child whose parent is alive must run normally"
    # A parent pid that is not the child's: what the child sees when its parent is already gone.
    orphan = subprocess.run(
        [FFMPEG, "-version"], capture_output=True, preexec_fn=die_with_parent(parent=os.getppid())
    )
    assert orphan.returncode == -signal.SIGKILL and orphan.stdout == b""


def test_the_backend_removes_what_killed_renders_left_when_it_starts(tmp_path: Path) -> None:
    root = tmp_path / "state" / "local-backend"
    left = [
        root / "tmp" / ".render_1.ab12.mp4.part",  # ffmpeg's output when the server was killed
        root / "tmp" / ".render_1.ab12.mp4.x7y8.tmp" / "graph-0.txt",  # the render's scratch folder
        root / "tmp" / "render_2.cd34.mp4",  # a finished attempt killed before its rename
        root / "renders" / ".render_3.ef56.part.mp4",  # older versions' part files
        root / "renders" / "..render_3.ef56.part.mp4.part",
        root / "sessions" / ".ses_1.json.0a1b2c3d.nwtmp",  # a JSON write cut before its rename
    ]
    kept = [root / "renders" / "render_4.mp4", root / "uploads" / "ses_1" / "med_1.jpg"]
    for path in left + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"data")
    with start_server(LocalSettings(state_dir=tmp_path / "state", port=0)):
        pass
    assert [path for path in left if path.exists()] == []
    assert list((root / "tmp").iterdir()) == []
    assert [path for path in kept if not path.exists()] == []


def test_a_sigkilled_daemon_takes_its_ffmpeg_along_and_the_restart_finishes_the_render(
    tmp_path: Path,
) -> None:
    setup = make_setup(tmp_path)
    job = setup.inbox / "killed"
    for index, color in enumerate([(220, 120, 30), (30, 120, 220), (40, 200, 90)]):
        photo(job / f"p{index}.jpg", color, size=(640, 360))
    write_prompt(job, f"{SLOW} of these photos\n")
    dropped = tree_digest(job)
    scratch = setup.state / "local-backend" / "tmp"

    daemon = start_daemon(setup)
    try:
        # The render's ffmpeg (the daemon's child that writes under the backend's tmp/ folder),
        # once it is encoding: its part file has grown.
        def encoding() -> list[int]:
            started = any(part.stat().st_size > 0 for part in scratch.glob(".*.part"))
            return _children(daemon.pid, str(scratch)) if started else []

        found = wait_for(encoding, "the render's ffmpeg to be encoding", every=0.02)
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
    (ffmpeg,) = found
    wait_for(
        lambda: not _running(ffmpeg, str(scratch)), "the render's ffmpeg to die with the daemon", timeout=60
    )
    # It was stopped, not left to finish: its part file never got the index ffmpeg writes last.
    (part,) = scratch.glob(".*.part")
    assert b"moov" not in part.read_bytes()
    assert status_of(setup.outbox / "killed").startswith("rendering")

    again = start_daemon(setup)
    try:
        wait_for(lambda: status_of(setup.outbox / "killed") == "done", "the resumed job")
    finally:
        assert stop_daemon(again) == 0
    check_done(setup.outbox / "killed", inputs=dropped)
    assert list(scratch.iterdir()) == []
    backend = setup.state / "local-backend"
    assert [p for p in backend.rglob("*") if ".part" in p.name or p.name.endswith(".tmp")] == []
    # The render cut off by the kill was resumed, not exported a second time.
    (record,) = [json.loads(p.read_text()) for p in (backend / "renders").glob("*.json")]
    assert (record["status"], record["attempts"]) == ("completed", 2)
