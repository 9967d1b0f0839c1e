"""End to end: the real daemon (a subprocess) on the real local backend, checked through the outbox contract.

One `nemowatch once` run serves most cases (every job dropped into one inbox, results
checked one test each); `nemowatch run` + SIGTERM covers what only the long-running
daemon does: jobs present at start, jobs dropped while it runs, slow copies, restarts.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import (
    SMALL,
    Setup,
    check_done,
    check_failed,
    clip,
    copy_slowly,
    cut_in_half,
    make_setup,
    music,
    nemowatch,
    photo,
    run_once,
    start_daemon,
    status_of,
    stop_daemon,
    tree_digest,
    uploads,
    wait_for,
    write_prompt,
)

GOOD_JOBS = ("photos", "clipmusic", "idea", "twostep")
CUT_JOBS = ("cutclip", "cutindex", "cutsong")


class OnceRun:
    """The shared `once` run: its setup, exit status, output and the dropped inputs' digests."""

    def __init__(self, setup: Setup, returncode: int, output: str, inputs: dict[str, dict[str, str]]) -> None:
        self.setup = setup
        self.returncode = returncode
        self.output = output
        self.inputs = inputs


def _drop_jobs(inbox: Path) -> dict[str, dict[str, str]]:
    """Every case of the shared run, good and bad; returns digests of what was dropped."""
    photos = inbox / "photos"
    for i, color in enumerate([(200, 60, 40), (40, 160, 90), (50, 70, 200)], start=1):
        photo(photos / f"IMG_{i}.jpg", color)
    write_prompt(photos, f"Make {SMALL} of these photos with the title Summer.\n")

    both = inbox / "clipmusic"
    clip(both / "clip.mp4", seconds=2)
    music(both / "song.mp3", seconds=3)
    write_prompt(both, f"\ufeffCut {SMALL} from this clip with this song as music.\n")

    (inbox / "idea.txt").write_text(f"{SMALL} about a sunrise over a calm sea\n", encoding="utf-8")

    two = inbox / "twostep"
    photo(two / "a.png", (240, 200, 40))
    photo(two / "b.png", (30, 30, 30))
    write_prompt(two, f"{SMALL} of these two pictures\n---\nmake it black and white\n")
    (two / "job.toml").write_text('export = "each"\n', encoding="utf-8")

    empty = inbox / "emptyfile"
    photo(empty / "ok.jpg", (10, 10, 10))
    (empty / "broken.jpg").write_bytes(b"")
    write_prompt(empty, f"{SMALL}\n")

    odd = inbox / "unsupported"
    photo(odd / "ok.jpg", (10, 10, 10))
    (odd / "notes.docx").write_bytes(b"PK\x03\x04 not media")
    write_prompt(odd, f"{SMALL}\n")

    huge = inbox / "huge"
    huge.mkdir()
    with (huge / "big.mp4").open("wb") as handle:
        handle.truncate(501 * 1000 * 1000)  # sparse: no disk used, but over the 500 MB limit
    write_prompt(huge, f"{SMALL}\n")

    latin = inbox / "latin1"
    photo(latin / "ok.jpg", (10, 10, 10))
    latin.joinpath("prompt.txt").write_bytes("Un café vidéo, s'il vous plaît".encode("latin-1"))

    blank = inbox / "blank"
    photo(blank / "ok.jpg", (10, 10, 10))
    write_prompt(blank, "  \n\n")

    link = inbox / "escape"
    photo(link / "ok.jpg", (10, 10, 10))
    (link / "secret.jpg").symlink_to("/etc/passwd")
    write_prompt(link, f"{SMALL}\n")

    # Copies a phone sync cut off midway: a clip with its index in front, one with its index at
    # the end (as phones record), a song with a Xing header; each header states the full length.
    cut_in_half(clip(inbox / "cutclip" / "clip.mp4", seconds=4, index_first=True))
    cut_in_half(clip(inbox / "cutindex" / "clip.mp4", seconds=4))
    cut_in_half(music(inbox / "cutsong" / "song.mp3", seconds=4))
    for name in ("cutclip", "cutindex", "cutsong"):
        photo(inbox / name / "ok.jpg", (10, 10, 10))
        write_prompt(inbox / name, f"{SMALL} with music\n")

    photo(inbox / "noprompt" / "x.jpg", (1, 2, 3))  # media but no prompt.txt: not a job yet
    return {
        name: tree_digest(inbox / name if name != "idea" else inbox / "idea.txt")
        for name in (*GOOD_JOBS, *CUT_JOBS, "emptyfile", "unsupported", "latin1", "blank", "escape")
    }


@pytest.fixture(scope="module")
def once_run(tmp_path_factory: pytest.TempPathFactory) -> OnceRun:
    setup = make_setup(tmp_path_factory.mktemp("once"))
    inputs = _drop_jobs(setup.inbox)
    done = run_once(setup)
    return OnceRun(setup, done.returncode, done.stdout + done.stderr, inputs)


def test_once_exits_1_because_some_jobs_failed_and_prints_no_traceback(once_run: OnceRun) -> None:
    assert once_run.returncode == 1, once_run.output
    assert "Traceback" not in once_run.output


def test_photo_job_becomes_a_video_with_status_result_log_and_inputs(once_run: OnceRun) -> None:
    outbox = once_run.setup.outbox
    result = check_done(
        outbox / "photos",
        inputs=once_run.inputs["photos"],
        other_jobs=tuple(n for n in GOOD_JOBS if n != "photos"),
        size=(1280, 720),
    )
    assert result["backend"] == "local" and result["session_id"]
    assert "Summer" in result["timeline"] or "Summer" in json.dumps(result["messages"])
    assert result["credits"].keys() >= {"before", "after"}


def test_clip_and_music_job_becomes_a_video(once_run: OnceRun) -> None:
    check_done(once_run.setup.outbox / "clipmusic", inputs=once_run.inputs["clipmusic"], size=(1280, 720))


def test_text_only_job_is_named_after_its_file(once_run: OnceRun) -> None:
    job = once_run.setup.outbox / "idea"
    check_done(job, inputs=once_run.inputs["idea"])
    assert not (once_run.setup.inbox / "idea.txt").exists()


def test_export_each_writes_one_video_per_message(once_run: OnceRun) -> None:
    result = check_done(
        once_run.setup.outbox / "twostep",
        videos=["twostep-1.mp4", "twostep-2.mp4"],
        inputs=once_run.inputs["twostep"],
    )
    assert len(result["messages"]) == 2


@pytest.mark.parametrize(
    ("job", "words"),
    [
        ("emptyfile", ["broken.jpg", "empty"]),
        ("unsupported", ["notes.docx"]),
        ("huge", ["big.mp4", "500 MB"]),
        ("latin1", ["UTF-8"]),
        ("blank", ["empty"]),
        ("escape", ["secret.jpg", "outside"]),
    ],
)
def test_bad_input_ends_in_a_clear_failed_txt_and_keeps_the_files(
    once_run: OnceRun, job: str, words: list[str]
) -> None:
    job_dir = once_run.setup.outbox / job
    check_failed(job_dir, *words)
    if job in once_run.inputs:
        assert tree_digest(job_dir / "inputs") == once_run.inputs[job]
    else:
        assert (job_dir / "inputs" / "big.mp4").stat().st_size == 501 * 1000 * 1000


@pytest.mark.parametrize(
    ("job", "what_went_wrong", "what_to_do"),
    [
        (
            "cutclip",
            r"clip\.mp4 is cut short: its header says 4\.0 s but only \d+\.\d s can be decoded",
            "copy it again from the original",
        ),
        (
            "cutsong",
            r"song\.mp3 is cut short: its header says 4\.0 s but only \d+\.\d s can be decoded",
            "copy it again from the original",
        ),
        (
            "cutindex",
            r"clip\.mp4 could not be read as a video: its index \(the moov atom\) is missing, "
            r"as in a copy that was cut short",
            "copy it again from the original, or remove it from the job",
        ),
    ],
)
def test_a_file_cut_short_fails_its_job_with_the_backends_sentence_and_keeps_the_files(
    once_run: OnceRun, job: str, what_went_wrong: str, what_to_do: str
) -> None:
    """The local backend's own sentence reaches FAILED.txt, not a generic "unsupported file type"."""
    job_dir = once_run.setup.outbox / job
    failed = check_failed(job_dir)
    said = rf"\nWhat went wrong: {what_went_wrong}\.\nWhat to do: {re.escape(what_to_do)}\.\n"
    assert re.search(said, failed), failed
    assert tree_digest(job_dir / "inputs") == once_run.inputs[job]


def test_folder_without_prompt_is_left_in_the_inbox(once_run: OnceRun) -> None:
    assert (once_run.setup.inbox / "noprompt" / "x.jpg").exists()
    assert not (once_run.setup.outbox / "noprompt").exists()
    assert sorted(p.name for p in once_run.setup.inbox.iterdir()) == ["noprompt"]


def test_status_json_lists_every_job_with_its_state(once_run: OnceRun) -> None:
    shown = nemowatch("status", "--json", "--config", str(once_run.setup.config))
    assert shown.returncode == 0, shown.stderr
    info: dict[str, Any] = json.loads(shown.stdout)
    states = {job["name"]: job["state"] for job in info["jobs"]}
    assert {name: states[name] for name in GOOD_JOBS} == dict.fromkeys(GOOD_JOBS, "done")
    assert states["huge"] == "failed" and states["escape"] == "failed"
    assert info["daemon"]["running"] is False
    assert info["credits"]["available"] >= 0


# -- the long-running daemon -------------------------------------------------------------------


def test_job_dropped_while_down_is_taken_at_start_and_sigterm_exits_0(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    photo(setup.inbox / "early" / "p.jpg", (120, 40, 160))
    write_prompt(setup.inbox / "early", f"{SMALL} of this photo\n")
    digest = tree_digest(setup.inbox / "early")
    daemon = start_daemon(setup)
    try:
        wait_for(lambda: status_of(setup.outbox / "early") == "done", "the job present at start")
        # A second job, dropped while the daemon runs, written file by file.
        late = setup.inbox / "late"
        late.mkdir()
        photo(late / "1.jpg", (0, 90, 200))
        write_prompt(late, f"{SMALL} of this photo\n")
        late_digest = tree_digest(late)
        wait_for(lambda: status_of(setup.outbox / "late") == "done", "the job dropped while running")
        running = json.loads(nemowatch("status", "--json", "--config", str(setup.config)).stdout)
        assert running["daemon"]["running"] is True and running["daemon"]["pid"] == daemon.pid
    finally:
        code = stop_daemon(daemon)
    assert code == 0
    check_done(setup.outbox / "early", inputs=digest, other_jobs=("late",))
    check_done(setup.outbox / "late", inputs=late_digest, other_jobs=("early",))
    log = (tmp_path / "daemon-0.log").read_text()
    assert f"watching {setup.inbox}" in log and "Traceback" not in log


def test_big_file_copied_in_slowly_after_the_prompt_is_uploaded_whole(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    source = clip(tmp_path / "big-source.mp4", seconds=3, size="1280x720")
    with source.open("ab") as handle:  # pad to 30 MB: players ignore bytes after the last atom
        handle.write(os.urandom(30 * 1000 * 1000 - source.stat().st_size))
    daemon = start_daemon(setup)
    try:
        job = setup.inbox / "bigone"
        write_prompt(job, f"{SMALL} from this clip\n")  # the prompt first, as phones often do
        copy_slowly(source, job / "big.mp4", chunk=1 << 20, pause_s=0.05)
        wait_for(lambda: status_of(setup.outbox / "bigone").startswith(("done", "failed")), "the big job")
    finally:
        assert stop_daemon(daemon) == 0
    check_done(setup.outbox / "bigone")
    stored = list(uploads(setup.state))  # the backend names uploads by its own media ids
    assert len(stored) == 1
    assert (
        _digest_of(stored[0])
        == _digest_of(source)
        == _digest_of(setup.outbox / "bigone" / "inputs" / "big.mp4")
    )


def _digest_of(path: Path) -> str:
    return next(iter(tree_digest(path).values()))


def test_restart_resumes_a_job_stopped_by_sigterm_without_a_second_message(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    photo(setup.inbox / "resume" / "p.jpg", (200, 200, 0))
    write_prompt(setup.inbox / "resume", f"{SMALL} of this photo\n")
    digest = tree_digest(setup.inbox / "resume")
    daemon = start_daemon(setup)
    try:
        wait_for(
            lambda: status_of(setup.outbox / "resume").startswith("rendering"),
            "the render to start",
            every=0.02,
        )
    finally:
        assert stop_daemon(daemon, signal.SIGTERM) == 0
    assert status_of(setup.outbox / "resume") != "done"
    again = start_daemon(setup)
    try:
        wait_for(lambda: status_of(setup.outbox / "resume") == "done", "the resumed job")
    finally:
        assert stop_daemon(again) == 0
    result = check_done(setup.outbox / "resume", inputs=digest)
    assert len(result["messages"]) == 1
    sessions = list((setup.state / "local-backend" / "sessions").glob("*"))
    assert len(sessions) == 1
    assert "resuming 1 unfinished job" in (tmp_path / "daemon-1.log").read_text()
