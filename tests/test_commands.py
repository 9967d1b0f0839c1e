"""`nemowatch status`, `credits` and `retry`, and the daemon's refusals, as a user runs them from a shell."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemowatch.daemon.journal import Journal, journal_path
from nemowatch.states import JobState
from tests.daemon_helpers import (
    SMALL,
    Backend,
    check_done,
    check_failed,
    daemon_env,
    free_port,
    make_setup,
    nemowatch,
    photo,
    run_once,
    serve_backend,
    start_daemon,
    status_of,
    stop_daemon,
    wait_for,
    write_prompt,
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    server = serve_backend(tmp_path_factory.mktemp("backend"))
    yield server
    server.stop()


def _one_clear_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_status_before_the_first_start_says_so(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    shown = nemowatch("status", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    assert "never started" in shown.stdout and "jobs:     none yet" in shown.stdout


def test_status_after_months_of_jobs_lists_what_matters_and_all_on_request(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    with Journal(journal_path(setup.state)) as journal:
        for n in range(1, 31):
            job = journal.add_job(
                f"promo-{n:02d}", "folder", setup.root / "work", setup.outbox / f"promo-{n:02d}"
            )
            journal.set_state(job.id, JobState.DONE)
        broken = journal.add_job("broken", "folder", setup.root / "work", setup.outbox / "broken")
        journal.set_state(broken.id, JobState.FAILED, error={"message": "prompt.txt is empty"})
        journal.add_job("latest", "folder", setup.root / "work", setup.outbox / "latest")

    shown = nemowatch("status", "--config", str(setup.config)).stdout
    assert "jobs:     32" in shown
    assert "(10 older done jobs not listed; `nemowatch status --all` lists every job)" in shown
    assert "promo-10" not in shown and "promo-11  done" in shown and "promo-30  done" in shown
    assert "broken    failed — prompt.txt is empty" in shown and "latest    queued" in shown

    everything = nemowatch("status", "--all", "--config", str(setup.config)).stdout
    assert "not listed" not in everything
    assert all(f"promo-{n:02d}  done" in everything for n in range(1, 31))
    assert len(json.loads(nemowatch("status", "--json", "--config", str(setup.config)).stdout)["jobs"]) == 32


def test_credits_asks_the_backend_and_prints_the_balance(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, local={"credits": 5000})
    shown = nemowatch("credits", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "5,000 credits available (0 reserved)"


def test_credits_of_a_local_backend_without_a_budget_read_as_unlimited(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    shown = nemowatch("credits", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("unlimited credits: the local backend renders on this machine")
    assert "999" not in shown.stdout


def test_credits_with_an_unreachable_backend_is_one_clear_sentence(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, backend="cloud")
    env_url = f"http://127.0.0.1:{free_port()}"
    shown = nemowatch(
        "credits", "--config", str(setup.config), env=daemon_env(NEMO_API_URL=env_url), timeout=120
    )
    assert shown.returncode == 1
    assert _one_clear_line(shown.stderr).startswith("nemowatch: ")


def test_retry_of_an_unknown_job_names_the_known_ones(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    write_prompt(setup.inbox / "blank", " \n")
    assert run_once(setup).returncode == 1
    shown = nemowatch("retry", "nosuch", "--config", str(setup.config))
    assert shown.returncode == 2  # bad usage: the README's rule
    line = _one_clear_line(shown.stderr)
    assert "'nosuch'" in line and "blank" in line


def test_retry_of_a_job_that_did_not_fail_is_refused(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    photo(setup.inbox / "fine" / "p.jpg", (90, 90, 200))
    write_prompt(setup.inbox / "fine", f"{SMALL} of this photo\n")
    assert run_once(setup).returncode == 0
    shown = nemowatch("retry", "fine", "--config", str(setup.config))
    assert shown.returncode == 2
    assert "is done, not failed" in _one_clear_line(shown.stderr)


def test_a_fixed_and_retried_job_is_picked_up_by_the_running_daemon(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    daemon = start_daemon(setup)
    try:
        job = setup.inbox / "fixme"
        photo(job / "p.jpg", (200, 90, 90))
        write_prompt(job, "\n")  # an empty prompt: the job fails and says why
        wait_for(lambda: status_of(setup.outbox / "fixme").startswith("failed"), "the job to fail")
        check_failed(setup.outbox / "fixme", "empty")
        # The user fixes the prompt where the job's files now are, and asks for a retry.
        (setup.outbox / "fixme" / "inputs" / "prompt.txt").write_text(
            f"{SMALL} of this photo\n", encoding="utf-8"
        )
        retried = nemowatch("retry", "fixme", "--config", str(setup.config))
        assert retried.returncode == 0, retried.stderr
        assert "picks it up" in retried.stdout
        wait_for(lambda: status_of(setup.outbox / "fixme") == "done", "the retried job")
        shown = nemowatch("status", "--config", str(setup.config)).stdout
        assert "daemon:   running" in shown and "token:    anonymous" in shown
        assert "credits:  unlimited (local backend), checked 20" in shown
        assert "fixme  done" in shown
    finally:
        assert stop_daemon(daemon) == 0
    check_done(setup.outbox / "fixme")


def test_outbox_inside_the_inbox_is_refused_with_exit_2(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    shown = nemowatch("run", "--config", str(setup.config), "--outbox", str(setup.inbox / "out"))
    assert shown.returncode == 2
    assert "inside the inbox" in _one_clear_line(shown.stderr)
    assert not (setup.inbox / "out").exists()


def test_a_second_daemon_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    daemon = start_daemon(setup)
    try:
        wait_for(lambda: "watching" in (tmp_path / "daemon-0.log").read_text(), "the first daemon")
        second = nemowatch("once", "--config", str(setup.config))
        assert second.returncode == 2  # how it was asked is wrong: another state folder, or stop the first
        assert "already using" in _one_clear_line(second.stderr)
    finally:
        assert stop_daemon(daemon) == 0


def test_a_rejected_token_pauses_the_queue_instead_of_failing_jobs(tmp_path: Path, backend: Backend) -> None:
    setup = make_setup(tmp_path, backend="cloud")
    env = {"NEMO_API_URL": backend.url, "NEMO_TOKEN": "not-a-valid-token-" + uuid.uuid4().hex}
    daemon = start_daemon(setup, **env)
    try:
        wait_for(
            lambda: json.loads(nemowatch("status", "--json", "--config", str(setup.config)).stdout)["paused"],
            "the queue to pause",
        )
        photo(setup.inbox / "held" / "p.jpg", (10, 200, 10))
        write_prompt(setup.inbox / "held", f"{SMALL}\n")
        wait_for(lambda: status_of(setup.outbox / "held") == "queued", "the job to be queued")
        shown = nemowatch("status", "--config", str(setup.config)).stdout
        assert "paused: the token in NEMO_TOKEN was rejected" in shown
    finally:
        assert stop_daemon(daemon) == 0
    assert status_of(setup.outbox / "held") == "queued"
    assert not (setup.outbox / "held" / "FAILED.txt").exists()
    log = (tmp_path / "daemon-0.log").read_text()
    assert env["NEMO_TOKEN"] not in log


def test_every_command_says_bad_usage_in_one_line_with_exit_2(tmp_path: Path) -> None:
    """The README: 2 for bad usage or bad config, one line naming what to fix, never a traceback."""
    setup = make_setup(tmp_path)
    config = str(setup.config)
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    cases = {
        # retry before the daemon ever ran: says so, and creates no journal.
        ("retry", "nosuch", "--config", config): "no journal",
        ("init", "--config", str(file / "config.toml")): "cannot write the config file",
        ("init", "--config", str(tmp_path / "new.toml"), "--inbox", str(file / "inbox")): "fix paths.inbox",
        ("init", "--config", config): "already exists",
        ("serve", "--config", config, "--host", "0.0.0.0"): "set local.access_token",
        ("status", "--config", str(tmp_path / "missing.toml")): "does not exist",
    }
    for args, words in cases.items():
        shown = nemowatch(*args)
        assert shown.returncode == 2, (args, shown.stderr)
        line = _one_clear_line(shown.stderr)
        assert line.startswith("nemowatch: ") and words in line, (args, line)
    assert not setup.journal().exists() and not setup.state.exists()
    for args in (("serve", "--port", "99999"), ("once", "--backend", "nosuch"), ("retry",)):
        shown = nemowatch(*args, "--config", config)
        assert shown.returncode == 2 and "Traceback" not in shown.stderr, (args, shown.stderr)
        assert "error: argument" in shown.stderr or "required" in shown.stderr


def test_a_busy_port_for_serve_is_bad_usage(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        shown = nemowatch("serve", "--config", str(setup.config), "--port", str(port))
    assert shown.returncode == 2
    assert "pick another port" in _one_clear_line(shown.stderr)


def test_a_journal_that_is_no_database_is_one_sentence_not_a_traceback(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    setup.state.mkdir()
    setup.journal().write_text("not sqlite")
    for command in ("status", "retry"):
        shown = nemowatch(command, *(["x"] if command == "retry" else []), "--config", str(setup.config))
        assert shown.returncode == 1, shown.stderr
        assert "cannot be read (file is not a database); if it is damaged" in _one_clear_line(shown.stderr)
    assert setup.journal().read_text() == "not sqlite"  # never replaced: the user decides
