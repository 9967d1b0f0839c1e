"""Benchmark the local renderer on the reference job and write docs/contact-sheet.png.

The reference job: five 12-megapixel JPEG photos (procedural scenes with grain, so they
compress like photos), a logo PNG with transparency, a music file made by music.py, and
the draft for "turn these photos into a 30-second promotional video with music and
transitions" at 1920x1080 (from nemowatch.local.director when it is importable, else an
equivalent draft built here).

Figures printed:
- wall time of render_video and the realtime factor (video seconds / wall seconds);
- the encoder floor: the same libx264 settings encoding the same frames from a raw source.
  The rendered MP4 is decoded once to a raw yuv420p file (not timed), then ffmpeg encodes
  that file with the renderer's preset/CRF/profile; reading raw frames costs next to
  nothing, so this is the pure encoding cost of the same pictures. ratio = render / floor;
- the peak memory (RSS) of the render's ffmpeg;
- Ken Burns smoothness: per moving shot, the frame-to-frame shift measured by phase
  correlation (mean px/frame, coefficient of variation, smallest and largest step).

Run: ``python bench/render_bench.py [--runs N] [--keep DIR] [--skip-floor]`` (median of N runs, 3 by default;
the machine is shared, so each run prints the 1-minute load average before and after it).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nemowatch.ffmpeg import ffmpeg_exe  # noqa: E402
from nemowatch.local import graph as g  # noqa: E402
from nemowatch.local.music import write_music_bed  # noqa: E402
from nemowatch.local.render import X264_ARGS, render_video  # noqa: E402
from nemowatch.local.text import BOLD_FONT  # noqa: E402

PROMPT = "turn these photos into a 30-second promotional video with music and transitions"
TITLE = "Harbor Lights"
WIDTH, HEIGHT = 1920, 1080
SHEET_TIMES = (0.0, 3.0, 10.0, 20.0, 29.0)
PHOTO_SIZE = (4000, 3000)  # 12 MP


# ---------------------------------------------------------------- procedural media


def _sky(w: int, h: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h)[:, None, None] ** 0.8
    return np.broadcast_to(np.array(top) * (1 - t) + np.array(bottom) * t, (h, w, 3)).astype(np.float32)


def _ridge(rng: np.random.Generator, w: int, base: float, amp: float) -> np.ndarray:
    x = np.linspace(0, 1, w)
    y = np.full(w, base)
    for octave in range(1, 6):
        y += amp / octave * np.sin(2 * np.pi * (octave * 1.7 * x + rng.random()))
    return y


def make_photo(kind: int, path: Path, seed: int) -> None:
    """A plausible landscape/cityscape: drawn small, enlarged, then given full-resolution grain."""
    rng = np.random.default_rng(seed)
    w, h = 1000, 750
    scenes = [
        ((40, 30, 90), (250, 140, 80)),  # dusk harbour
        ((70, 130, 200), (200, 225, 240)),  # clear day mountains
        ((20, 20, 50), (120, 60, 110)),  # night city
        ((250, 200, 120), (230, 120, 60)),  # desert sunset
        ((120, 170, 140), (40, 80, 60)),  # forest
    ]
    top, bottom = scenes[kind % len(scenes)]
    img = _sky(w, h, top, bottom).copy()
    yy, xx = np.mgrid[0:h, 0:w]
    sun_x, sun_y = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.45) * h
    glow = np.exp(-((xx - sun_x) ** 2 + (yy - sun_y) ** 2) / (2 * (w * 0.12) ** 2))
    img += glow[..., None] * np.array([255, 210, 150]) * 0.6
    for layer in range(3):  # ridges / skyline layers, farther = lighter
        shade = np.array(bottom) * (0.25 + 0.2 * layer) + np.array([10, 20, 25]) * (2 - layer)
        if kind == 2:  # city: rectangles of buildings with lit windows
            edge = np.full(w, h * (0.55 + 0.1 * layer))
            x = 0
            while x < w:
                bw = int(rng.integers(25, 70))
                edge[x : x + bw] -= rng.uniform(40, 260) / (layer + 1)
                x += bw + int(rng.integers(0, 8))
        else:
            edge = _ridge(rng, w, h * (0.5 + 0.12 * layer), h * 0.05)
        mask = yy > edge[None, :]
        img[mask] = img[mask] * 0.25 + shade * 0.75
    if kind == 2:
        lit = (rng.random((h, w)) < 0.004) & (yy > h * 0.35)
        img[lit] = [255, 220, 140]
    if kind == 0:  # water with streaky reflections
        sea = yy > h * 0.72
        ripple = np.sin(yy * 0.21 + np.sin(xx * 0.013) * 2.0) * np.sin(xx * 0.004 + yy * 0.05)
        streak = ripple * 14 + glow * 90  # ripples, brighter where the sun reflects
        img[sea] = img[sea] * 0.6 + (np.array([30, 40, 70]) + streak[sea][:, None])
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.2))
    big = np.asarray(small.resize(PHOTO_SIZE, Image.Resampling.BICUBIC)).astype(np.float32)
    big += rng.normal(0.0, 3.0, big.shape[:2])[
        ..., None
    ]  # luminance grain (about 1.5 after the 2x downscale)
    big += rng.normal(0.0, 1.5, big.shape)  # a little chroma noise
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_logo(path: Path) -> None:
    """A two-tone wordmark on a transparent background."""
    logo = Image.new("RGBA", (900, 300), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rounded_rectangle((10, 40, 230, 260), radius=50, fill=(255, 179, 71, 255))
    draw.polygon([(60, 200), (120, 80), (180, 200)], fill=(255, 255, 255, 255))
    font = ImageFont.truetype(str(BOLD_FONT), 120)
    draw.text((260, 70), "HARBOR", font=font, fill=(255, 255, 255, 255))
    logo.save(path)


# ---------------------------------------------------------------- the draft


def reference_draft(media: dict[str, Path]) -> tuple[dict[str, Any], str]:
    """The director's draft when available, else the same job written by hand."""
    try:
        from nemowatch.local.director import direct
        from nemowatch.local.media import probe

        items = [probe(path, key, path.name) for key, path in media.items()]
        direction = direct(PROMPT, items, None, title_hint=TITLE)
        if direction.draft:
            return direction.draft, "nemowatch.local.director"
    except ImportError:
        pass
    return _hand_draft(), "hand-built (director not importable)"


def _hand_draft() -> dict[str, Any]:
    t_ms, shot = 700, 5500
    motions = ["zoom_in", "pan_right", "zoom_out", "pan_left", "zoom_in"]
    segs, st = [], 0
    for i, motion in enumerate(motions):
        segs.append(
            {
                "st": st,
                "d": shot,
                "m": {"kind": "image", "src": f"p{i}", "name": f"p{i}.jpg", "motion": motion},
            }
        )
        st += shot - t_ms
    end = 30000 - st
    segs.append(
        {
            "st": st,
            "d": end,
            "m": {"kind": "card", "src": None, "colors": ["#0f2027", "#2c5364"], "logo": True},
        }
    )
    return {
        "d": 30000,
        "m": {"width": WIDTH, "height": HEIGHT, "fps": 30, "aspect": "16:9", "grade": "cinematic",
              "transition": "fade", "transition_ms": t_ms, "logo": {"src": "logo", "name": "logo.png"}, "title": TITLE},
        "t": [
            {"tt": 0, "m": {"name": "5 photos"}, "sg": segs},
            {"tt": 1, "m": {"name": "Upbeat", "role": "bgm", "volume": 0.6},
             "sg": [{"st": 0, "d": 30000, "m": {"src": "music", "mood": "upbeat", "fade_in_ms": 1000, "fade_out_ms": 2000, "loop": True}}]},
            {"tt": 7, "m": {"name": "Title", "role": "title"}, "sg": [{"st": 0, "d": 3500, "m": {"text": TITLE, "position": "center"}}]},
            {"tt": 7, "m": {"name": "End card", "role": "endcard"},
             "sg": [{"st": st + t_ms, "d": end - t_ms, "m": {"text": "harborlights.example", "position": "center"}}]},
        ],
    }  # fmt: skip


# ---------------------------------------------------------------- measuring


def cpu_seconds() -> float:
    """User+system CPU time of this process and its finished children: robust on a shared machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def encoder_floor(video: Path, work: Path, frames: int) -> tuple[float, float]:
    """(wall, CPU) seconds libx264 needs for the same frames from a raw yuv420p file (decode not timed)."""
    raw = work / "frames.yuv"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-y",
            "-i",
            str(video),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            str(raw),
        ],
        check=True,
    )
    try:
        started, cpu = time.perf_counter(), cpu_seconds()
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}",
             "-r", str(g.FPS), "-i", str(raw), "-frames:v", str(frames), *X264_ARGS, "-pix_fmt", "yuv420p",
             "-f", "mp4", str(work / "floor.mp4")],
            check=True,
        )  # fmt: skip
        return time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        raw.unlink(missing_ok=True)


def gray_frames(video: Path, start: int, count: int, width: int, height: int) -> np.ndarray:
    """``count`` luma frames from frame ``start`` decoded through a pipe."""
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf", f"select=between(n\\,{start}\\,{start + count - 1})",
           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"]  # fmt: skip
    data = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(-1, height, width)[:count].astype(np.float32)


def flow_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Sub-pixel (dx, dy) by which the picture moved from a to b (one Lucas-Kanade step on blurred regions).

    Blurring first keeps the estimate linear for shifts up to a couple of pixels and ignores grain.
    """
    a = np.asarray(Image.fromarray(a.astype(np.uint8)).filter(ImageFilter.GaussianBlur(2)), np.float64)
    b = np.asarray(Image.fromarray(b.astype(np.uint8)).filter(ImageFilter.GaussianBlur(2)), np.float64)
    ix = (np.roll(a, -1, 1) - np.roll(a, 1, 1))[4:-4, 4:-4] / 2
    iy = (np.roll(a, -1, 0) - np.roll(a, 1, 0))[4:-4, 4:-4] / 2
    it = (b - a)[4:-4, 4:-4]
    matrix = np.array([[np.sum(ix * ix), np.sum(ix * iy)], [np.sum(ix * iy), np.sum(iy * iy)]])
    dx, dy = np.linalg.solve(matrix, -np.array([np.sum(ix * it), np.sum(iy * it)]))
    return float(dx), float(dy)


def motion_report(video: Path, draft: dict[str, Any]) -> list[str]:
    """Frame-to-frame shift statistics inside each moving photo shot (transitions excluded)."""
    from nemowatch.local.render import plan_legs

    lines = []
    legs = plan_legs(draft, g.frames(draft["d"]))
    text_spans = [
        (g.frames(seg["st"]), g.frames(seg["st"] + seg["d"]))
        for track in draft["t"]
        if track.get("tt") == 7
        for seg in track["sg"]
    ]
    for i, leg in enumerate(legs):
        motion = leg.motion
        if leg.kind != "image" or motion not in ("zoom_in", "zoom_out", "pan_left", "pan_right"):
            continue
        nxt = legs[i + 1].overlap if i + 1 < len(legs) else 0
        first, last = leg.start + leg.overlap + 2, leg.start + leg.n - nxt - 2
        # Skip frames under a text overlay (the title sits over the measured strips and stands still).
        for start, end in text_spans:
            if start <= first < end:
                first = end + 2
        count = min(60, last - first)
        if count < 10:
            continue
        frames = gray_frames(video, first, count, WIDTH, HEIGHT)
        # Pans: the centre, moving sideways. Zooms: a strip on the left third (sideways motion, exact
        # whole-pixel margins) and one near the top (vertical motion, margins rounded to the aspect ratio).
        regions = (
            {"centre dx": (slice(412, 668), slice(832, 1088), 0)}
            if motion.startswith("pan")
            else {
                "left dx": (slice(412, 668), slice(352, 608), 0),
                "top dy": (slice(60, 220), slice(832, 1088), 1),
            }
        )
        for name, (rows, cols, axis) in regions.items():
            steps = np.array(
                [flow_shift(frames[k][rows, cols], frames[k + 1][rows, cols])[axis] for k in range(count - 1)]
            )
            mean = float(np.mean(steps))
            jitter = float(np.std(steps))
            lines.append(
                f"  shot {i + 1} {motion:<9} {name}: mean {mean:+.3f} px/frame, jitter (std) {jitter:.3f} px, "
                f"min {steps.min():+.3f}, max {steps.max():+.3f} ({count - 1} frame pairs)"
            )
    return lines


def contact_sheet(video: Path, out: Path, times: tuple[float, ...]) -> None:
    """Frames at ``times`` in one labelled row (2 rows when there are more than three)."""
    thumb_w, thumb_h, label_h, gap = 640, 360, 44, 16
    cols = 3 if len(times) > 3 else len(times)
    rows = -(-len(times) // cols)
    sheet = Image.new(
        "RGB",
        (cols * thumb_w + (cols + 1) * gap, rows * (thumb_h + label_h) + (rows + 1) * gap),
        (18, 18, 22),
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.truetype(str(BOLD_FONT), 22)
    for index, t in enumerate(times):
        png = subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1",
             "-vf", f"scale={thumb_w}:{thumb_h}", "-f", "image2pipe", "-vcodec", "png", "-"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        tmp = out.with_suffix(f".{index}.png")
        tmp.write_bytes(png)
        with Image.open(tmp) as frame:
            x = gap + (index % cols) * (thumb_w + gap)
            y = gap + (index // cols) * (thumb_h + label_h + gap)
            sheet.paste(frame.convert("RGB"), (x, y + label_h))
            draw.text((x, y + 8), f"{t:.0f} s", font=font, fill=(235, 235, 240))
        tmp.unlink()
    if len(times) % cols:  # the spare cell carries the job's caption
        x = gap + (len(times) % cols) * (thumb_w + gap)
        y = gap + (rows - 1) * (thumb_h + label_h + gap) + label_h
        draw.text(
            (x + 20, y + 150),
            "nemowatch local render\nreference job, 1920x1080, 30 s",
            font=font,
            fill=(150, 150, 160),
        )
    sheet.save(out, optimize=True)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the generated media and the render in this folder")
    parser.add_argument("--runs", type=int, default=3, help="renders to take the median of (default 3)")
    parser.add_argument("--skip-floor", action="store_true", help="do not measure the encoder floor")
    parser.add_argument("--sheet", type=Path, default=ROOT / "docs" / "contact-sheet.png")
    opts = parser.parse_args()
    work = opts.keep or Path(tempfile.mkdtemp(prefix="nemowatch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        media: dict[str, Path] = {}
        for i in range(5):
            path = work / f"p{i + 1}.jpg"
            if not path.exists():
                make_photo(i, path, seed=100 + i)
            media[f"p{i}"] = path
        media["logo"] = work / "logo.png"
        make_logo(media["logo"])
        media["music"] = write_music_bed(work / "music.wav", "upbeat", 34.0)
        draft, origin = reference_draft(media)
        duration_s = draft["d"] / 1000.0
        print(f"draft: {origin}; {draft['m'].get('width')}x{draft['m'].get('height')}, {duration_s:.1f} s")
        print(f"x264: {' '.join(X264_ARGS)}")

        out = work / "reference.mp4"
        frames = g.frames(draft["d"])
        runs: list[tuple[float, float, float, float]] = []  # render wall, CPU, floor wall, floor CPU
        for run in range(opts.runs):
            marks: list[float] = []
            load = os.getloadavg()[0]
            started, cpu = time.perf_counter(), cpu_seconds()
            render_video(draft, lambda key: media[key], out, progress=marks.append)
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            if run == 0:  # children so far: the render's probes and its ffmpeg, not yet the floor's
                peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            floor, floor_cpu = (0.0, 0.0) if opts.skip_floor else encoder_floor(out, work, frames)
            runs.append((wall, cpu, floor, floor_cpu))
            line = f"run {run + 1}: load {load:.2f} -> {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} cores); "
            line += f"render wall {wall:.2f} s, CPU {cpu:.2f} s ({duration_s / wall:.2f}x realtime)"
            if floor:
                line += f"; floor wall {floor:.2f} s, CPU {floor_cpu:.2f} s; ratio wall {wall / floor:.2f}x, CPU {cpu / floor_cpu:.2f}x"
            print(line + f"; progress callbacks {len(marks)}, last {marks[-1]:.3f}", flush=True)
        wall, cpu, floor, floor_cpu = (statistics.median(column) for column in zip(*runs, strict=True))
        print(
            f"median of {len(runs)}: render wall {wall:.2f} s, CPU {cpu:.2f} s; realtime factor {duration_s / wall:.2f}x (target >= 3x)"
        )
        if not opts.skip_floor:
            ratios = [(w / f, c / fc) for w, c, f, fc in runs]
            print(
                f"encoder floor (same frames, raw yuv420p file -> libx264), median: wall {floor:.2f} s, CPU {floor_cpu:.2f} s"
                f" ({duration_s / floor:.2f}x realtime: the most any render with these x264 settings can reach here now)"
            )
            print(
                f"render / floor, median of the runs' ratios: wall {statistics.median(r[0] for r in ratios):.2f}x, "
                f"CPU {statistics.median(r[1] for r in ratios):.2f}x (target <= 1.5x)"
            )
        print(f"peak memory of the render's ffmpeg (largest child RSS): {peak_mb:.0f} MB")
        print("Ken Burns smoothness (optical flow on the decoded output, shot interiors):")
        for line in motion_report(out, draft):
            print(line)
        opts.sheet.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(out, opts.sheet, SHEET_TIMES)
        print(f"contact sheet: {opts.sheet}")
    finally:
        if opts.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
