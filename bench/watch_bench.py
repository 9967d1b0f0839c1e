"""How fast a running daemon notices its inbox gone, and how fast it watches it again once it is back.

    python bench/watch_bench.py [--runs 7] [--settle 0.5]

One real daemon (`nemowatch run`, local backend, ``rescan_s`` = 1 h so the periodic rescan plays no
part) per case; each run of a case loses the inbox, waits for the daemon's ERROR line, brings the
inbox back and at once drops a text job (``NAME.txt``) into it. Measured from the daemon's own log
(``state/logs/nemowatch.log``, millisecond timestamps) and the outbox:

- noticed: from the loss to the ERROR line;
- re-armed: from the inbox's return (mkdir, rename back, mount) to the "is back" line, logged once
  the new observer runs and just before the rescan;
- claimed: from the return to the job's ``outbox/NAME/STATUS.txt`` (written when it is claimed),
  which includes the ``--settle`` window.

Cases: rm -rf + mkdir and mv away + back with inotify, rm -rf + mkdir with polling, and — as root —
umount of a tmpfs inbox + a fresh mount. The local backend is given no credits, so the claimed jobs
wait for credits instead of rendering (the bench measures the watcher, not the renderer).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (\w+)\s+(.*)$")
TIMEOUT_S = 60.0


class Daemon:
    """One `nemowatch run` and the lines of its log file, read as they come."""

    def __init__(self, root: Path, *, settle_s: float, polling: bool) -> None:
        self.root = root
        self.inbox, self.outbox, self.state = root / "inbox", root / "outbox", root / "state"
        self.inbox.mkdir(parents=True, exist_ok=True)
        config = root / "config.toml"
        config.write_text(
            f'[paths]\ninbox = "{self.inbox}"\noutbox = "{self.outbox}"\nstate = "{self.state}"\n'
            '[backend]\nkind = "local"\n[local]\ncredits = 0\n'
            f"[watch]\nsettle_s = {settle_s}\nrescan_s = 3600\npolling = {str(polling).lower()}\n"
            "poll_interval_s = 0.5\n",
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO", "NOTIFY_SOCKET"))}
        env.update(PYTHONPATH=str(REPO), NEMO_CLIENT_ID="3c0b7f4e-5d2a-4e8b-9f61-2a7c9d1e0b55")
        self.console = (root / "console.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nemowatch", "run", "--config", str(config)],
            env=env,
            stdout=self.console,
            stderr=subprocess.STDOUT,
        )
        self._offset = 0
        self.wait_line("watching ")

    def wait_line(self, words: str) -> float:
        """The wall time (epoch seconds) of the next log line holding ``words``."""
        log = self.state / "logs" / "nemowatch.log"
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the daemon exited: {(self.root / 'console.log').read_text()[-2000:]}")
            try:
                with log.open("rb") as handle:
                    handle.seek(self._offset)
                    chunk = handle.read()
            except FileNotFoundError:
                chunk = b""
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offset += len(complete)
            for raw in complete.decode("utf-8", "replace").splitlines():
                match = LINE.match(raw)
                if match and words in match.group(3):
                    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            time.sleep(0.005)
        raise SystemExit(f"no log line with {words!r} within {TIMEOUT_S:g} s")

    def wait_claimed(self, name: str) -> float:
        status = self.outbox / name / "STATUS.txt"
        deadline = time.monotonic() + TIMEOUT_S
        while not status.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"job {name} was not claimed within {TIMEOUT_S:g} s")
            time.sleep(0.002)
        return time.time()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.console.close()


def mount_tmpfs(where: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], check=True)


def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path(tempfile.mkdtemp(prefix="nw-mount-probe-"))
    try:
        mount_tmpfs(probe)
    except subprocess.CalledProcessError:
        return False
    subprocess.run(["umount", str(probe)], check=True)
    probe.rmdir()
    return True


Case = tuple[str, bool, Callable[[Daemon], None], Callable[[Daemon], None]]


def cases() -> list[Case]:
    """(name, polling, lose, restore) for every case this machine allows."""

    def rm(d: Daemon) -> None:
        shutil.rmtree(d.inbox)

    def mkdir(d: Daemon) -> None:
        d.inbox.mkdir()

    def away(d: Daemon) -> None:
        d.inbox.rename(d.root / "away")

    def back(d: Daemon) -> None:
        (d.root / "away").rename(d.inbox)

    found: list[Case] = [
        ("rm -rf + mkdir, inotify", False, rm, mkdir),
        ("mv away + back, inotify", False, away, back),
        ("rm -rf + mkdir, polling", True, rm, mkdir),
    ]
    if can_mount():
        found.append(
            (
                "umount + mount tmpfs, inotify",
                False,
                lambda d: subprocess.run(["umount", str(d.inbox)], check=True),
                lambda d: mount_tmpfs(d.inbox),
            )
        )
    else:
        print("(not root, or mounting refused: the umount case is left out)")
    return found


def summary(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{label} median {statistics.median(ms):6.0f} ms, max {max(ms):6.0f} ms"


def bench(name: str, polling: bool, lose: Callable[[Daemon], None], restore: Callable[[Daemon], None],
          runs: int, settle_s: float) -> None:  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="nw-watch-"))
    mounted = name.startswith("umount")
    if mounted:
        (root / "inbox").mkdir()
        mount_tmpfs(root / "inbox")
    daemon = Daemon(root, settle_s=settle_s, polling=polling)
    noticed, rearmed, claimed = [], [], []
    try:
        for run in range(runs):
            time.sleep(0.5)  # let the previous run's claim finish
            lost_at = time.time()
            lose(daemon)
            noticed.append(daemon.wait_line("nemowatch waits for it to come back") - lost_at)
            # The daemon now looks for its inbox every 0.5 s: come back at a random phase of that
            # cycle (a fixed pause of a multiple of 0.5 s would land right before a look every time).
            time.sleep(random.uniform(1.0, 2.0))
            back_at = time.time()
            restore(daemon)
            (daemon.inbox / f"job{run}.txt").write_text("a short film about the sea\n", encoding="utf-8")
            claimed.append(daemon.wait_claimed(f"job{run}") - back_at)
            rearmed.append(daemon.wait_line("is back after") - back_at)
    finally:
        daemon.stop()
        if mounted:
            while os.path.ismount(root / "inbox"):
                subprocess.run(["umount", "-l", str(root / "inbox")], check=False)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{name} ({runs} runs):")
    print("  " + summary("noticed (loss → ERROR line):     ", noticed))
    print("  " + summary("re-armed (return → watching):    ", rearmed))
    print("  " + summary(f"claimed (return → claimed, settle {settle_s:g} s):", claimed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settle", type=float, default=0.5, help="watch.settle_s of the daemon")
    args = parser.parse_args()
    for name, polling, lose, restore in cases():
        bench(name, polling, lose, restore, args.runs, args.settle)


if __name__ == "__main__":
    main()
