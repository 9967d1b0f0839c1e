"""How long the local backend's upload probe (``nemowatch.local.media.probe``) takes per file.

Makes a phone-like 30-second 1080p30 H.264/AAC clip (about 16 Mbit/s, moov at the end as a
phone writes it), the same clip six times over (3 minutes, about 365 MB) and a 3-minute MP3,
then probes each several times and prints the median and the slowest wall time. Besides the
header, the probe reads the file's last seconds to check that its packets reach the length its
header states (a cut-off copy from a phone sync is refused); the long clip shows that this
costs the same whatever the file's size.

On 2026-12-08 (two shared cores, load 5-7; medians of 7): before the check 19-20 ms for the
30 s clip, 19-23 ms for the 3-minute one, 11-13 ms for the MP3; with it 28-46 ms, 28 ms and
19-35 ms. Reading the whole file instead took 250-290 ms for the 3-minute clip.

Run: ``python bench/probe_bench.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nemowatch.ffmpeg import ffmpeg_exe  # noqa: E402
from nemowatch.local.media import probe  # noqa: E402


def make_clip(path: Path) -> Path:
    """30 s of a moving test pattern at 1080p30 with a tone, at a phone's bitrate."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30:duration=30",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=30",
         "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "16M", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


def make_long_clip(clip: Path, path: Path, times: int = 6) -> Path:
    """The clip ``times`` over in one file, packets copied: how the probe's time grows with size."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", str(times - 1), "-i", str(clip), "-c", "copy", str(path)],
        check=True,
    )  # fmt: skip
    return path


def make_song(path: Path) -> Path:
    """Three minutes of a chord as a 192 kbit/s MP3."""
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=330:duration=180",
         "-b:a", "192k", str(path)],
        check=True,
    )  # fmt: skip
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="probes per file")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nemowatch-probe-") as folder:
        work = Path(folder)
        clip = make_clip(work / "clip.mp4")
        files = [clip, make_long_clip(clip, work / "clip-3min.mp4"), make_song(work / "song.mp3")]
        for path in files:
            probe(path, "warm", path.name)  # the page cache holds a fresh upload too
            times = []
            for _ in range(opts.runs):
                started = time.perf_counter()
                item = probe(path, "bench", path.name)
                times.append(time.perf_counter() - started)
            size_mb = path.stat().st_size / 1e6
            print(
                f"{path.name}: {size_mb:.1f} MB, {item.duration_s:.2f} s, {item.width}x{item.height}: "
                f"median {statistics.median(times) * 1000:.0f} ms, slowest {max(times) * 1000:.0f} ms "
                f"over {opts.runs} probes"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
