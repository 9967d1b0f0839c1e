"""The local renderer: drafts become real MP4s that are decoded again and checked frame by frame."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from nemowatch.ffmpeg import ffmpeg_exe
from nemowatch.local.music import synthesize, write_music_bed
from nemowatch.local.render import RenderError, render_video

FPS = 30
W, H = 320, 180

# ---------------------------------------------------------------- media and drafts


def flat_photo(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> Path:
    Image.new("RGB", size, color).save(path, quality=95)
    return path


def textured_photo(path: Path, size: tuple[int, int] = (800, 600), seed: int = 1) -> Path:
    """Soft random blobs with fine grain, like a photo: texture to measure motion, nothing black.

    The grain matters: it is what tempts x264 into coding slow pans as repeated frames.
    """
    rng = np.random.default_rng(seed)
    cells = rng.integers(40, 255, (size[1] // 25, size[0] // 25, 3)).astype(np.uint8)
    blobs = np.asarray(Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC), np.float64)
    grainy = blobs + rng.normal(0.0, 5.0, blobs.shape[:2])[..., None]
    Image.fromarray(np.clip(grainy, 0, 255).astype(np.uint8)).save(path, quality=95)
    return path


def logo_png(path: Path) -> Path:
    logo = Image.new("RGBA", (300, 150), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rounded_rectangle((0, 0, 299, 149), radius=30, fill=(255, 255, 255, 255))
    logo.save(path)
    return path


def video_draft(
    shots: list[dict[str, Any]],
    *,
    size: tuple[int, int] = (W, H),
    transition_ms: int = 0,
    music: bool | str = True,
    texts: list[tuple[str, str, int, int, str]] = (),  # type: ignore[assignment]
    logo: str | None = None,
) -> dict[str, Any]:
    """A draft in the documented shape; shots are segment ``m`` dicts plus ``d`` (ms)."""
    segs, st = [], 0
    for shot in shots:
        meta = {k: v for k, v in shot.items() if k != "d"}
        segs.append({"st": st, "d": shot["d"], "m": meta})
        st += shot["d"] - transition_ms
    total = st + transition_ms
    tracks: list[dict[str, Any]] = [{"tt": 0, "m": {"name": "shots"}, "sg": segs}]
    if music:
        src = music if isinstance(music, str) else None
        tracks.append(
            {
                "tt": 1,
                "m": {"name": "Music", "role": "bgm", "volume": 0.5},
                "sg": [
                    {
                        "st": 0,
                        "d": total,
                        "m": {"src": src, "mood": "calm", "fade_in_ms": 300, "fade_out_ms": 500},
                    }
                ],
            }
        )
    for role, text, start, dur, position in texts:
        tracks.append(
            {
                "tt": 7,
                "m": {"role": role},
                "sg": [{"st": start, "d": dur, "m": {"text": text, "position": position}}],
            }
        )
    meta: dict[str, Any] = {
        "width": size[0],
        "height": size[1],
        "fps": FPS,
        "transition": "fade" if transition_ms else None,
    }
    if logo:
        meta["logo"] = {"src": logo, "name": "logo.png"}
    return {"d": total, "m": meta, "t": tracks}


def render(tmp_path: Path, draft: dict[str, Any], media: dict[str, Path], **kwargs: Any) -> Path:
    out = tmp_path / "out" / "video.mp4"
    render_video(draft, media.__getitem__, out, **kwargs)
    return out


# ---------------------------------------------------------------- reading the output back


def info(path: Path) -> str:
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr


def duration_s(path: Path) -> float:
    found = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", info(path))
    assert found, info(path)
    return int(found[1]) * 3600 + int(found[2]) * 60 + float(found[3])


def frames(path: Path, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """Every frame as RGB (n, h, w, 3), decoded through a pipe."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size[1], size[0], 3).astype(np.float64)


def horizontal_steps(video: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """Per-frame horizontal motion (px) of a region, by one Lucas-Kanade step on blurred luma."""

    def luma(frame: np.ndarray) -> np.ndarray:
        gray = Image.fromarray(frame.mean(axis=2).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
        return np.asarray(gray, np.float64)[rows, cols]

    steps = []
    for a, b in itertools.pairwise(video):
        la, lb = luma(a), luma(b)
        ix = ((np.roll(la, -1, 1) - np.roll(la, 1, 1)) / 2)[3:-3, 3:-3]
        it = (lb - la)[3:-3, 3:-3]
        steps.append(-np.sum(ix * it) / np.sum(ix * ix))
    return np.array(steps)


def vertical_steps(video: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """Per-frame vertical motion (px) of a region: horizontal_steps on the transposed frames."""
    return horizontal_steps(video.transpose(0, 2, 1, 3), cols, rows)


# ---------------------------------------------------------------- format, size, duration, streams


@pytest.mark.parametrize("size", [(320, 180), (180, 320), (240, 240)], ids=["16:9", "9:16", "1:1"])
def test_output_is_h264_high_yuv420p_at_the_draft_size_and_length(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    media = {"p": textured_photo(tmp_path / "p.jpg")}
    draft = video_draft([{"kind": "image", "src": "p", "motion": "zoom_in", "d": 2000}], size=size)
    out = render(tmp_path, draft, media)
    text = info(out)
    assert re.search(rf"Video: h264 \(High\).*yuv420p.*{size[0]}x{size[1]}.*30 fps", text), text
    assert "Audio: aac" in text
    assert abs(duration_s(out) - 2.0) <= 1 / FPS
    assert len(frames(out, size)) == 60


def test_hard_cuts_without_a_transition_last_exactly_the_draft_length(tmp_path: Path) -> None:
    media = {
        "r": flat_photo(tmp_path / "r.jpg", (220, 30, 30)),
        "p": textured_photo(tmp_path / "p.jpg"),
        "b": flat_photo(tmp_path / "b.jpg", (30, 30, 220)),
    }
    shots = [
        {"kind": "image", "src": "r", "d": 1000},
        {"kind": "image", "src": "p", "motion": "zoom_in", "d": 1000},
        {"kind": "image", "src": "b", "motion": "pan_left", "d": 1000},
    ]
    out = render(tmp_path, video_draft(shots, music=False), media)
    video = frames(out)
    assert len(video) == 90
    assert abs(duration_s(out) - 3.0) <= 1 / FPS
    first, last = video[29].reshape(-1, 3).mean(axis=0), video[30 + 30].reshape(-1, 3).mean(axis=0)
    assert first[0] > 180 and last[2] > 180  # each cut lands on its frame


def test_a_draft_without_music_or_kept_sound_has_no_audio_stream(tmp_path: Path) -> None:
    media = {"p": flat_photo(tmp_path / "p.jpg", (90, 120, 200))}
    out = render(tmp_path, video_draft([{"kind": "image", "src": "p", "d": 1500}], music=False), media)
    assert "Audio:" not in info(out)
    assert abs(duration_s(out) - 1.5) <= 1 / FPS


def test_a_music_file_is_looped_to_the_video_length(tmp_path: Path) -> None:
    song = write_music_bed(tmp_path / "song.wav", "upbeat", 1.0)  # shorter than the video
    media = {"p": flat_photo(tmp_path / "p.jpg", (90, 120, 200)), "song": song}
    out = render(tmp_path, video_draft([{"kind": "image", "src": "p", "d": 2500}], music="song"), media)
    pcm = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(out), "-f", "s16le", "-ac", "1", "-ar", "8000", "-"],
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    assert abs(len(samples) / 8000 - 2.5) <= 1 / FPS
    middle = samples[int(1.4 * 8000) : int(1.9 * 8000)]  # after the 1 s song ended once
    assert np.sqrt(np.mean(middle**2)) > 300


def test_a_kept_clip_sound_gives_an_audio_stream_without_music(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=256x144:r=25:d=2", "-f", "lavfi",
         "-i", "sine=frequency=440:duration=2", "-shortest", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", str(clip)],
        check=True,
    )  # fmt: skip
    draft = video_draft(
        [{"kind": "video", "src": "c", "name": "clip.mp4", "keep_audio": True, "d": 2000}], music=False
    )
    out = render(tmp_path, draft, {"c": clip})
    assert "Audio: aac" in info(out)
    assert abs(duration_s(out) - 2.0) <= 1 / FPS


def test_a_clip_between_photos_plays_cover_fitted_and_crossfades_both_ways(tmp_path: Path) -> None:
    # A 4:3 green clip at 25 fps, 1 s long, in a 2 s leg (output frames 30-90): cover-fitted,
    # then held on its last frame from output frame 60 until the crossfade into blue at 75-90.
    clip = tmp_path / "green.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "color=c=0x20c040:s=240x180:r=25:d=1",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    media = {
        "r": flat_photo(tmp_path / "r.jpg", (220, 30, 30)),
        "c": clip,
        "b": flat_photo(tmp_path / "b.jpg", (30, 30, 220)),
    }
    shots = [
        {"kind": "image", "src": "r", "d": 1500},
        {"kind": "video", "src": "c", "name": "green.mp4", "d": 2000},
        {"kind": "image", "src": "b", "d": 1500},
    ]
    video = frames(render(tmp_path, video_draft(shots, transition_ms=500, music=False), media))
    assert len(video) == 120  # 1.5 + 2 + 1.5 s less two 0.5 s overlaps
    mean = [frame.reshape(-1, 3).mean(axis=0) for frame in video]
    green = mean[50]
    assert green[1] > 150 and green[0] < 80 and green[2] < 100
    assert video[50][:, :4].mean() > 40 and video[50][:, -4:].mean() > 40  # no bars from the 4:3 clip
    assert mean[70][1] > 150 and mean[70][2] < 100  # past the clip's end: its last frame, held
    assert 60 < mean[37][0] < 180 and 60 < mean[37][1] < 170  # red into green, half way
    assert 60 < mean[82][1] < 170 and 60 < mean[82][2] < 180  # green into blue, half way


# ---------------------------------------------------------------- what is on screen


def test_the_title_is_drawn_in_the_middle_of_the_photo(tmp_path: Path) -> None:
    media = {"p": flat_photo(tmp_path / "p.jpg", (60, 70, 80))}
    draft = video_draft(
        [{"kind": "image", "src": "p", "d": 2000}],
        music=False,
        texts=[("title", "Summer Sale", 0, 1500, "center")],
    )
    video = frames(render(tmp_path, draft, media))
    during, after = video[20], video[55]
    centre = (slice(H // 2 - 15, H // 2 + 15), slice(W // 4, 3 * W // 4))
    assert during[centre].max() > 200  # white letters over a dark photo
    assert after[centre].max() < 110  # gone after its segment
    assert abs(during[:20, :40].mean() - after[:20, :40].mean()) < 4  # the corner is untouched


def test_a_fade_transition_blends_the_two_photos(tmp_path: Path) -> None:
    media = {
        "r": flat_photo(tmp_path / "r.jpg", (220, 30, 30)),
        "b": flat_photo(tmp_path / "b.jpg", (30, 30, 220)),
    }
    shots = [{"kind": "image", "src": "r", "d": 2000}, {"kind": "image", "src": "b", "d": 2000}]
    draft = video_draft(shots, transition_ms=1000, music=False)
    video = frames(render(tmp_path, draft, media))
    assert len(video) == 90  # 2 s + 2 s - 1 s of overlap
    first, middle, last = (video[i].reshape(-1, 3).mean(axis=0) for i in (10, 45, 80))
    assert first[0] > 180 and first[2] < 70
    assert last[2] > 180 and last[0] < 70
    assert 80 < middle[0] < 170 and 80 < middle[2] < 170  # half red, half blue


def test_the_logo_sits_in_the_top_right_corner(tmp_path: Path) -> None:
    media = {"p": flat_photo(tmp_path / "p.jpg", (30, 40, 50)), "logo": logo_png(tmp_path / "logo.png")}
    draft = video_draft([{"kind": "image", "src": "p", "d": 1500}], music=False, logo="logo")
    frame = frames(render(tmp_path, draft, media))[30]
    top_right = frame[: H // 5, W - W // 5 :]
    top_left = frame[: H // 5, : W // 5]
    assert top_right.max() > 180  # the white logo, slightly see-through
    assert top_left.max() < 80


def test_an_end_card_shows_a_moving_gradient_and_the_logo_large(tmp_path: Path) -> None:
    media = {"logo": logo_png(tmp_path / "logo.png")}
    shots = [{"kind": "card", "src": None, "colors": ["#102040", "#f0a0c0"], "logo": True, "d": 2000}]
    video = frames(render(tmp_path, video_draft(shots, music=False, logo="logo"), media))
    centre = video[30][int(H * 0.3) : int(H * 0.5), W // 2 - 20 : W // 2 + 20]
    assert centre.min() > 200  # the big white logo in the middle
    corner = video[:, :20, :20].mean(axis=(1, 2))  # (frames, rgb) of the top-left corner
    far_corner = video[30][-20:, -20:].mean(axis=(0, 1))
    assert np.abs(corner[30] - far_corner).sum() > 150  # a gradient between the two colours, not a flat fill
    assert np.abs(corner[5] - corner[55]).sum() > 20  # and it moves


def test_a_portrait_photo_fills_a_landscape_frame_without_bars(tmp_path: Path) -> None:
    media = {"p": textured_photo(tmp_path / "tall.jpg", size=(300, 600))}
    video = frames(
        render(tmp_path, video_draft([{"kind": "image", "src": "p", "d": 1000}], music=False), media)
    )
    for frame in video[::10]:
        assert frame[:, :3].mean() > 30 and frame[:, -3:].mean() > 30  # no black columns
        assert frame[:3].mean() > 30 and frame[-3:].mean() > 30  # no black rows


def test_a_sideways_phone_photo_is_shown_upright(tmp_path: Path) -> None:
    # Stored landscape (red left half, blue right half) with EXIF orientation 6: shown rotated 90°
    # clockwise, so upright it is a portrait picture, red on top, blue below.
    stored = Image.new("RGB", (800, 600), (30, 30, 220))
    stored.paste((220, 30, 30), (0, 0, 400, 600))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    media = {"p": tmp_path / "phone.jpg"}
    draft = video_draft([{"kind": "image", "src": "p", "d": 500}], size=(180, 320), music=False)
    frame = frames(render(tmp_path, draft, media), size=(180, 320))[5]
    top, bottom = frame[20:140].reshape(-1, 3).mean(axis=0), frame[180:300].reshape(-1, 3).mean(axis=0)
    assert top[0] > 180 and top[2] < 70
    assert bottom[2] > 180 and bottom[0] < 70


# ---------------------------------------------------------------- Ken Burns motion


def moving_photo(tmp_path: Path, motion: str) -> np.ndarray:
    """The decoded frames of 2 s of one textured photo with ``motion``."""
    media = {"p": textured_photo(tmp_path / "p.jpg")}
    draft = video_draft([{"kind": "image", "src": "p", "motion": motion, "d": 2000}], music=False)
    return frames(render(tmp_path, draft, media))


def test_a_pan_moves_the_photo_at_a_steady_speed(tmp_path: Path) -> None:
    video = moving_photo(tmp_path, "pan_left")
    steps = horizontal_steps(video, slice(40, 140), slice(100, 220))
    assert 0.8 < steps.mean() < 1.2  # pan_left: the picture slides right, ~1 px per frame
    assert steps.std() < 0.1  # no stalls, no jumps
    assert steps.min() > 0.6


def test_a_zoom_moves_smoothly_without_stalls(tmp_path: Path) -> None:
    video = moving_photo(tmp_path, "zoom_in")
    left = horizontal_steps(video, slice(60, 120), slice(20, 100))  # left of centre: moves outwards (left)
    right = horizontal_steps(video, slice(60, 120), slice(220, 300))
    assert left.mean() < -0.3 and right.mean() > 0.3
    assert left.max() < 0 and right.min() > 0  # every single frame moves
    assert left.std() < 0.12 and right.std() < 0.12
    assert abs(left.mean() + right.mean()) < 0.1  # centred zoom: no drift


def test_a_zoom_moves_the_top_rows_smoothly_too(tmp_path: Path) -> None:
    """Near the top edge the zoom is vertical motion of ~0.4 px/frame: no 0, 1, 0, 1 px staircase."""
    video = moving_photo(tmp_path, "zoom_in")
    top = vertical_steps(video, slice(4, 40), slice(100, 220))
    assert top.mean() < -0.2  # the top rows move up and out
    # Rounding the frame height to whole-pixel margins gave std ~0.34 here (0/~0.8 px steps); the
    # rest is bilinear resampling seen at 320x180 (the horizontal motion shows the same ~0.1).
    assert top.std() < 0.22


def test_a_pan_keeps_colour_on_the_picture(tmp_path: Path) -> None:
    """Odd pan positions come from the shifted copy: colour edges move with the luma, no chroma lag."""
    image = Image.new("RGB", (800, 600), (20, 20, 20))
    ImageDraw.Draw(image).rectangle((380, 0, 419, 599), fill=(230, 30, 30))  # a red bar
    image.save(tmp_path / "bar.png")
    video = frames(
        render(
            tmp_path,
            video_draft([{"kind": "image", "src": "p", "motion": "pan_right", "d": 1000}], music=False),
            {"p": tmp_path / "bar.png"},
        )
    )
    for frame in video[5:25]:
        red = frame[:, :, 0].mean(axis=0) > 120
        cols = np.flatnonzero(red)
        bar = frame[90, cols[0] + 2 : cols[-1] - 1]
        assert bar[:, 0].min() > 170 and bar[:, 1].max() < 90  # solid red inside, chroma aligned


def yuv_planes(path: Path, size: tuple[int, int] = (W, H)) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's luma (n, h, w) and V chroma (n, h/2, w/2) planes, exactly as encoded (no conversion)."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True,
        check=True,
    ).stdout
    w, h = size
    per = w * h * 3 // 2
    planes = np.frombuffer(raw, np.uint8).reshape(-1, per).astype(np.float64)
    luma = planes[:, : w * h].reshape(-1, h, w)
    v = planes[:, w * h + w * h // 4 :].reshape(-1, h // 2, w // 2)
    return luma, v


def rising_edge(row: np.ndarray) -> float:
    """Where a dark-to-bright profile crosses its midpoint, to a fraction of a sample."""
    mid = (row.min() + row.max()) / 2
    i = int(np.flatnonzero(row >= mid)[0])
    return i - 1 + (mid - row[i - 1]) / (row[i] - row[i - 1])


def test_a_zoom_keeps_colour_on_the_picture_in_every_frame(tmp_path: Path) -> None:
    """The zoom crops at odd offsets every other frame: the colour must move with the luma, not lag 1 px."""
    image = Image.new("RGB", (800, 600), (40, 90, 40))
    ImageDraw.Draw(image).rectangle((200, 0, 799, 599), fill=(240, 40, 60))  # red right of x = 200
    image.save(tmp_path / "edge.png")
    luma, v = yuv_planes(
        render(
            tmp_path,
            video_draft([{"kind": "image", "src": "p", "motion": "zoom_in", "d": 2000}], music=False),
            {"p": tmp_path / "edge.png"},
        )
    )
    # Chroma sample k sits at luma x = 2k + 0.5 (centre siting): the colour edge in luma coordinates.
    gap = np.array(
        [rising_edge(y[90, :160]) - (2 * rising_edge(c[45, :80]) + 0.5) for y, c in zip(luma, v, strict=True)]
    )
    # The margin a = frame index: odd frames were cropped at odd x. Misplaced chroma shows as a 1 px step.
    assert abs(np.median(gap[1::2]) - np.median(gap[0::2])) < 0.25
    assert np.median(np.abs(gap)) < 0.3


# ---------------------------------------------------------------- progress, errors, cancellation


def test_progress_climbs_to_one(tmp_path: Path) -> None:
    media = {"p": flat_photo(tmp_path / "p.jpg", (100, 100, 100))}
    seen: list[float] = []
    render(
        tmp_path,
        video_draft([{"kind": "image", "src": "p", "d": 1500}], music=False),
        media,
        progress=seen.append,
    )
    assert seen[-1] == pytest.approx(1.0)
    assert all(0.0 <= value <= 1.0 for value in seen)
    assert seen == sorted(seen)


def test_a_broken_photo_is_a_render_error_naming_it_and_leaves_no_file(tmp_path: Path) -> None:
    broken = tmp_path / "p.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    draft = video_draft([{"kind": "image", "src": "p", "name": "beach.jpg", "d": 1000}], music=False)
    with pytest.raises(RenderError, match=r"beach\.jpg"):
        render(tmp_path, draft, {"p": broken})
    assert not (tmp_path / "out" / "video.mp4").exists()


def test_a_broken_photo_late_in_the_video_stops_ffmpeg_and_names_the_photo(tmp_path: Path) -> None:
    # ffmpeg is already reading the earlier photos when the last one turns out to be broken.
    broken = tmp_path / "late.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    media = {
        "a": textured_photo(tmp_path / "a.jpg", seed=1),
        "b": textured_photo(tmp_path / "b.jpg", seed=2),
        "c": broken,
    }
    shots = [
        {"kind": "image", "src": "a", "motion": "zoom_in", "d": 1500},
        {"kind": "image", "src": "b", "motion": "pan_left", "d": 1500},
        {"kind": "image", "src": "c", "name": "sunset.jpg", "motion": "zoom_out", "d": 1500},
    ]
    with pytest.raises(RenderError, match=r"sunset\.jpg"):
        render(tmp_path, video_draft(shots, transition_ms=500), media)
    assert not (tmp_path / "out" / "video.mp4").exists()
    assert not list((tmp_path / "out").glob(".*.part"))


def test_encoding_starts_before_the_last_photo_is_ready(tmp_path: Path) -> None:
    # The last photo's file is handed over only once ffmpeg reports encoded output: if ffmpeg
    # waited for every photo before encoding (as it did with one input per photo, or with the
    # music in the pictures' filter graph), no progress would come and the wait would run out.
    media = {key: textured_photo(tmp_path / f"{key}.jpg", seed=seed) for seed, key in enumerate("abc")}
    encoding = threading.Event()
    last_ready_after_progress: list[bool] = []

    def resolve(key: str) -> Path:
        if key == "c":
            last_ready_after_progress.append(encoding.wait(timeout=30))
        return media[key]

    shots = [
        {"kind": "image", "src": "a", "motion": "zoom_in", "d": 3000},
        {"kind": "image", "src": "b", "motion": "pan_left", "d": 1500},
        {"kind": "image", "src": "c", "motion": "zoom_out", "d": 1500},
    ]
    out = tmp_path / "out" / "video.mp4"
    render_video(
        video_draft(shots, transition_ms=500),
        resolve,
        out,
        progress=lambda value: encoding.set() if value > 0 else None,
    )
    assert last_ready_after_progress == [True]
    assert duration_s(out) == pytest.approx(5.0, abs=1 / FPS)
    assert "Audio: aac" in info(out)


def test_a_broken_clip_is_a_render_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "c.mp4"
    broken.write_bytes(os.urandom(4000))
    draft = video_draft([{"kind": "video", "src": "c", "name": "drone.mp4", "d": 1000}], music=False)
    with pytest.raises(RenderError, match=r"drone\.mp4") as caught:
        render(tmp_path, draft, {"c": broken})
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 500


def _ffmpeg_writing(target_dir: Path) -> list[int]:
    """Pids of processes whose command line mentions target_dir (our ffmpeg, if it survived)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(target_dir).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


# Long enough that ffmpeg's first progress report (after 0.5 s) comes before the end on a fast,
# idle machine (a 20 s zoom at this size renders in about 0.5 s); both tests stop it right there.
LONG_ZOOM = [{"kind": "image", "src": "p", "motion": "zoom_in", "d": 40000}]


def test_a_cancelled_render_kills_ffmpeg_and_leaves_no_file(tmp_path: Path) -> None:
    media = {"p": textured_photo(tmp_path / "p.jpg")}
    draft = video_draft(LONG_ZOOM, music=False)

    def cancel(value: float) -> None:
        if 0 < value < 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render(tmp_path, draft, media, progress=cancel)
    assert _ffmpeg_writing(tmp_path / "out") == []
    assert list((tmp_path / "out").iterdir()) == []


def test_ffmpeg_killed_by_the_system_is_one_sentence_about_memory(tmp_path: Path) -> None:
    """The kernel's OOM killer sends SIGKILL: the user learns why and what to do, not 'exit status -9'."""
    media = {"p": textured_photo(tmp_path / "p.jpg")}
    draft = video_draft(LONG_ZOOM, music=False)
    killed: list[int] = []

    def kill_ffmpeg(value: float) -> None:
        if 0 < value < 1 and not killed:
            killed.extend(_ffmpeg_writing(tmp_path / "out"))
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(RenderError) as raised:
        render(tmp_path, draft, media, progress=kill_ffmpeg)
    assert killed
    message = str(raised.value)
    assert message.startswith("ffmpeg was killed by the system, most likely for lack of memory")
    assert "jobs.max_concurrent = 1" in message and "\n" not in message
    assert list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------- the generated music bed


@pytest.mark.parametrize("mood", ["upbeat", "calm", "lofi", "cinematic"])
def test_the_music_bed_is_music_not_a_test_tone(mood: str) -> None:
    sr = 22050
    track = synthesize(mood, 6.0, sample_rate=sr)
    assert track.shape == (6 * sr, 2)
    assert np.abs(track).max() <= 1.0 and np.sqrt(np.mean(track**2)) > 0.05
    mono = track.mean(axis=1)
    # Harmony: several distinct strong pitches, not one sine.
    spectrum = np.abs(np.fft.rfft(mono[sr : 5 * sr]))
    freqs = np.fft.rfftfreq(4 * sr, 1 / sr)
    band = (freqs > 60) & (freqs < 2000)
    strong = freqs[band][spectrum[band] > spectrum[band].max() * 0.25]
    assert len({round(12 * np.log2(f / 440)) for f in strong}) >= 3
    # Movement: loudness changes over time (notes, chords, beats), it is not a steady drone.
    envelope = np.sqrt(np.mean(mono[: 6 * sr // 2205 * 2205].reshape(-1, 2205) ** 2, axis=1))
    assert envelope.std() / envelope.mean() > 0.05


def test_an_ffmpeg_too_old_for_the_graph_file_is_one_clear_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An ffmpeg 6 (IMAGEIO_FFMPEG_EXE pointing at a distribution's) answers as this one does.
    old = tmp_path / "ffmpeg"
    old.write_text("#!/bin/sh\necho \"Unrecognized option '/filter_complex'.\" >&2\nexit 8\n")
    old.chmod(0o755)
    monkeypatch.setattr("nemowatch.local.render.ffmpeg_exe", lambda: str(old))
    media = {"p": flat_photo(tmp_path / "p.jpg", (200, 100, 50))}
    draft = video_draft([{"kind": "image", "src": "p", "d": 500}], music=False)
    with pytest.raises(RenderError) as caught:
        render(tmp_path, draft, media)
    assert str(caught.value).startswith(f"The ffmpeg in use ({old}) is too old to render")
    assert "imageio-ffmpeg>=0.6" in str(caught.value)
    assert not (tmp_path / "out" / "video.mp4").exists()
