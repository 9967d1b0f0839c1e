"""Peak memory of NemoClient.upload_file for a file at the 500 MB limit (target: under 30 MB growth).

Creates a sparse file of exactly MAX_UPLOAD_BYTES, starts a loopback receiver in a
child process (so its memory is not counted) that reads and discards the body,
uploads the file once, and prints the growth of this process's peak RSS
(VmHWM) and the throughput. Run: ``python bench/upload_memory.py`` with nemowatch
installed (``pip install -e .``) or ``PYTHONPATH=. python bench/upload_memory.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nemowatch.api import ClientSettings, NemoClient
from nemowatch.api.formats import MAX_UPLOAD_BYTES
from nemowatch.logs import setup_logging

RECEIVER = r"""
import asyncio, sys

async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    left = length
    while left:
        chunk = await reader.read(min(left, 1 << 20))
        if not chunk:
            break
        left -= len(chunk)
    body = b'{"code": 0, "data": {"received": %d}, "msg": "ok"}' % (length - left)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def peak_rss_kib() -> int:
    """This process's peak resident set size (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


async def upload(base_url: str, path: Path, state: Path) -> dict:
    settings = ClientSettings(
        base_url=base_url, web_url=base_url, state_dir=state, user_token="bench-token-value"
    )
    async with NemoClient(settings) as client:
        return await client.upload_file("bench-session", path)


def main() -> int:
    setup_logging(level="WARNING")
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        base_url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            small, big = root / "warmup.mp4", root / "limit.mp4"
            small.write_bytes(b"\0" * 4096)
            with big.open("wb") as handle:
                handle.truncate(MAX_UPLOAD_BYTES)  # sparse: costs no disk, reads as zeros
            asyncio.run(upload(base_url, small, root / "state"))  # imports and pools warmed up
            before = peak_rss_kib()
            started = time.perf_counter()
            answer = asyncio.run(upload(base_url, big, root / "state"))
            elapsed = time.perf_counter() - started
            after = peak_rss_kib()
        assert answer.get("received", 0) > MAX_UPLOAD_BYTES, answer
        mb = MAX_UPLOAD_BYTES / 1_000_000
        print(f"uploaded {mb:.0f} MB in {elapsed:.2f} s ({mb / elapsed:.0f} MB/s) to a loopback receiver")
        print(f"peak RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB")
        print(f"peak RSS growth: {(after - before) / 1024:.1f} MiB (target: under 30 MB)")
    finally:
        receiver.terminate()
        receiver.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
