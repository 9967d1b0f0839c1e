"""result.json's video facts read from the MP4's boxes agree with ffmpeg, for the ways ffmpeg lays files out."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from nemowatch.daemon.mp4info import Mp4Facts, read_mp4_facts
from nemowatch.daemon.results import _probe_with_ffmpeg, measure_video
from nemowatch.ffmpeg import ffmpeg_exe


def make_mp4(
    path: Path, *args: str, seconds: float = 1.0, size: str = "320x180", audio: bool = False
) -> Path:
    """A small real MP4 made by ffmpeg; ``args`` go before the output (movflags, maps)."""
    inputs = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", *inputs, "-pix_fmt", "yuv420p", *args, str(path)],
        check=True,
        timeout=60,
    )
    return path


def top_level_boxes(data: bytes) -> list[bytes]:
    kinds, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        kinds.append(kind)
        offset += size
    return kinds


def ffmpeg_says(path: Path) -> Mp4Facts:
    facts = _probe_with_ffmpeg(path, path.stat().st_size)
    return Mp4Facts(facts.width, facts.height, facts.duration_s)


def test_a_plain_mux_with_moov_at_the_end_matches_ffmpeg(tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "plain.mp4")
    assert top_level_boxes(video.read_bytes())[-1] == b"moov"
    assert read_mp4_facts(video) == ffmpeg_says(video) == Mp4Facts(320, 180, 1.0)


def test_a_faststart_file_with_moov_first_matches_ffmpeg(tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "fast.mp4", "-movflags", "+faststart", seconds=2, size="180x320")
    kinds = top_level_boxes(video.read_bytes())
    assert kinds.index(b"moov") < kinds.index(b"mdat")
    assert read_mp4_facts(video) == ffmpeg_says(video) == Mp4Facts(180, 320, 2.0)


def test_the_video_track_is_found_behind_an_audio_track(tmp_path: Path) -> None:
    # Audio mapped first: the first trak is sound, whose tkhd says 0x0.
    video = make_mp4(
        tmp_path / "av.mp4", "-map", "1:a", "-map", "0:v", "-c:a", "aac", seconds=1.5, audio=True
    )
    facts = read_mp4_facts(video)
    assert facts is not None
    assert (facts.width, facts.height) == (320, 180)
    assert facts == ffmpeg_says(video)


def test_a_64_bit_box_size_is_followed(tmp_path: Path) -> None:
    # Rewrite the mdat header in its 64-bit form (size 1 + largesize), as muxers do for files over 4 GB.
    video = make_mp4(tmp_path / "plain.mp4")
    data = video.read_bytes()
    offset = 0
    while True:
        size, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"mdat":
            break
        offset += size
    wide = struct.pack(">I4sQ", 1, b"mdat", size + 8) + data[offset + 8 : offset + size]
    rewritten = tmp_path / "wide.mp4"
    rewritten.write_bytes(data[:offset] + wide + data[offset + size :])
    assert read_mp4_facts(rewritten) == Mp4Facts(320, 180, 1.0)


def test_a_fragmented_mp4_falls_back_to_ffmpeg(tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "frag.mp4", "-movflags", "frag_keyframe+empty_moov")
    assert read_mp4_facts(video) is None  # no duration in its moov: the reader says so rather than guess
    facts = measure_video(video)
    assert (facts.width, facts.height, facts.bytes) == (320, 180, video.stat().st_size)


@pytest.mark.parametrize("content", [b"", b"not a video at all", b"\x00\x00\x00\x10moov\x00\x00"])
def test_a_file_that_is_no_mp4_gives_zeros_not_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    assert read_mp4_facts(path) is None
    facts = measure_video(path)
    assert (facts.width, facts.height, facts.duration_s) == (0, 0, 0.0)


def test_a_cut_download_is_not_read_past_its_end(tmp_path: Path) -> None:
    video = make_mp4(tmp_path / "plain.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[:-100])  # the moov at the end lost its tail
    assert read_mp4_facts(cut) is None
