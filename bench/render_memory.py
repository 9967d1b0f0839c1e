"""How much memory and time a render needs as the photo count grows: for sizing a server.

Renders the director's draft for "turn these photos into a N-second promotional video with
music and transitions" from P procedural 12-megapixel photos (the reference job's, from
render_bench.py) at 1920x1080, one render per (photos, seconds) pair, and prints the render's
wall time, realtime factor and the peak RSS of its ffmpeg.

Why memory grows with the photo count: ffmpeg keeps each filter's frame pool until the render
ends, and every photo leg has its own filters (its converted still, the zoom's scalers, the
transition into it): docs/internals.md, "The renderer".

Run: ``python bench/render_memory.py [--jobs 5:30,10:40,20:60]`` (photos:seconds pairs).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from render_bench import make_photo  # noqa: E402

from nemowatch.local.director import direct  # noqa: E402
from nemowatch.local.media import probe  # noqa: E402
from nemowatch.local.music import write_music_bed  # noqa: E402
from nemowatch.local.render import render_video  # noqa: E402


def peak_child_rss_mb() -> float:
    """The largest RSS any finished child reached so far (ru_maxrss is a running maximum)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="5:30,10:40,20:60", help="photos:seconds pairs, smallest first")
    opts = parser.parse_args()
    jobs = [tuple(int(part) for part in pair.split(":")) for pair in opts.jobs.split(",")]
    with tempfile.TemporaryDirectory(prefix="nemowatch-memory-") as folder:
        work = Path(folder)
        photos = [work / f"p{i + 1:02d}.jpg" for i in range(max(count for count, _ in jobs))]
        for index, path in enumerate(photos):
            make_photo(index, path, seed=200 + index)
        music = write_music_bed(work / "music.wav", "upbeat", max(seconds for _, seconds in jobs) + 4.0)
        for count, seconds in jobs:
            media = {f"p{i}": path for i, path in enumerate(photos[:count])} | {"music": music}
            items = [probe(path, key, path.name) for key, path in media.items()]
            prompt = f"turn these photos into a {seconds}-second promotional video with music and transitions"
            draft = direct(prompt, items, None, title_hint="Memory").draft
            assert draft is not None
            before = peak_child_rss_mb()
            started = time.perf_counter()
            render_video(draft, media.__getitem__, work / "out.mp4")
            wall = time.perf_counter() - started
            peak = peak_child_rss_mb()
            # ru_maxrss only rises: a render below an earlier peak cannot be told apart from it.
            shown = f"{peak:.0f} MB" if peak > before else f"at most {before:.0f} MB"
            print(
                f"{count} photos, {seconds} s: wall {wall:.2f} s ({seconds / wall:.2f}x realtime), "
                f"peak ffmpeg RSS {shown}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
