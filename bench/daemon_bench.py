"""The daemon's own cost: idle CPU and memory, and its overhead per job against an instant backend.

    python bench/daemon_bench.py [--idle-seconds 60] [--jobs 200]

1. Idle: `nemowatch run` on the local backend with an empty inbox; after start-up settles,
   CPU time (utime+stime from /proc/<pid>/stat) over ``--idle-seconds`` and VmRSS.
   Targets: < 1 % of a core, < 80 MB.
2. Per job: `nemowatch run` against an *instant* backend — a tiny in-bench Starlette app that
   answers every NemoVideo endpoint at once and renders nothing (a fixed 1-second MP4) — with
   ``--jobs`` jobs dropped at once. (wall time from the drop to the last "done" − settle_s) / jobs.
   Target: < 50 ms a job. What remains is the daemon: claims, journal commits (fsync), HTTP
   round trips, the video check of each result, STATUS/result/log files and the moves.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 0.3
PROFILE_ENV = "NEMOWATCH_BENCH_PROFILE"
DRAFT = {
    "d": 1000,
    "m": {"width": 320, "height": 180},
    "t": [{"tt": 0, "m": {"name": "clip"}, "sg": [{"st": 0, "d": 1000, "m": {"kind": "card"}}]}],
}


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_config(root: Path, **sections: dict[str, object]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            lines.append(f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"')
    config = root / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def start(config: Path, root: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO", "NOTIFY_SOCKET"))}
    full.update(PYTHONPATH=str(REPO), NEMO_CLIENT_ID="0b7d6c8e-3f44-4c1e-9a70-5e1c4f7b2a90", **env)
    log = (root / "daemon.log").open("wb")
    # NEMOWATCH_BENCH_PROFILE=<file>: run the daemon under cProfile (stats written when it stops).
    profile = os.environ.get(PROFILE_ENV)
    runner = ["-m", "cProfile", "-o", profile] if profile else []
    return subprocess.Popen(
        [sys.executable, *runner, "-m", "nemowatch", "run", "--config", str(config)],
        env=full,
        stdout=log,
        stderr=log,
    )


def wait_for_log(root: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in (root / "daemon.log").read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"the daemon did not log {text!r}; see {root / 'daemon.log'}")
        time.sleep(0.1)


def bench_idle(seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="nw-idle-"))
    config = write_config(
        root,
        paths={"inbox": str(root / "inbox"), "outbox": str(root / "outbox"), "state": str(root / "state")},
        backend={"kind": "local"},
    )
    proc = start(config, root)
    try:
        wait_for_log(root, "watching")
        time.sleep(5)  # let start-up work (token, first credit check, imports) finish
        before, t0 = cpu_ticks(proc.pid), time.monotonic()
        time.sleep(seconds)
        used_s = (cpu_ticks(proc.pid) - before) / CLK_TCK
        elapsed = time.monotonic() - t0
        print(
            f"idle CPU: {used_s:.2f} s over {elapsed:.0f} s = {100 * used_s / elapsed:.2f} % of a core (target < 1 %)"
        )
        print(f"idle RSS: {rss_mb(proc.pid):.1f} MB (target < 80 MB)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


# -- the instant backend -----------------------------------------------------------------------


def instant_app(mp4: bytes) -> Starlette:
    """Every NemoVideo endpoint, answered at once; renders are complete as soon as they are asked for."""
    counter = {"n": 0}

    def ok(data: object) -> JSONResponse:
        return JSONResponse({"code": 0, "data": data, "msg": "ok"})

    async def token(request: Request) -> Response:
        return ok({"token": "nmv_usr_benchtoken0000", "credits": 10**9, "expires_in": 7 * 86400})

    async def session(request: Request) -> Response:
        counter["n"] += 1
        return ok({"task_id": f"task{counter['n']}", "session_id": f"ses{counter['n']}"})

    async def claim(request: Request) -> Response:
        return ok({"claim_token": "clm_bench", "expires_in": 604800})

    async def run_sse(request: Request) -> Response:
        await request.body()
        event = '{"content":{"role":"model","parts":[{"text":"Done: a 1-second video."}]},"partial":false,"id":"e1"}'

        async def stream():  # type: ignore[no-untyped-def]
            yield f"data: {event}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def upload(request: Request) -> Response:
        await request.body()
        return ok({"files": [{"name": "x"}]})

    async def credits(request: Request) -> Response:
        return ok({"available": 10**9, "frozen": 0, "total": 10**9})

    async def state(request: Request) -> Response:
        return ok({"state": {"draft": DRAFT, "video_infos": [], "canvas_config": {}, "generated_media": []}})

    async def submit(request: Request) -> Response:
        body = await request.json()
        return ok({"id": body["id"]})

    async def status(request: Request) -> Response:
        url = f"{request.base_url}files/{request.path_params['rid']}.mp4"
        return ok(
            {"id": request.path_params["rid"], "status": "completed", "progress": 1.0, "output": {"url": url}}
        )

    async def file(request: Request) -> Response:
        return Response(mp4, media_type="video/mp4")

    return Starlette(
        routes=[
            Route("/api/auth/anonymous-token", token, methods=["POST"]),
            Route("/api/tasks/{user}/with-session/{app}", session, methods=["POST"]),
            Route("/api/auth/claim-token", claim, methods=["POST"]),
            Route("/run_sse", run_sse, methods=["POST"]),
            Route("/api/upload-video/{app}/{user}/{sid}", upload, methods=["POST"]),
            Route("/api/credits/balance/simple", credits),
            Route("/api/state/{app}/{user}/{sid}/latest", state),
            Route("/api/render/proxy/lambda", submit, methods=["POST"]),
            Route("/api/render/proxy/lambda/{rid}", status),
            Route("/files/{rid}.mp4", file),
        ]
    )


def serve_instant(mp4: bytes) -> tuple[str, uvicorn.Server]:
    server = uvicorn.Server(uvicorn.Config(instant_app(mp4), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server


def bench_jobs(count: int, keep: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="nw-jobs-"))
    clip = root / "fixed.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=25:duration=1",
         "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    url, server = serve_instant(clip.read_bytes())
    inbox, outbox, staging = root / "inbox", root / "outbox", root / "staging"
    config = write_config(
        root,
        paths={"inbox": str(inbox), "outbox": str(outbox), "state": str(root / "state")},
        backend={"kind": "cloud"},
        api={"render_poll_interval_s": 0.05},
        watch={"settle_s": SETTLE_S, "rescan_s": 5.0},
    )
    for i in range(count):
        job = staging / f"job{i:03d}"
        job.mkdir(parents=True)
        Image.new("RGB", (64, 36), (i % 256, 80, 160)).save(job / "p.jpg")
        (job / "prompt.txt").write_text("a 1-second video of this photo\n")
    proc = start(config, root, NEMO_API_URL=url)
    try:
        wait_for_log(root, "watching")
        time.sleep(2)
        t0, ticks0 = time.monotonic(), cpu_ticks(proc.pid)
        for job in sorted(staging.iterdir()):
            job.rename(inbox / job.name)  # an atomic drop, like a sync client's final rename
        done = 0
        while done < count:
            time.sleep(0.1)
            done = sum(1 for status in outbox.glob("*/STATUS.txt") if status.read_text().strip() == "done")
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited; see {root / 'daemon.log'}")
        wall = time.monotonic() - t0
        cpu_ms = 1000 * (cpu_ticks(proc.pid) - ticks0) / CLK_TCK / count
        failed = [p.parent.name for p in outbox.glob("*/FAILED.txt")]
        per_job_ms = 1000 * (wall - SETTLE_S) / count
        print(f"{count} jobs, instant backend: {wall:.1f} s from drop to all done; settle_s {SETTLE_S} s")
        print(f"daemon overhead: {per_job_ms:.1f} ms a job (target < 50 ms); failed: {len(failed)}")
        # CPU time is the steadier figure on a shared machine: other processes stretch wall time, not it.
        print(f"daemon CPU: {cpu_ms:.1f} ms a job (utime+stime of the daemon process, children excluded)")
        print(f"RSS after the run: {rss_mb(proc.pid):.1f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        server.should_exit = True
        if keep:
            print(f"kept {root} (the daemon's log: state/logs/nemowatch.log)")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the per-job run's folders and logs")
    args = parser.parse_args()
    if not args.skip_idle:
        bench_idle(args.idle_seconds)
    bench_jobs(args.jobs, args.keep)


if __name__ == "__main__":
    main()
