"""The token handed over as a systemd credential ($CREDENTIALS_DIRECTORY/nemo-token) is used and never written out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemowatch.local.server import LocalSettings, RunningServer, start_server

REPO = Path(__file__).resolve().parents[1]
TOKEN = "credential-token-Zq81xVw3"  # no nmv_ prefix: masking by shape must not be what hides it


@pytest.fixture
def guarded_backend(tmp_path: Path) -> Iterator[RunningServer]:
    """A real loopback backend that accepts only TOKEN and issues no anonymous tokens.

    So a request succeeds only if it carried the credential's token.
    """
    server = start_server(LocalSettings(state_dir=tmp_path / "backend", port=0, access_token=TOKEN))
    yield server
    server.stop()


@pytest.fixture
def setup(tmp_path: Path, guarded_backend: RunningServer) -> tuple[Path, dict[str, str]]:
    """A cloud-backend config pointed at the guarded backend, and the environment systemd would give."""
    for name in ("inbox", "outbox", "state", "home", "credentials"):
        (tmp_path / name).mkdir()
    (tmp_path / "credentials" / "nemo-token").write_text(TOKEN + "\n")
    (tmp_path / "credentials" / "nemo-token").chmod(0o400)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\ninbox = "{tmp_path / "inbox"}"\noutbox = "{tmp_path / "outbox"}"\n'
        f'state = "{tmp_path / "state"}"\n[backend]\nkind = "cloud"\n'
        "[watch]\nsettle_s = 0.5\n[api]\nrender_poll_interval_s = 0.2\n"
    )
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NEMO", "CREDENTIALS", "NOTIFY", "WATCHDOG"))
        },
        "NEMO_API_URL": guarded_backend.url,
        "NEMO_WEB_URL": guarded_backend.url,
        "CREDENTIALS_DIRECTORY": str(tmp_path / "credentials"),
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(REPO),
    }
    return config, env


def nemowatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nemowatch", *args], env=env, capture_output=True, text=True, timeout=120
    )


def files_holding_token(*roots: Path) -> list[Path]:
    """Every file under ``roots`` (the credential itself excluded) whose bytes contain the token."""
    return [
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and path.name != "nemo-token" and TOKEN.encode() in path.read_bytes()
    ]


def test_credits_use_the_credential_token(setup: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    config, env = setup
    result = nemowatch("credits", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "credits available" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert files_holding_token(tmp_path / "state", tmp_path / "home") == []


def test_without_the_credential_the_guarded_backend_refuses(setup: tuple[Path, dict[str, str]]) -> None:
    # The control for the test above: its success really depends on the credential.
    config, env = setup
    env.pop("CREDENTIALS_DIRECTORY")
    result = nemowatch("credits", "--config", str(config), env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_daemon_runs_a_job_with_the_credential_and_never_logs_it(
    setup: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    config, env = setup
    (tmp_path / "inbox" / "sea.txt").write_text("A five second video of waves at sunset.\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemowatch", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = tmp_path / "outbox" / "sea" / "result.json"
    deadline = time.monotonic() + 120
    try:
        while not result.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert TOKEN not in " ".join(proc.args)  # not in the process arguments either
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert result.exists(), stderr[-3000:]
    assert json.loads(result.read_text())["status"] == "done", result.read_text()
    assert TOKEN not in stdout + stderr
    assert files_holding_token(tmp_path / "state", tmp_path / "outbox", tmp_path / "home") == []
