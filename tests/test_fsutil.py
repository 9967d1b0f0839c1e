"""File names that must fit the file system, and the state folder's privacy — on real files and modes."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemowatch.daemon.journal import Journal
from nemowatch.fsutil import (
    NAME_MAX,
    TEMP_ROOM,
    atomic_write,
    fit_name,
    is_temp_name,
    private_dir,
    tighten_private,
)

# 255 and 254 bytes: ASCII, 3-byte (CJK) and 2-byte (Latin accents) UTF-8.
LONG_NAMES = ["a" * 255, "b" * 254, "中" * 85, "é" * 127, "x" + "中" * 84 + "y"]


def size(name: str) -> int:
    return len(name.encode("utf-8"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under the umask it is parametrized with (the process's, so children inherit it)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", LONG_NAMES)
@pytest.mark.parametrize("suffix", ["", "-2", ".mp4", "-12.mp4"])
def test_a_long_name_is_cut_at_a_character_keeping_its_suffix_and_a_hash(name: str, suffix: str) -> None:
    room = NAME_MAX - TEMP_ROOM if suffix.endswith(".mp4") else NAME_MAX
    fitted = fit_name(name, suffix, room=room)
    if size(name + suffix) <= room:
        assert fitted == name + suffix  # what fits is never touched
        return
    assert size(fitted) <= room and fitted.endswith(suffix)
    stem = fitted[: len(fitted) - len(suffix)]
    prefix, _, tag = stem.rpartition("~")
    assert name.startswith(prefix) and len(prefix) > len(name) // 2  # readable: most of the name is kept
    assert len(tag) == 8 and int(tag, 16) >= 0
    assert fitted == fit_name(name, suffix, room=room)  # deterministic: a resumed job finds its files


def test_long_names_sharing_a_prefix_stay_apart() -> None:
    shared = "holiday-" + "x" * 300
    names = {fit_name(shared + tail) for tail in ("-a", "-b", "")}
    assert len(names) == 3 and all(size(name) <= NAME_MAX for name in names)
    assert fit_name("short") == "short"


@pytest.mark.parametrize("name", LONG_NAMES)
def test_atomic_write_to_a_name_of_255_bytes_works(tmp_path: Path, name: str) -> None:
    target = tmp_path / fit_name(name)  # 255 bytes or just under: the temp name derived from it is not
    atomic_write(target, "whole")
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temp left behind
    assert is_temp_name(f".{fit_name(target.name, room=NAME_MAX - TEMP_ROOM)}.0123abcd.nwtmp")


@pytest.mark.parametrize("umask", [0o022, 0o002], indirect=True)
def test_the_state_folder_and_the_journal_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    state = private_dir(tmp_path / "state")
    journal = Journal(state / "journal.sqlite3")
    try:
        journal.put_meta("probe", {"written": True})
        files = [state / name for name in ("journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm")]
        assert all(path.exists() for path in files)  # WAL mode: both side files while it is open
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        journal.close()
    assert mode(state) == 0o700
    shared = tmp_path / "outbox"
    shared.mkdir()
    assert mode(shared) == 0o777 & ~umask  # only the state folder is private


def test_a_wide_state_folder_is_tightened_but_not_a_shared_outbox_inside_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "outbox" / "job").mkdir(parents=True)
    (state / "logs" / "nemowatch.log").write_text("lines")
    (state / "outbox" / "job" / "job.mp4").write_text("video")
    (state / "run.sh").write_text("#!/bin/sh")
    (state / "link").symlink_to(tmp_path)  # never followed: tmp_path keeps its mode
    for path, wide in ((state, 0o755), (state / "logs", 0o775), (state / "outbox", 0o2770)):
        path.chmod(wide)
    (state / "logs" / "nemowatch.log").chmod(0o644)
    (state / "run.sh").chmod(0o755)
    before = mode(tmp_path)

    widened = tighten_private(state, skip=[state / "outbox"])

    assert set(widened) == {state, state / "logs", state / "logs" / "nemowatch.log", state / "run.sh"}
    assert (mode(state), mode(state / "logs"), mode(state / "logs" / "nemowatch.log")) == (
        0o700,
        0o700,
        0o600,
    )
    assert mode(state / "run.sh") == 0o700  # the owner's bits are kept, only others lose theirs
    assert mode(state / "outbox") == 0o2770 and mode(tmp_path) == before
    assert tighten_private(state, skip=[state / "outbox"]) == []  # nothing left to say the next time


def test_private_dir_leaves_an_existing_folder_and_refuses_a_file_in_its_place(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    assert private_dir(shared) == shared and mode(shared) == 0o755  # narrowing is tighten_private's call
    (tmp_path / "work").write_text("a file")
    with pytest.raises(FileExistsError):
        private_dir(tmp_path / "work")
