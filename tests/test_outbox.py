"""The outbox: unique job folders, atomic files, complete videos only, inputs kept, no token anywhere."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from nemowatch.daemon.outbox import Outbox
from nemowatch.daemon.results import video_file_name
from nemowatch.errors import UserError
from nemowatch.logs import add_job_sink, register_secret

DAY_AGO = 1_700_000_000
TOKEN = "plain-user-token-4f9a1c7e"


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Relative path → (sha256, mtime_ns) of every file below ``root``."""
    return {
        p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def make_work(root: Path) -> Path:
    """A claimed job as it lies in the work area, litter and conflicted copies included."""
    files = {
        "prompt.txt": b"a film",
        "1.jpg": os.urandom(2000),
        "clips/10.mp4": os.urandom(30000),
        ".DS_Store": b"litter",
        "__MACOSX/._1.jpg": b"litter",
        "IMG (conflicted copy).jpg": b"other",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        os.utime(root / rel, (DAY_AGO, DAY_AGO))
    return root


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


def test_reserve_gives_the_job_name_then_numbered_names(box: Outbox) -> None:
    assert [box.reserve("shoot").name for _ in range(3)] == ["shoot", "shoot-2", "shoot-3"]
    assert box.reserve("other").name == "other"


@pytest.mark.parametrize("name", ["a" * 255, "b" * 254, "中" * 85, "é" * 127])
def test_a_name_too_long_for_a_numbered_folder_gets_a_shortened_one_and_keeps_its_name(
    box: Outbox, name: str
) -> None:
    assert box.reserve_job(name) == (box.root / name, name)  # 255 bytes fit a folder as they are
    second, unique = box.reserve_job(name)
    third, _ = box.reserve_job(name)
    assert unique == f"{name}-2"  # the journal's and result.json's name: whole
    assert second.name.endswith("-2") and third.name.endswith("-3")
    assert all(len(p.name.encode()) <= 255 and p.is_dir() for p in (second, third))
    assert second.name.startswith(name[:50]) and second.name != third.name
    # Deterministic: a video named after the job fits with room for its temp names, whatever the name.
    video = video_file_name(unique, None)
    assert video == video_file_name(unique, None) and len(video.encode()) <= 255 - 16
    assert video.endswith(".mp4") and video_file_name(unique, 2).endswith("-2.mp4")


def test_concurrent_reservations_never_share_a_folder(box: Outbox) -> None:
    got: list[Path] = []
    lock = threading.Lock()

    def take() -> None:
        path = box.reserve("shoot")
        with lock:
            got.append(path)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 8


def test_status_is_one_line_and_readers_never_see_it_half_written(box: Outbox) -> None:
    job = box.reserve("shoot")
    box.write_status(job, "queued")
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add((job / "STATUS.txt").read_text(encoding="utf-8"))

    reader = threading.Thread(target=read)
    reader.start()
    statuses = [f"rendering {i}% " + "x" * (i % 50 + 1) for i in range(300)]
    for status in statuses:
        box.write_status(job, status)
    done.set()
    reader.join()
    assert seen <= {f"{s}\n" for s in ["queued", *statuses]}
    box.write_status(job, "failed:\n  the render\n  broke")
    assert (job / "STATUS.txt").read_text(encoding="utf-8") == "failed: the render broke\n"
    assert visible(job) == ["STATUS.txt"]


def test_result_json_is_pretty_and_complete(box: Outbox) -> None:
    job = box.reserve("shoot")
    data = {"job": "shoot", "status": "done", "videos": [{"file": "shoot.mp4", "bytes": 12}], "note": "café"}
    box.write_result(job, data)
    text = (job / "result.json").read_text(encoding="utf-8")
    assert json.loads(text) == data
    assert '\n  "status": "done"' in text and "café" in text
    assert visible(job) == ["result.json"]


def test_failed_txt_says_what_went_wrong_and_what_to_do(box: Outbox) -> None:
    job = box.reserve("shoot")
    error = UserError("the backend has no credits left", "top up at https://nemovideo.com", code="2001")
    box.write_failed(job, error)
    text = (job / "FAILED.txt").read_text(encoding="utf-8")
    assert text.splitlines()[:4] == [
        "Job shoot failed.",
        "",
        "What went wrong: the backend has no credits left.",
        "What to do: top up at https://nemovideo.com.",
    ]
    assert "Error code: 2001" in text
    assert "inputs/" in text and "job.log" in text
    assert "run `nemowatch retry shoot`" in text  # how to try again, with the job's own name

    box.write_failed(job, "the render failed", "try again later", job / "inputs")
    lines = (job / "FAILED.txt").read_text(encoding="utf-8").splitlines()
    assert lines[2:4] == ["What went wrong: the render failed.", "What to do: try again later."]


def test_no_outbox_file_ever_holds_the_token(box: Outbox) -> None:
    register_secret(TOKEN)
    job = box.reserve("shoot")
    leak = f"Authorization: Bearer {TOKEN} and nmv_usr_abcdef123456 at /claim?ct=clm_secret99"
    box.write_status(job, leak)
    box.write_result(job, {"error": {"message": leak}})
    box.write_failed(job, UserError(leak, leak))
    for name in ["STATUS.txt", "result.json", "FAILED.txt"]:
        text = (job / name).read_text(encoding="utf-8")
        assert TOKEN not in text and "abcdef123456" not in text, name
        assert "***" in text
        # The claim link is the project link result.json promises (project_url); elsewhere it is masked.
        assert ("secret99" in text) == (name == "result.json"), name
    json.loads((job / "result.json").read_text(encoding="utf-8"))  # still valid JSON


def test_a_video_appears_only_complete(box: Outbox) -> None:
    job = box.reserve("shoot")
    tmp = box.video_temp(job, "shoot.mp4")
    data = os.urandom(200_000)
    with open(tmp, "wb") as fh:
        for i in range(0, len(data), 50_000):
            fh.write(data[i : i + 50_000])
            fh.flush()
            assert not (job / "shoot.mp4").exists()
            assert [n for n in visible(job) if not n.startswith(".")] == []
    final = box.place_video(job, tmp, "shoot.mp4")
    assert final == job / "shoot.mp4"
    assert final.read_bytes() == data
    assert visible(job) == ["shoot.mp4"]


def test_a_video_written_on_another_filesystem_is_copied_aside_then_renamed(
    box: Outbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = box.reserve("shoot")
    elsewhere = tmp_path / "work" / "render.mp4"
    elsewhere.parent.mkdir()
    data = os.urandom(100_000)
    elsewhere.write_bytes(data)
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(src).parent != Path(dst).parent:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    final = box.place_video(job, elsewhere, "shoot.mp4")
    assert final.read_bytes() == data
    assert visible(job) == ["shoot.mp4"]
    assert not elsewhere.exists()


def test_inputs_are_moved_byte_identical_with_tree_and_mtimes(box: Outbox, tmp_path: Path) -> None:
    work = make_work(tmp_path / "work" / "claim" / "shoot")
    before = tree(work)
    job = box.reserve("shoot")
    inputs = box.move_inputs(work, job)
    assert inputs == job / "inputs"
    assert tree(inputs) == before  # litter and conflicted copies too: nothing dropped is lost
    assert not work.exists()


def test_inputs_move_across_filesystems_and_after_an_interrupted_move(
    box: Outbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = make_work(tmp_path / "work" / "claim" / "shoot")
    before = tree(work)
    job = box.reserve("shoot")
    # A crash half-way left some files in inputs/ already (identical copies) and one clash.
    (job / "inputs" / "clips").mkdir(parents=True)
    (job / "inputs" / "clips" / "10.mp4").write_bytes((work / "clips" / "10.mp4").read_bytes())
    (job / "inputs" / "prompt.txt").write_bytes(b"something else")

    def rename(src: Any, dst: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", rename)
    inputs = box.move_inputs(work, job)
    after = tree(inputs)
    assert {k: v[0] for k, v in after.items() if k not in ("prompt.txt", "prompt (2).txt")} == {
        k: v[0] for k, v in before.items() if k != "prompt.txt"
    }
    assert after["prompt (2).txt"] == before["prompt.txt"]  # both versions kept
    assert (inputs / "prompt.txt").read_bytes() == b"something else"
    assert not work.exists()


def test_text_job_input_lands_in_inputs(box: Outbox, tmp_path: Path) -> None:
    work = tmp_path / "work" / "claim" / "idea.txt"
    work.parent.mkdir(parents=True)
    work.write_text("the sea", encoding="utf-8")
    job = box.reserve("idea")
    inputs = box.move_inputs(work, job)
    assert visible(inputs) == ["idea.txt"]
    assert (inputs / "idea.txt").read_text(encoding="utf-8") == "the sea"


def test_cleanup_removes_only_our_leftovers(box: Outbox) -> None:
    job = box.reserve("shoot")
    (job / "inputs").mkdir()
    keep = [job / "result.json", job / "inputs" / ".clip.mp4.part", job / "inputs" / ".x.1234abcd.nwtmp"]
    ours = [job / ".shoot.mp4.part", job / ".STATUS.txt.0a1b2c3d.nwtmp"]
    for path in keep + ours:
        path.write_bytes(b"x")
    assert sorted(box.cleanup_partials(job)) == sorted(ours)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in ours)


def test_job_log_in_the_job_folder_is_masked_too(box: Outbox) -> None:
    register_secret(TOKEN)
    job = box.reserve("shoot")
    sink = add_job_sink("job-7", box.job_log_path(job))
    try:
        logger.bind(job="job-7").info(f"uploading with token {TOKEN}")
        logger.bind(job="other").info("not this job's line")
    finally:
        logger.remove(sink)
    text = (job / "job.log").read_text(encoding="utf-8")
    assert "uploading with token ***" in text
    assert TOKEN not in text and "not this job" not in text
