"""Claiming a job out of the inbox: atomic on one filesystem, copy-verify-delete across two, crash-safe."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nemowatch.daemon.claim import RECORD, ClaimError, claim, move_path, recover_claims

DAY_AGO = 1_700_000_000


class Crash(BaseException):
    """Stands in for the process dying (kill -9, power loss) at a chosen point."""


def make_tree(root: Path) -> Path:
    """A job folder with nested media, litter, a conflicted copy and symlinks, all with old mtimes."""
    files = {
        "prompt.txt": b"a film",
        "1.jpg": b"\xff\xd8" + os.urandom(3000),
        "clips/10.mp4": os.urandom(20000),
        "clips/deep/2.mov": os.urandom(500),
        ".DS_Store": b"litter",
        "IMG (conflicted copy).jpg": b"other",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "inside.jpg").symlink_to("1.jpg")
    (root / "outside.jpg").symlink_to("/etc/hostname")
    for path in [*sorted(root.rglob("*"), reverse=True), root]:
        os.utime(path, (DAY_AGO, DAY_AGO), follow_symlinks=False)
    return root


def snapshot(root: Path) -> dict[str, Any]:
    """Everything a user would call 'the same files': paths, kinds, bytes, link targets and mtimes."""
    out: dict[str, Any] = {}
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        rel = path.relative_to(root).as_posix() if root.is_dir() else "."
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
        elif path.is_dir():
            out[rel] = ("dir", st.st_mtime_ns if rel != "." else None)
        else:
            out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
    return out


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def cross_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every os.rename fails as it does between two filesystems."""

    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))

    monkeypatch.setattr(os, "rename", rename)


def stage(claimed: Path) -> str:
    return json.loads((claimed.parent / RECORD).read_text())["stage"]


def test_claim_on_one_filesystem_moves_the_folder_out_of_the_inbox(inbox: Path, tmp_path: Path) -> None:
    job = make_tree(inbox / "shoot")
    before = snapshot(job)
    claimed = claim(job, tmp_path / "work")

    assert not job.exists()
    assert claimed.name == "shoot" and claimed.parent.parent == tmp_path / "work"
    assert snapshot(claimed) == before
    assert recover_claims(tmp_path / "work") == [claimed]


def test_claiming_two_jobs_of_the_same_name_gives_two_folders(inbox: Path, tmp_path: Path) -> None:
    first = claim(make_tree(inbox / "shoot"), tmp_path / "work")
    second = claim(make_tree(inbox / "shoot"), tmp_path / "work")
    assert first != second and first.exists() and second.exists()


def test_text_job_is_claimed_as_its_file(inbox: Path, tmp_path: Path) -> None:
    (inbox / "idea.txt").write_text("the sea", encoding="utf-8")
    claimed = claim(inbox / "idea.txt", tmp_path / "work")
    assert claimed.name == "idea.txt" and claimed.read_text(encoding="utf-8") == "the sea"
    assert not (inbox / "idea.txt").exists()


def test_claim_across_filesystems_copies_verifies_then_deletes(
    inbox: Path, tmp_path: Path, cross_device: None
) -> None:
    job = make_tree(inbox / "shoot")
    before = snapshot(job)
    claimed = claim(job, tmp_path / "work")

    assert not job.exists()
    assert snapshot(claimed) == before  # bytes, mtimes and links (copied as links, never followed)
    assert stage(claimed) == "done"
    assert recover_claims(tmp_path / "work") == [claimed]


def test_text_job_claim_across_filesystems(inbox: Path, tmp_path: Path, cross_device: None) -> None:
    (inbox / "idea.txt").write_text("the sea", encoding="utf-8")
    os.utime(inbox / "idea.txt", (DAY_AGO, DAY_AGO))
    claimed = claim(inbox / "idea.txt", tmp_path / "work")
    assert claimed.read_text(encoding="utf-8") == "the sea"
    assert claimed.stat().st_mtime == DAY_AGO
    assert not (inbox / "idea.txt").exists()


def crash_on(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, after: int) -> None:
    """Let ``target.name`` run ``after`` times, then 'crash' the process."""
    real: Callable[..., Any] = getattr(target, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > after:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


def test_crash_during_the_copy_keeps_the_job_in_the_inbox(
    inbox: Path, tmp_path: Path, cross_device: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_tree(inbox / "shoot")
    before = snapshot(job)
    crash_on(monkeypatch, shutil, "copy2", after=2)
    with pytest.raises(Crash):
        claim(job, tmp_path / "work")
    monkeypatch.undo()

    assert snapshot(job) == before
    assert recover_claims(tmp_path / "work") == []
    assert list((tmp_path / "work").iterdir()) == []  # the half copy is gone
    assert snapshot(job) == before


def test_crash_while_deleting_the_source_is_finished_on_restart(
    inbox: Path, tmp_path: Path, cross_device: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_tree(inbox / "shoot")
    before = snapshot(job)
    crash_on(monkeypatch, os, "unlink", after=3)
    with pytest.raises(Crash):
        claim(job, tmp_path / "work")
    monkeypatch.undo()

    # Both copies exist, the source in part: nothing is lost.
    [folder] = (tmp_path / "work").iterdir()
    assert snapshot(folder / "shoot") == before
    assert job.exists()
    (job / "dropped-later.jpg").write_bytes(b"new")  # the user adds a file meanwhile

    assert recover_claims(tmp_path / "work") == [folder / "shoot"]
    assert snapshot(folder / "shoot") == before
    # Only what was copied is deleted from the inbox; the newcomer stays.
    assert sorted(p.relative_to(job).as_posix() for p in job.rglob("*")) == ["dropped-later.jpg"]
    assert stage(folder / "shoot") == "done"


def test_copy_that_does_not_match_fails_and_keeps_the_source(
    inbox: Path, tmp_path: Path, cross_device: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_tree(inbox / "shoot")
    before = snapshot(job)
    real = shutil.copy2

    def truncating_copy(src: Any, dst: Any, **kwargs: Any) -> Any:
        result = real(src, dst, **kwargs)
        if str(src).endswith("10.mp4"):
            with open(dst, "r+b") as fh:
                fh.truncate(100)  # a full disk or a flaky share
        return result

    monkeypatch.setattr(shutil, "copy2", truncating_copy)
    with pytest.raises(ClaimError, match="cannot move job shoot out of the inbox"):
        claim(job, tmp_path / "work")
    assert snapshot(job) == before
    assert list((tmp_path / "work").iterdir()) == []


def test_claiming_a_job_that_vanished_is_one_clear_sentence(inbox: Path, tmp_path: Path) -> None:
    with pytest.raises(ClaimError) as caught:
        claim(inbox / "gone", tmp_path / "work")
    assert str(caught.value) == (
        "job gone disappeared from the inbox before it could be claimed; drop it again if that was not intended."
    )
    assert list((tmp_path / "work").iterdir()) == []


def test_restart_after_a_crash_before_the_rename_leaves_the_job_in_the_inbox(
    inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_tree(inbox / "shoot")
    crash_on(monkeypatch, os, "rename", after=0)
    with pytest.raises(Crash):
        claim(job, tmp_path / "work")
    monkeypatch.undo()
    assert recover_claims(tmp_path / "work") == []
    assert list((tmp_path / "work").iterdir()) == []
    assert job.exists()


def test_recovery_leaves_folders_that_are_not_claims_alone(tmp_path: Path) -> None:
    stranger = tmp_path / "work" / "something"
    stranger.mkdir(parents=True)
    (stranger / "file").write_bytes(b"x")
    assert recover_claims(tmp_path / "work") == []
    assert (stranger / "file").exists()


def test_move_path_across_filesystems_keeps_bytes_and_mtimes(tmp_path: Path, cross_device: None) -> None:
    src = make_tree(tmp_path / "src")
    before = snapshot(src)
    moved = move_path(src, tmp_path / "dst")
    assert not src.exists()
    assert snapshot(moved) == before
