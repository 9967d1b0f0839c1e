"""Bench: the local backend's memory while it receives large uploads (it streams them to disk).

Starts ``nemowatch serve`` in a subprocess, uploads files of growing size, and prints the
server's peak RSS (VmHWM) after each, plus the throughput. Run: ``python bench/bench_local_upload.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SIZES_MB = (20, 100, 400)


def vm(pid: int, key: str) -> int:
    """A /proc/<pid>/status figure in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "c.toml"
        config.write_text(f'[paths]\nstate = "{root / "state"}"\n')
        proc = subprocess.Popen(
            [sys.executable, "-m", "nemowatch", "serve", "--config", str(config), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split(" on ", 1)[1].split()[0]
            with httpx.Client(base_url=url, timeout=300) as http:
                token = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "bench"}).json()
                http.headers["Authorization"] = f"Bearer {token['data']['token']}"
                sid = http.post("/api/tasks/me/with-session/nemo_agent", json={"task_name": "bench"}).json()
                sid = sid["data"]["session_id"]
                print(f"server idle: RSS {vm(proc.pid, 'VmRSS') / 1024:.1f} MB")
                for size in SIZES_MB:
                    # A real (not sparse) WAV-named file: the server probes it and refuses it as
                    # undecodable, after receiving every byte, which is what is measured here.
                    path = root / f"upload-{size}.wav"
                    with path.open("wb") as handle:
                        block = b"\x01" * (1024 * 1024)
                        for _ in range(size):
                            handle.write(block)
                    started = time.perf_counter()
                    with path.open("rb") as handle:
                        answer = http.post(f"/api/upload-video/nemo_agent/me/{sid}", files={"files": handle})
                    took = time.perf_counter() - started
                    path.unlink()
                    print(
                        f"upload {size:>4} MB: {took:5.2f} s ({size / took:6.1f} MB/s), "
                        f"server peak RSS {vm(proc.pid, 'VmHWM') / 1024:.1f} MB, answer code {answer.json()['code']}"
                    )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
