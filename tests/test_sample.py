"""The sample job that ships inside the package: `nemowatch init --sample` and the daemon's hint naming it."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from nemowatch.samples import SAMPLE_NAME, try_it_command
from tests.daemon_helpers import (
    REPO,
    check_done,
    daemon_env,
    make_setup,
    nemowatch,
    start_daemon,
    stop_daemon,
    tree_digest,
    wait_for,
)

SHIPPED = REPO / "nemowatch" / "samples" / SAMPLE_NAME


def _one_clear_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_init_sample_writes_the_job_into_the_inbox_of_the_config_or_of_inbox(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    shown = nemowatch("init", "--sample", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    assert str(setup.inbox / SAMPLE_NAME) in shown.stdout
    written = tree_digest(setup.inbox / SAMPLE_NAME)
    assert written == tree_digest(SHIPPED) and "prompt.txt" in written and len(written) == 5
    assert sorted(p.name for p in setup.inbox.iterdir()) == [SAMPLE_NAME]  # no staging folder left

    # Without any config file (the quick start): --inbox alone says where; no config is written.
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "new" / "inbox"
    shown = nemowatch("init", "--sample", "--inbox", str(elsewhere), env=daemon_env(HOME=str(home)))
    assert shown.returncode == 0, shown.stderr
    assert tree_digest(elsewhere / SAMPLE_NAME) == tree_digest(SHIPPED)
    assert list(home.rglob("*")) == []


def test_init_sample_refuses_a_sample_not_yet_taken_and_an_unwritable_inbox(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    assert nemowatch("init", "--sample", "--config", str(setup.config)).returncode == 0
    again = nemowatch("init", "--sample", "--config", str(setup.config))
    assert again.returncode == 2
    assert "already exists" in _one_clear_line(again.stderr)

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    shown = nemowatch("init", "--sample", "--inbox", str(blocked / "inbox"), "--config", str(setup.config))
    assert shown.returncode == 2
    assert "cannot write the sample job" in _one_clear_line(shown.stderr)


def test_the_daemons_hint_writes_the_sample_and_it_becomes_the_promised_video(tmp_path: Path) -> None:
    """The start-up line names a command; pasted as it stands, the sample job ends as a 12 s 1080p video."""
    setup = make_setup(tmp_path)
    daemon = start_daemon(setup)
    try:
        log = tmp_path / "daemon-0.log"
        hint = wait_for(
            lambda: next((line for line in log.read_text().splitlines() if "to try it: " in line), None),
            "the daemon's hint",
        )
        command = shlex.split(hint.split("to try it: ", 1)[1].split(" — ", 1)[0])
        assert command[0] == "nemowatch"  # started as `python -m nemowatch`, so no path of its own
        assert command[1:] == ["init", "--sample", "--inbox", os.path.abspath(setup.inbox)]
        pasted = nemowatch(*command[1:])
        assert pasted.returncode == 0, pasted.stderr
        job = setup.outbox / SAMPLE_NAME
        assert str(job) in hint
        wait_for(lambda: (job / "result.json").exists(), "the sample's result", timeout=240)
    finally:
        assert stop_daemon(daemon) == 0
    result = check_done(job, inputs=tree_digest(SHIPPED), size=(1920, 1080))
    assert abs(result["videos"][0]["duration_s"] - 12) < 0.5


def test_the_hint_names_the_program_the_daemon_was_started_as(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A venv that is not on PATH (the quick start's .venv/bin/nemowatch): the hint names that program."""
    program = tmp_path / "venv" / "bin" / "nemowatch"
    monkeypatch.setattr(sys, "argv", [str(program), "run"])
    assert shlex.split(try_it_command(Path("in box"))) == [
        str(program),
        "init",
        "--sample",
        "--inbox",
        os.path.abspath("in box"),
    ]
