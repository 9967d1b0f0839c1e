"""media.probe on real files made here: pictures with Pillow, clips and sound with ffmpeg lavfi."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from nemowatch.errors import UserError
from nemowatch.local.media import MediaError, MediaItem, probe


def _ffmpeg(*args: str) -> None:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One of each kind of file a job folder may hold, tiny so the module runs in a second or two."""
    root = tmp_path_factory.mktemp("media")
    out = {name: root / name for name in ("clip.mp4", "mute.mp4", "song.wav", "voice.mp4")}
    testsrc = ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=15"]
    sine = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"]
    _ffmpeg(
        *testsrc,
        *sine,
        "-t",
        "1",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-shortest",
        str(out["clip.mp4"]),
    )
    _ffmpeg(*testsrc, "-t", "1", "-pix_fmt", "yuv420p", "-c:v", "libx264", str(out["mute.mp4"]))
    _ffmpeg(*sine, "-t", "1", str(out["song.wav"]))
    _ffmpeg(*sine, "-t", "1", "-c:a", "aac", str(out["voice.mp4"]))
    return out


def test_png_with_transparent_pixels_is_reported_as_having_alpha(tmp_path: Path) -> None:
    path = tmp_path / "logo.png"
    img = Image.new("RGBA", (40, 20), (255, 0, 0, 255))
    img.putpixel((0, 0), (0, 0, 0, 0))
    img.save(path)
    item = probe(path, "m1", "logo.png")
    assert item == MediaItem(
        id="m1", name="logo.png", path=path, kind="image", width=40, height=20, has_alpha=True
    )


def test_png_with_an_alpha_channel_but_every_pixel_opaque_has_no_real_alpha(tmp_path: Path) -> None:
    path = tmp_path / "flat.png"
    Image.new("RGBA", (30, 30), (10, 20, 30, 255)).save(path)
    assert probe(path, "m1", "flat.png").has_alpha is False


def test_palette_gif_with_a_transparent_colour_has_alpha(tmp_path: Path) -> None:
    path = tmp_path / "badge.gif"
    img = Image.new("P", (16, 16), 1)
    img.putpixel((3, 3), 0)
    img.save(path, transparency=0)
    assert probe(path, "g", "badge.gif").has_alpha is True


def test_jpeg_gives_its_size_and_no_alpha(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (200, 100, 50)).save(path, quality=80)
    item = probe(path, "p", "photo.jpg")
    assert (item.kind, item.width, item.height, item.has_alpha) == ("image", 64, 48, False)


def test_phone_portrait_jpeg_reports_the_size_people_see(tmp_path: Path) -> None:
    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° clockwise
    Image.new("RGB", (64, 48)).save(path, exif=exif)
    item = probe(path, "p", "portrait.jpg")
    assert (item.width, item.height) == (48, 64)


def test_mp4_with_sound_gives_size_duration_and_audio(files: dict[str, Path]) -> None:
    item = probe(files["clip.mp4"], "c", "clip.mp4")
    assert (item.kind, item.width, item.height, item.has_audio) == ("video", 160, 90, True)
    assert item.duration_s == pytest.approx(1.0, abs=0.15)


def test_mp4_without_sound_has_no_audio(files: dict[str, Path]) -> None:
    item = probe(files["mute.mp4"], "c", "mute.mp4")
    assert (item.kind, item.has_audio) == ("video", False)
    assert item.duration_s == pytest.approx(1.0, abs=0.15)


def test_wav_is_audio_with_its_length(files: dict[str, Path]) -> None:
    item = probe(files["song.wav"], "a", "song.wav")
    assert (item.kind, item.has_audio, item.width) == ("audio", True, 0)
    assert item.duration_s == pytest.approx(1.0, abs=0.05)


def test_sound_only_mp4_counts_as_music_not_footage(files: dict[str, Path]) -> None:
    assert probe(files["voice.mp4"], "a", "voice.mp4").kind == "audio"


def test_the_upload_name_decides_the_kind_even_when_stored_under_another_name(
    files: dict[str, Path], tmp_path: Path
) -> None:
    stored = tmp_path / "blob-0001"
    stored.write_bytes(files["clip.mp4"].read_bytes())
    assert probe(stored, "c", "Holiday.MP4").kind == "video"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.mp4", b"this is not a video at all" * 10, "could not be read as a video"),
        ("broken.wav", b"RIFF\x00\x00garbage", "could not be read as an audio file"),
        ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "could not be read as an image"),
        ("notes.docx", b"PK\x03\x04", "not a supported media file"),
    ],
)
def test_undecodable_file_raises_a_one_line_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError) as caught:
        probe(path, "x", name)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, UserError)
    assert name in str(error) and reason in str(error)
    assert "\n" not in str(error) and error.hint


def test_truncated_jpeg_is_caught_at_probe_time_not_at_render_time(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    Image.effect_noise((256, 256), 60).convert("RGB").save(whole, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(MediaError, match=r"cut\.jpg could not be read as an image"):
        probe(cut, "x", "cut.jpg")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"gone\.mp4 could not be read"):
        probe(tmp_path / "gone.mp4", "x", "gone.mp4")


# -- copies cut short (a phone sync that stopped midway) ------------------------------------------

TRUNCATED_HEADER_S = 6.0


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """6-second files as phones and encoders write them, each with its length in the header."""
    root = tmp_path_factory.mktemp("whole")
    testsrc = ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=15:duration=6"]
    sine = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050:duration=6"]
    video = ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-c:a", "aac", "-shortest"]
    out = {name: root / name for name in ("front.mp4", "back.mp4", "song.mp3", "song.m4a", "song.webm")}
    _ffmpeg(*testsrc, *sine, *video, "-movflags", "+faststart", str(out["front.mp4"]))  # index first
    _ffmpeg(*testsrc, *sine, *video, str(out["back.mp4"]))  # index last, as a phone records
    _ffmpeg(*sine, str(out["song.mp3"]))  # with a Xing header that states the length
    _ffmpeg(*sine, "-c:a", "aac", "-movflags", "+faststart", str(out["song.m4a"]))
    _ffmpeg(*sine, "-c:a", "libopus", str(out["song.webm"]))
    return out


def _cut(path: Path, folder: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of the file's bytes under the same name: a copy that stopped."""
    cut = folder / path.name
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    return cut


@pytest.mark.parametrize("name", ["front.mp4", "back.mp4", "song.mp3", "song.m4a", "song.webm"])
def test_whole_files_are_accepted_with_the_length_of_their_header(whole: dict[str, Path], name: str) -> None:
    item = probe(whole[name], "w", name)
    assert item.duration_s == pytest.approx(TRUNCATED_HEADER_S, abs=0.1)


@pytest.mark.parametrize("name", ["front.mp4", "song.mp3", "song.m4a", "song.webm"])
def test_a_copy_cut_in_half_is_refused_naming_the_file_and_both_lengths(
    whole: dict[str, Path], tmp_path: Path, name: str
) -> None:
    cut = _cut(whole[name], tmp_path)
    with pytest.raises(MediaError) as caught:
        probe(cut, "c", name)
    text = str(caught.value)
    found = re.fullmatch(
        rf"{re.escape(name)} is cut short: its header says 6\.0 s but only (\d+\.\d) s can be decoded; "
        r"copy it again from the original\.",
        text,
    )
    assert found, text
    assert 1.5 < float(found[1]) < 4.5  # about half of it: what the cut copy really holds


def test_a_copy_cut_before_its_index_says_so(whole: dict[str, Path], tmp_path: Path) -> None:
    cut = _cut(whole["back.mp4"], tmp_path)
    with pytest.raises(MediaError) as caught:
        probe(cut, "c", "back.mp4")
    assert str(caught.value) == (
        "back.mp4 could not be read as a video: its index (the moov atom) is missing, as in a copy "
        "that was cut short; copy it again from the original, or remove it from the job."
    )


def test_a_copy_missing_only_its_last_frames_is_still_accepted(
    whole: dict[str, Path], tmp_path: Path
) -> None:
    """Within a second of the header's length is no freeze anyone notices: not worth failing a job."""
    cut = _cut(whole["front.mp4"], tmp_path, fraction=0.97)
    item = probe(cut, "c", "front.mp4")
    assert item.duration_s == pytest.approx(TRUNCATED_HEADER_S, abs=0.1)


def test_an_mp3_whose_header_only_guesses_its_length_gets_the_length_it_really_has(tmp_path: Path) -> None:
    """A VBR MP3 without a Xing header: ffmpeg estimates its length from the first frames' bitrate."""
    song = tmp_path / "vbr.mp3"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:duration=8", "-q:a", "4", "-write_xing", "0", str(song))
    assert probe(song, "s", "vbr.mp3").duration_s == pytest.approx(8.0, abs=0.1)
    (tmp_path / "cut").mkdir()
    half = _cut(song, tmp_path / "cut")
    assert probe(half, "s", "vbr.mp3").duration_s == pytest.approx(4.0, abs=0.3)
