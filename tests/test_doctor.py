"""`nemowatch doctor`: a healthy setup passes every check; each broken part fails with its fix, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemowatch.cli import main
from nemowatch.config import load_config
from nemowatch.doctor import check_memory, memory_check
from nemowatch.local.server import LocalSettings, RunningServer, start_server

ACCESS_TOKEN = "local-access-token-0123456789"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token, URL or config from the machine running the tests; a private HOME for the client id."""
    for name in ("NEMO_TOKEN", "NEMO_API_URL", "NEMO_WEB_URL", "NEMO_CLIENT_ID", "NEMOWATCH_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NEMOWATCH_CONFIG", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def setup(tmp_path: Path, extra: str = "", **paths: str) -> Path:
    """Folders and a config file; ``paths`` replaces inbox/outbox/state (not created then)."""
    folders = {name: tmp_path / name for name in ("inbox", "outbox", "state")}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    folders.update({name: Path(value) for name, value in paths.items()})
    config = tmp_path / "config.toml"
    config.write_text(
        "[paths]\n"
        + "".join(f'{name} = "{folder}"\n' for name, folder in folders.items())
        + (extra or '[backend]\nkind = "local"\n')
    )
    return config


def doctor(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["doctor", "--config", str(config)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return status, captured.out.splitlines()


def line_about(lines: list[str], *words: str) -> str:
    found = [line for line in lines if all(word in line for word in words)]
    assert found, f"no line with {words}: {lines}"
    return found[0]


@pytest.fixture
def guarded_backend(tmp_path: Path) -> Iterator[RunningServer]:
    """A real local backend that accepts only ACCESS_TOKEN (as a cloud account would accept only yours)."""
    server = start_server(LocalSettings(state_dir=tmp_path / "backend", port=0, access_token=ACCESS_TOKEN))
    yield server
    server.stop()


def test_healthy_local_setup_passes_every_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = doctor(setup(tmp_path), capsys)
    assert status == 0
    checks, last = lines[:-1], lines[-1]
    assert len(checks) >= 10 and all(line.startswith("ok ") for line in checks), lines
    assert last.startswith("all checks passed")
    for words in (
        ("config", str(tmp_path)),
        ("inotify sees",),
        ("ffmpeg", "libx264"),
        ("credits: unlimited (local backend)",),
        ("free",),
        ("of memory available for local renders",),
    ):
        line_about(checks, *words)


def test_missing_inbox_fails_and_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo" / "inbox"
    status, lines = doctor(setup(tmp_path, inbox=str(missing)), capsys)
    assert status == 1
    assert line_about(lines, "FAIL", str(missing)).endswith(
        f"create it (mkdir -p {missing}) or fix paths.inbox"
    )


def test_unwritable_outbox_fails_and_names_the_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The tests run as root here, and chmod 0500 does not stop root. sysfs refuses to create
    # files for every user, root included, so /sys is a folder that really cannot be written.
    status, lines = doctor(setup(tmp_path, outbox="/sys"), capsys)
    assert status == 1
    line = line_about(lines, "FAIL", "outbox /sys is not writable")
    assert "paths.outbox" in line


def test_outbox_inside_the_inbox_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "inbox" / "results").mkdir(parents=True)
    status, lines = doctor(setup(tmp_path, outbox=str(tmp_path / "inbox" / "results")), capsys)
    assert status == 1
    assert "paths.outbox" in line_about(lines, "FAIL", "inside the inbox")


def test_unreachable_cloud_backend_fails_with_the_url_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("NEMO_API_URL", f"http://127.0.0.1:{port}")
    status, lines = doctor(setup(tmp_path, '[backend]\nkind = "cloud"\n'), capsys)
    assert status == 1
    line = line_about(lines, "FAIL", f"127.0.0.1:{port}", "unreachable")
    assert "NEMO_API_URL" in line


def test_rejected_token_fails_with_the_fix_and_is_never_shown(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    guarded_backend: RunningServer,
) -> None:
    wrong = "wrong-token-abcdef123456"
    monkeypatch.setenv("NEMO_API_URL", guarded_backend.url)
    monkeypatch.setenv("NEMO_TOKEN", wrong)
    status, lines = doctor(setup(tmp_path, '[backend]\nkind = "cloud"\n'), capsys)
    assert status == 1
    line = line_about(lines, "FAIL", "token", "rejected")
    assert "NEMO_TOKEN" in line and "valid token" in line
    assert not any(wrong in text for text in lines)


def test_accepted_token_and_its_source_are_reported(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    guarded_backend: RunningServer,
) -> None:
    monkeypatch.setenv("NEMO_API_URL", guarded_backend.url)
    monkeypatch.setenv("NEMO_TOKEN", ACCESS_TOKEN)
    status, lines = doctor(setup(tmp_path, '[backend]\nkind = "cloud"\n'), capsys)
    assert status == 0, lines
    line_about(lines, "ok", "token (NEMO_TOKEN) accepted")
    assert not any(ACCESS_TOKEN in text for text in lines)


def test_credits_below_min_credits_warn_but_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup(tmp_path, '[backend]\nkind = "local"\n[local]\ncredits = 50\n[jobs]\nmin_credits = 100\n')
    status, lines = doctor(config, capsys)
    assert status == 0
    assert "top up" in line_about(lines, "warn", "credits: 50 available")


def test_polling_setup_skips_inotify_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup(tmp_path, '[backend]\nkind = "local"\n[watch]\npolling = true\npoll_interval_s = 10\n')
    status, lines = doctor(config, capsys)
    assert status == 0
    line_about(lines, "ok", "polling every 10 s")
    assert not any("inotify" in line for line in lines)


def test_an_ffmpeg_too_old_for_the_renderer_fails_and_says_how_to_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What IMAGEIO_FFMPEG_EXE pointing at a distribution's ffmpeg 4.2 looks like to doctor.
    old = tmp_path / "ffmpeg"
    old.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *-version*) echo "ffmpeg version 4.2.2 Copyright (c) 2000-2019 the FFmpeg developers" ;;\n'
        '  *-encoders*) echo " V..... libx264              libx264 H.264 / AVC / MPEG-4 AVC" ;;\n'
        "esac\n"
    )
    old.chmod(0o755)
    monkeypatch.setattr("nemowatch.ffmpeg.ffmpeg_exe", lambda: str(old))
    status, lines = doctor(setup(tmp_path), capsys)
    assert status == 1
    line = line_about(lines, "FAIL", "ffmpeg version 4.2.2 is too old for the local renderer")
    assert "imageio-ffmpeg>=0.6" in line


GB = 1024**3


@pytest.mark.parametrize(
    ("available", "renders", "status", "words"),
    [
        (
            23 * GB,
            2,
            "ok",
            "23.0 GB of memory available for local renders (2 at once of 20-photo jobs need about 4.1 GB)",
        ),
        (3 * GB, 2, "warn", "set jobs.max_concurrent = 1"),
        (3 * GB, 1, "ok", "(1 at once of 20-photo jobs need about 2.1 GB)"),
        (1 * GB, 1, "warn", "keep jobs to fewer photos (80 MB each), or use the cloud backend"),
        (None, 2, "warn", "could not read the memory available"),
    ],
)
def test_memory_check_plans_for_the_renders_the_daemon_runs_at_once(
    available: int | None, renders: int, status: str, words: str
) -> None:
    check = memory_check(available, renders)
    assert check.status == status and words in check.line()


def test_the_memory_check_is_only_for_the_local_backend(tmp_path: Path) -> None:
    assert check_memory(load_config(setup(tmp_path, '[backend]\nkind = "cloud"\n'))) is None
    assert check_memory(load_config(setup(tmp_path))) is not None
