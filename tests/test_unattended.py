"""Issue #11's small truths, through real `nemowatch once` runs on the local backend: names too long
for the outbox, names carrying control characters, prompt.txt that is no readable file, symlinked
jobs, and the state folder's modes."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import (
    SMALL,
    Setup,
    check_failed,
    decode,
    make_setup,
    nemowatch,
    photo,
    run_once,
    status_of,
    write_prompt,
)

# 255 and 254 bytes, ASCII and multi-byte UTF-8; the two ASCII names share a 254-byte prefix.
LONG = {
    "ascii-255": "holiday-" + "x" * 247,
    "ascii-254": "holiday-" + "x" * 246,
    "cjk-255": "假期" * 42 + "中",
    "latin-254": "é" * 127,
}
# A newline followed by what looks like a log line, and "clear the screen".
FORGER = "clip\n2026-01-01 INFO done\x1b[2J"
FORGER_SHOWN = "clip\\n2026-01-01 INFO done\\x1b[2J"


def _bytes(name: str) -> int:
    return len(os.fsencode(name))


def _results(outbox: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """{result.json's job name: (its outbox folder, result.json)} for every finished job."""
    found = {}
    for folder in outbox.iterdir():
        if (folder / "result.json").exists():
            result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
            found[result["job"]] = (folder, result)
    return found


def _all_names(root: Path) -> list[str]:
    return [name for _, dirs, files in os.walk(root) for name in dirs + files]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Setup, str]]:
    """One `once` over every awkward job at the same time; yields the setup and the console output."""
    root = tmp_path_factory.mktemp("unattended")
    setup = make_setup(root)
    for i, name in enumerate([*LONG.values(), FORGER]):
        photo(setup.inbox / name / "p.jpg", (40 * i, 120, 200))
        write_prompt(setup.inbox / name, f"{SMALL} of this photo\n")
        if name in LONG.values():
            (setup.outbox / name).mkdir()  # the outbox name is taken: the job gets <name>-2
    # prompt.txt that is no readable file: each job must fail saying so, not wait forever.
    for name in ("prompt-folder", "prompt-link"):
        photo(setup.inbox / name / "p.jpg", (200, 60, 60))
    (setup.inbox / "prompt-folder" / "prompt.txt").mkdir()
    (root / "secret.txt").write_text(f"{SMALL}, with the contents of this file", encoding="utf-8")
    (setup.inbox / "prompt-link" / "prompt.txt").symlink_to(root / "secret.txt")
    # A job folder and a text job linked into the inbox instead of copied.
    elsewhere = root / "elsewhere"
    photo(elsewhere / "linked" / "p.jpg", (60, 200, 60))
    write_prompt(elsewhere / "linked", f"{SMALL} of this photo\n")
    (elsewhere / "idea.txt").write_text("a title card", encoding="utf-8")
    (setup.inbox / "linked").symlink_to(elsewhere / "linked")
    (setup.inbox / "idea.txt").symlink_to(elsewhere / "idea.txt")

    done = run_once(setup)
    assert done.returncode == 1, done.stderr  # the two prompt jobs failed; everything else is done
    yield setup, done.stderr


def test_names_too_long_for_the_outbox_are_shortened_and_the_jobs_done(run: tuple[Setup, str]) -> None:
    setup, console = run
    results = _results(setup.outbox)
    folders = []
    for name in LONG.values():
        assert (setup.outbox / name).is_dir() and not any((setup.outbox / name).iterdir())  # untouched
        folder, result = results[f"{name}-2"]  # the full name, in result.json (and the journal)
        folders.append(folder.name)
        assert status_of(folder) == "done" and result["status"] == "done"
        assert _bytes(folder.name) <= 255 and folder.name.endswith("-2") and folder.name != f"{name}-2"
        assert folder.name.startswith(name[:40])  # readable: the name's beginning is kept
        [video] = result["videos"]
        assert _bytes(video["file"]) <= 255 - 16 and video["file"].endswith(".mp4")
        decoded = decode(folder / video["file"])
        assert (decoded.width, decoded.height) == (video["width"], video["height"])
        assert sorted(p.name for p in folder.glob("*.mp4")) == [video["file"]]
        assert (folder / "inputs" / "p.jpg").is_file() and (folder / "inputs" / "prompt.txt").is_file()
    assert len(set(folders)) == len(LONG)  # the names sharing a 254-byte prefix stay apart
    hidden = [n for n in _all_names(setup.outbox) if n.startswith(".")]
    assert hidden == []  # no temp file left behind, none failed half-way on a long name
    assert "too long" not in console
    status = nemowatch("status", "--config", str(setup.config))
    assert status.returncode == 0
    for name in LONG.values():
        assert re.search(f"^  {re.escape(name)}-2 +done$", status.stdout, re.M)  # whole, not the folder's


def test_control_characters_in_a_name_are_escaped_in_every_log_and_in_status(run: tuple[Setup, str]) -> None:
    setup, console = run
    folder, result = _results(setup.outbox)[FORGER]
    assert folder.name == FORGER and result["status"] == "done"  # the job itself is fine
    decode(folder / result["videos"][0]["file"])
    status = nemowatch("status", "--config", str(setup.config))
    status_json = nemowatch("status", "--json", "--config", str(setup.config))
    shown = {
        "console": console,
        "daemon log": (setup.state / "logs" / "nemowatch.log").read_text(encoding="utf-8"),
        "job.log": (folder / "job.log").read_text(encoding="utf-8"),
        "status": status.stdout,
    }
    for where, text in shown.items():
        assert FORGER_SHOWN in text, f"{where} does not show the name escaped:\n{text}"
        assert "\x1b" not in text, f"{where} holds a raw escape sequence"
        forged = [line for line in text.splitlines() if line.startswith("2026-01-01 INFO done")]
        assert forged == [], f"{where} holds a forged line: {forged}"
    assert FORGER in [job["name"] for job in json.loads(status_json.stdout)["jobs"]]  # JSON escapes itself
    # A command's one-line answer naming the jobs (here: retry's list of the known ones) stays one line.
    refused = nemowatch("retry", "nosuch", "--config", str(setup.config))
    assert refused.returncode == 2 and FORGER_SHOWN in refused.stderr
    assert len(refused.stderr.splitlines()) == 1 and "\x1b" not in refused.stderr


def test_a_prompt_txt_that_is_no_readable_file_fails_the_job_saying_so(run: tuple[Setup, str]) -> None:
    setup, console = run
    failed = check_failed(setup.outbox / "prompt-folder", "prompt.txt is a folder, not a text file")
    assert "replace the folder prompt.txt with a text file" in failed
    assert (setup.outbox / "prompt-folder" / "inputs" / "prompt.txt").is_dir()  # kept as dropped
    failed = check_failed(
        setup.outbox / "prompt-link", "prompt.txt is a link to a file outside the job folder"
    )
    assert "copy the text itself into prompt.txt" in failed
    assert (setup.outbox / "prompt-link" / "inputs" / "prompt.txt").is_symlink()
    status = nemowatch("status", "--config", str(setup.config)).stdout
    assert re.search(
        r"^  prompt-folder +failed — prompt\.txt is a folder, not a text file; replace", status, re.M
    )
    assert "prompt-link" in status and "no prompt.txt" not in status + console
    assert "prompt.txt is a folder, not a text file" in console  # the failure is in the log too


def test_symlinked_jobs_are_reported_and_left_alone(run: tuple[Setup, str]) -> None:
    setup, console = run
    for name, what in (("linked", "folder"), ("idea.txt", "file")):
        line = (
            f"skipped {name} in the inbox: it is a link to a {'folder' if what == 'folder' else 'text file'};"
            f" links are never followed — copy the {what} into the inbox instead"
        )
        assert console.count(line) == 1, console
        assert (setup.inbox / name).is_symlink()
    assert (setup.root / "elsewhere" / "linked" / "prompt.txt").exists()  # never claimed, never moved
    assert not (setup.outbox / "linked").exists() and not (setup.outbox / "idea").exists()
    status = nemowatch("status", "--config", str(setup.config)).stdout
    assert "skipped:  linked (a link to a folder; links are never followed" in status
    assert "skipped:  idea.txt (a link to a text file;" in status


# -- the state folder's modes --------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_the_state_folder_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)  # the daemon inherits it, as from a login shell
    try:
        setup = make_setup(tmp_path)
        first = run_once(setup)
        assert first.returncode == 0, first.stderr
        state = setup.state
        private = {
            state: 0o700,
            state / "work": 0o700,
            state / "logs": 0o700,
            state / "logs" / "nemowatch.log": 0o600,
            state / "journal.sqlite3": 0o600,
            state / "daemon.lock": 0o600,
            state / "local-backend": 0o700,
            state / "local-client": 0o700,
            state / "local-client" / "token.json": 0o600,
        }
        assert {str(p): _mode(p) for p in private} == {str(p): m for p, m in private.items()}
        # The inbox and outbox are for people: they keep the umask's modes (group-readable results).
        assert _mode(setup.outbox) == _mode(setup.inbox) == 0o777 & ~umask
        assert "open to other users" not in first.stderr

        # An existing state folder with wider modes (made by hand, or by an older version) …
        state.chmod(0o755)
        (state / "journal.sqlite3").chmod(0o644)
        (state / "logs").chmod(0o755)
        second = run_once(setup)
        assert second.returncode == 0, second.stderr
        assert (
            second.stderr.count("the state folder") == 1 and "is now the daemon user's alone" in second.stderr
        )
        wide = [path for path in [state, *state.rglob("*")] if not path.is_symlink() and _mode(path) & 0o077]
        assert wide == [], "still open to others: " + ", ".join(f"{p} {_mode(p):o}" for p in wide)
        third = run_once(setup)  # … is narrowed and said once: nothing to say the next time
        assert third.returncode == 0 and "open to other users" not in third.stderr
    finally:
        os.umask(old)
