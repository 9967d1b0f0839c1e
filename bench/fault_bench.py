"""How fast the daemon gets going again after a passing fault ends.

    python bench/fault_bench.py [--runs 3] [--every 60]

1. Backend: `nemowatch run` (cloud mode) against `nemowatch serve` on loopback. A job is dropped;
   once its render is submitted the backend is SIGKILLed (its port refuses connections). When the
   job waits for the backend, the backend is started again on the same port after a random part of
   ``--every`` (an outage ends at no particular moment of the probe schedule). Measured: from the
   backend's return to the job leaving ``waiting_backend`` (resumed), and to ``done``.
2. Outbox (root only: it mounts a tmpfs): the outbox is a full 4 MB tmpfs; a job is dropped and
   waits in ``waiting_outbox``; the filler is deleted (again after a random part of ``--every``).
   Measured: from the freed space to ``done``.

``--every`` is ``jobs.retry_every_s`` (the default, 60 s, is what users run with): the resume time
is bounded by it, plus one probe. Prints one line a run, then the median and the maximum.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.daemon_helpers import (  # noqa: E402 (the repository root must be importable first)
    drop_photo_job,
    make_setup,
    nemowatch,
    serve_backend,
    start_daemon,
    status_of,
    stop_daemon,
    wait_for,
)

LIMIT_S = 900.0


def journal_state(config: Path, name: str) -> str:
    shown = nemowatch("status", "--json", "--config", str(config))
    for job in json.loads(shown.stdout or "{}").get("jobs", []):
        if job["name"] == name:
            return str(job["state"])
    return ""


def backend_run(root: Path, every: float) -> tuple[float, float]:
    """One outage: (seconds from the backend's return to resumed, to done)."""
    backend = serve_backend(root / "api")
    port = int(backend.url.rsplit(":", 1)[1])
    setup = make_setup(root, backend="cloud", jobs={"retry_every_s": every})
    env = {"NEMO_API_URL": backend.url, "NEMO_CLIENT_ID": str(uuid.uuid4())}
    daemon = start_daemon(setup, **env)
    try:
        drop_photo_job(setup.inbox, "outage")
        job_dir = setup.outbox / "outage"
        wait_for(lambda: status_of(job_dir).startswith("rendering"), "the render", timeout=LIMIT_S)
        backend.proc.send_signal(signal.SIGKILL)
        backend.proc.wait()
        wait_for(lambda: status_of(job_dir).startswith("waiting for the backend"), "the wait", timeout=LIMIT_S)
        # An outage ends at no particular moment of the probe schedule.
        time.sleep(random.uniform(0, every))
        backend = serve_backend(root / "api", port=port)
        back = time.monotonic()
        wait_for(
            lambda: journal_state(setup.config, "outage") not in ("waiting_backend", ""),
            "the job to resume",
            timeout=LIMIT_S,
            every=0.2,
        )
        resumed = time.monotonic() - back
        wait_for(lambda: status_of(job_dir) == "done", "done", timeout=LIMIT_S, every=0.1)
        return resumed, time.monotonic() - back
    finally:
        stop_daemon(daemon)
        backend.stop()


def outbox_run(root: Path, every: float) -> float:
    """One full outbox: seconds from the freed space to done."""
    setup = make_setup(root, jobs={"retry_every_s": every})
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(setup.outbox)], check=True)
    try:
        filler = setup.outbox / "filler.bin"
        try:
            with filler.open("wb") as handle:
                while True:
                    handle.write(b"\0" * 65536)
        except OSError:
            pass
        daemon = start_daemon(setup)
        try:
            drop_photo_job(setup.inbox, "full")
            wait_for(
                lambda: journal_state(setup.config, "full") == "waiting_outbox", "the wait", timeout=LIMIT_S
            )
            time.sleep(random.uniform(0, every))
            filler.unlink()
            freed = time.monotonic()
            wait_for(lambda: status_of(setup.outbox / "full") == "done", "done", timeout=LIMIT_S, every=0.1)
            return time.monotonic() - freed
        finally:
            stop_daemon(daemon)
    finally:
        subprocess.run(["umount", "-l", str(setup.outbox)], check=False)


def summary(label: str, values: list[float]) -> None:
    print(f"{label}: median {statistics.median(values):.1f} s, max {max(values):.1f} s over {len(values)} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", type=float, default=60.0, help="jobs.retry_every_s")
    args = parser.parse_args()
    resumed: list[float] = []
    done: list[float] = []
    freed: list[float] = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="nw-faults-") as tmp:
            to_resume, to_done = backend_run(Path(tmp) / "b", args.every)
            resumed.append(to_resume)
            done.append(to_done)
            line = f"run {run}: backend back → job resumed {to_resume:.1f} s, → done {to_done:.1f} s"
            if os.geteuid() == 0:
                freed.append(outbox_run(Path(tmp) / "o", args.every))
                line += f"; outbox freed → done {freed[-1]:.1f} s"
            print(line, flush=True)
    print(f"jobs.retry_every_s = {args.every:g}")
    summary("backend back → job resumed", resumed)
    summary("backend back → done", done)
    if freed:
        summary("outbox freed → done", freed)


if __name__ == "__main__":
    main()
