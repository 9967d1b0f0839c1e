"""Shared parts of the daemon's end-to-end and crash tests: configs, media, subprocesses, outbox checks.

Every daemon here is the real one (``python -m nemowatch …`` in a subprocess) against the real
local backend; media are made with ffmpeg and Pillow, results decoded again with ffmpeg. A test that
needs a crash point or short waits runs the same command through ``tests/crash_daemon.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CLIENT_ID = "6f1c1f1e-0d7e-4d0e-9a55-6a8f3f0c2b11"
# The words the local director reads as "short and small": every render in these tests is tiny.
SMALL = "a 3-second 720p video"
RESULT_KEYS = {
    "job",
    "status",
    "backend",
    "session_id",
    "videos",
    "timeline",
    "messages",
    "project_url",
    "credits",
    "started_at",
    "finished_at",
}
# Safety nets only (a hung daemon must not hang the suite); nothing asserts on durations.
ONCE_TIMEOUT_S = 240
WAIT_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Setup:
    """One test installation: its folders and config file."""

    root: Path
    config: Path
    inbox: Path
    outbox: Path
    state: Path

    def job_dir(self, name: str) -> Path:
        return self.outbox / name

    def journal(self) -> Path:
        return self.state / "journal.sqlite3"


def make_setup(root: Path, *, backend: str = "local", **sections: dict[str, Any]) -> Setup:
    """Folders and a config tuned for tests: tiny settle and poll times."""
    inbox, outbox, state = root / "inbox", root / "outbox", root / "state"
    for folder in (inbox, outbox):
        folder.mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, Any]] = {
        "paths": {"inbox": str(inbox), "outbox": str(outbox), "state": str(state)},
        "backend": {"kind": backend},
        "api": {"render_poll_interval_s": 0.2},
        "watch": {"settle_s": 0.5, "rescan_s": 2, "poll_interval_s": 0.5},
        "jobs": {"max_concurrent": 2},
    }
    for name, values in sections.items():
        tables.setdefault(name, {}).update(values)
    lines = []
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    config = root / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Setup(root, config, inbox, outbox, state)


def daemon_env(**extra: str) -> dict[str, str]:
    """The environment a test daemon runs in: this checkout, a fixed client id, no user token."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEMO", "NOTIFY_SOCKET", "JOURNAL_STREAM"))
    }
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["NEMO_CLIENT_ID"] = CLIENT_ID
    env.update(extra)
    return env


def command_line(*args: str, crash_at: str = "", fast_waits: bool = False) -> list[str]:
    """``python -m nemowatch ARGS``, or the same through ``tests.crash_daemon`` when the test asks for
    a crash point or the fast waits (test parts the production daemon has no way to take)."""
    if not (crash_at or fast_waits):
        return [sys.executable, "-m", "nemowatch", *args]
    extra = (["--crash-at", crash_at] if crash_at else []) + (["--fast-waits"] if fast_waits else [])
    return [sys.executable, "-m", "tests.crash_daemon", *args, *extra]


def nemowatch(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    crash_at: str = "",
    fast_waits: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one nemowatch command to completion."""
    return subprocess.run(
        command_line(*args, crash_at=crash_at, fast_waits=fast_waits),
        env=env or daemon_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_once(
    setup: Setup, *, crash_at: str = "", fast_waits: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """`nemowatch once` over the setup's inbox (``crash_at``, ``fast_waits``: see tests/crash_daemon.py)."""
    return nemowatch(
        "once",
        "--config",
        str(setup.config),
        env=daemon_env(**env),
        timeout=ONCE_TIMEOUT_S,
        crash_at=crash_at,
        fast_waits=fast_waits,
    )


def start_daemon(
    setup: Setup, command: str = "run", *, fast_waits: bool = False, **env: str
) -> subprocess.Popen[str]:
    """`nemowatch run` in the background; its output goes to <root>/daemon-<n>.log."""
    n = len(list(setup.root.glob("daemon-*.log")))
    log = (setup.root / f"daemon-{n}.log").open("w")
    return subprocess.Popen(
        command_line(command, "--config", str(setup.config), fast_waits=fast_waits),
        env=daemon_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_daemon(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` and wait for the exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=WAIT_TIMEOUT_S)


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT_S, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def status_of(job_dir: Path) -> str:
    try:
        return (job_dir / "STATUS.txt").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


# -- media -------------------------------------------------------------------------------------


def photo(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (320, 180)) -> Path:
    """A small JPEG (or PNG, by suffix) with a colour gradient, so encoders have something to do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 8):
        for y in range(size[1]):
            img.putpixel((x, y), (x % 256, y % 256, (x + y) % 256))
    img.save(path)
    return path


def clip(path: Path, seconds: float = 2, size: str = "320x180", *, index_first: bool = False) -> Path:
    """A test-pattern video with a tone, made by ffmpeg's lavfi sources (``index_first``: moov in front)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = ["-movflags", "+faststart"] if index_first else []
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
         *layout, str(path)],
        check=True,
    )  # fmt: skip
    return path


def music(path: Path, seconds: float = 3) -> Path:
    """A short chord as MP3/M4A/WAV (by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-f", "lavfi",
         "-i", f"sine=frequency=330:duration={seconds}", "-f", "lavfi", "-i", f"sine=frequency=495:duration={seconds}",
         "-filter_complex", "amix=inputs=2", str(path)],
        check=True,
    )  # fmt: skip
    return path


def cut_in_half(path: Path) -> Path:
    """Keep the first half of the file's bytes: a copy from a phone sync that stopped midway."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def write_prompt(job: Path, text: str) -> Path:
    job.mkdir(parents=True, exist_ok=True)
    path = job / "prompt.txt"
    path.write_text(text, encoding="utf-8")
    return path


# -- checking results --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    width: int
    height: int
    duration_s: float


def decode(path: Path) -> Decoded:
    """Decode the whole video with ffmpeg (it must decode without error); its size and duration."""
    full = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    assert full.returncode == 0 and not full.stderr.strip(), (
        f"{path.name} does not decode: {full.stderr[-500:]}"
    )
    probe = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    size = re.search(r"Video:.*?[, ](\d{2,5})x(\d{2,5})[, \[]", probe)
    length = re.search(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", probe)
    assert size and length, f"ffmpeg says nothing about the size or length of {path.name}:\n{probe}"
    h, m, s = length.groups()
    return Decoded(int(size.group(1)), int(size.group(2)), int(h) * 3600 + int(m) * 60 + float(s))


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root`` (a file: just itself); links as their target."""
    if root.is_file() or root.is_symlink():
        return {root.name: _digest(root)}
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[path.relative_to(root).as_posix()] = "link:" + os.readlink(path)
        elif path.is_file():
            found[path.relative_to(root).as_posix()] = _digest(path)
    return found


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def temp_files(job_dir: Path) -> list[str]:
    """Hidden or partial files left in the job's outbox folder (outside inputs/)."""
    return [
        p.relative_to(job_dir).as_posix()
        for p in job_dir.rglob("*")
        if not p.relative_to(job_dir).as_posix().startswith("inputs/")
        and (p.name.startswith(".") or p.name.endswith((".part", ".tmp")))
    ]


def check_done(
    job_dir: Path,
    *,
    videos: list[str] | None = None,
    inputs: dict[str, str] | None = None,
    other_jobs: tuple[str, ...] = (),
    size: tuple[int, int] | None = None,
    max_duration_s: float = 30,
) -> dict[str, Any]:
    """Check a finished job's outbox folder against the contract, file by file; returns result.json."""
    name = job_dir.name
    assert status_of(job_dir) == "done", f"{name}: STATUS.txt says {status_of(job_dir)!r}"
    assert not (job_dir / "FAILED.txt").exists(), (job_dir / "FAILED.txt").read_text()
    result = json.loads((job_dir / "result.json").read_text(encoding="utf-8"))
    assert result.keys() >= RESULT_KEYS, f"result.json lacks {RESULT_KEYS - result.keys()}"
    assert result["job"] == name and result["status"] == "done" and "error" not in result
    expected = videos or [f"{name}.mp4"]
    assert [v["file"] for v in result["videos"]] == expected
    assert sorted(p.name for p in job_dir.glob("*.mp4")) == sorted(expected)
    for video in result["videos"]:
        decoded = decode(job_dir / video["file"])
        assert (decoded.width, decoded.height) == (video["width"], video["height"])
        assert abs(decoded.duration_s - video["duration_s"]) < 0.5
        assert video["bytes"] == (job_dir / video["file"]).stat().st_size
        assert 0.5 < decoded.duration_s <= max_duration_s
        if size is not None:
            assert (decoded.width, decoded.height) == size
    log = (job_dir / "job.log").read_text(encoding="utf-8")
    assert all(video in log for video in expected), f"{name}'s job.log does not tell its videos"
    for other in other_jobs:
        assert f"job {other} " not in log and f"{other}.mp4" not in log, f"{name}'s job.log mentions {other}"
    if inputs is not None:
        assert tree_digest(job_dir / "inputs") == inputs, f"{name}: inputs/ differ from what was dropped"
    assert temp_files(job_dir) == [], f"{name}: temp files left: {temp_files(job_dir)}"
    return result


def check_failed(job_dir: Path, *words: str) -> str:
    """A failed job: STATUS.txt failed, FAILED.txt naming the problem in words, result.json with the error."""
    assert status_of(job_dir).startswith("failed"), f"{job_dir.name}: STATUS.txt says {status_of(job_dir)!r}"
    failed = (job_dir / "FAILED.txt").read_text(encoding="utf-8")
    for word in words:
        assert word.lower() in failed.lower(), (
            f"FAILED.txt of {job_dir.name} does not say {word!r}:\n{failed}"
        )
    assert "Traceback" not in failed
    result = json.loads((job_dir / "result.json").read_text(encoding="utf-8"))
    assert result["status"] == "failed" and {"code", "message", "hint"} <= result["error"].keys()
    assert list(job_dir.glob("*.mp4")) == []
    return failed


# -- a separate local backend (the crash tests' stand-in for the cloud) -------------------------


@dataclass
class Backend:
    proc: subprocess.Popen[str]
    url: str
    state: Path

    def sessions(self) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/api/local/sessions", timeout=10)
        reply.raise_for_status()
        return list(reply.json()["data"]["sessions"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def serve_backend(root: Path, port: int | None = None) -> Backend:
    """`nemowatch serve` on a free port (or ``port``: the same backend back after an outage) with its
    own state folder, as a process apart from the daemon."""
    root.mkdir(parents=True, exist_ok=True)
    state = root / "backend-state"
    config = root / "backend.toml"
    config.write_text(f'[paths]\nstate = "{state}"\n', encoding="utf-8")
    port = port or free_port()
    log = (root / "backend.log").open("a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemowatch", "serve", "--config", str(config), "--port", str(port)],
        env=daemon_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (root / "backend.log").read_text()
        try:
            return httpx.get(url + "/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, "the local backend to answer")
    return Backend(proc, url, state)


def uploads(state: Path) -> Iterator[Path]:
    """Every file the local backend stored as an upload (under its state folder)."""
    yield from (p for p in (state / "local-backend" / "uploads").rglob("*") if p.is_file())


def drop_photo_job(inbox: Path, name: str) -> dict[str, str]:
    """A small two-photo job in the inbox, asking for a tiny video; returns the digest of what was dropped."""
    job = inbox / name
    photo(job / "p1.jpg", (220, 120, 30))
    photo(job / "p2.jpg", (30, 120, 220))
    write_prompt(job, f"{SMALL} of these photos, job {name}\n")
    return tree_digest(job)


def copy_slowly(src: Path, dst: Path, chunk: int = 1 << 20, pause_s: float = 0.05) -> None:
    """Copy like a sync client: in chunks with pauses, into the final name (no temp file)."""
    with src.open("rb") as reader, dst.open("wb") as writer:
        for block in iter(lambda: reader.read(chunk), b""):
            writer.write(block)
            writer.flush()
            time.sleep(pause_s)


def copytree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
