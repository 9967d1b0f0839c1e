"""Probe uploaded media: kind, size, duration, sound and transparency, for the director."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from nemowatch.api.formats import ACCEPTED_LIST, media_kind
from nemowatch.errors import UserError
from nemowatch.ffmpeg import clock_seconds, header_duration, run_to_end

_VIDEO_STREAM = re.compile(r"Stream #\S+.*?: Video: (?P<rest>.*)")
_AUDIO_STREAM = re.compile(r"Stream #\S+.*?: Audio: ")
_SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_COPIED_TIME = re.compile(r"\btime=(\d+):(\d+):(\d+(?:\.\d+)?)")
# What ffmpeg says when a header's duration is a guess, and when an MP4 has no index.
_ESTIMATED = "Estimating duration from bitrate"
_NO_INDEX = "moov atom not found"
# A file is cut short when its packets end this much before the length its header states
# (whichever is larger). Whole files end within a frame or two of it (0.00-0.03 s measured on
# MP4, M4A, MP3 and WebM); a cut-off copy usually lacks a large part.
SHORT_BY_S = 1.0
SHORT_BY_FRACTION = 0.05
# How much of a file's end is read to find its last packets (more than SHORT_BY_S).
TAIL_S = 3.0
# Every video and audio packet copied to nowhere: reads the packets without decoding them.
_COPY_TO_NOWHERE = ("-map", "0:v?", "-map", "0:a?", "-c", "copy", "-f", "null", "-")
# Pixel formats that carry an alpha plane (yuva420p, rgba, argb, bgra, ya8, pal8 with alpha is rare).
_ALPHA_FORMAT = re.compile(r"\b(yuva\w*|rgba\w*|argb|bgra|abgr|gbrap\w*|ya8|ya16\w*)\b")


class MediaError(UserError, ValueError):
    """A file the local backend cannot decode; the message names the file and the reason."""

    code = "4001"


@dataclass(frozen=True)
class MediaItem:
    """One uploaded file as the director sees it."""

    id: str
    name: str
    path: Path
    kind: str  # "image" | "video" | "audio"
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    has_audio: bool = False
    has_alpha: bool = False


def probe(path: Path, media_id: str, name: str) -> MediaItem:
    """Read what the director needs from ``path``; raise MediaError when it cannot be decoded."""
    kind = media_kind(name) or media_kind(path)
    if kind is None:
        raise MediaError(
            f"{name} is not a supported media file",
            f"use one of: {ACCEPTED_LIST}",
        )
    if not path.is_file():
        raise MediaError(f"{name} could not be read: the uploaded file is missing", "upload it again")
    if kind == "image":
        return _probe_image(path, media_id, name)
    return _probe_av(path, media_id, name, kind)


def _probe_image(path: Path, media_id: str, name: str) -> MediaItem:
    """Decode the picture (so a truncated file is caught now, not at render time)."""
    try:
        with Image.open(path) as img:
            width, height = _displayed_size(img)  # before draft(), which shrinks img.size
            # A reduced-scale JPEG decode still reads every byte but is far cheaper on 24 MP photos.
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
            has_alpha = _has_real_alpha(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(
            f"{name} could not be read as an image: {_reason(exc)}",
            "re-save it as JPG or PNG, or remove it from the job",
        ) from exc
    return MediaItem(
        id=media_id, name=name, path=path, kind="image", width=width, height=height, has_alpha=has_alpha
    )


def _displayed_size(img: Image.Image) -> tuple[int, int]:
    """Size as a viewer shows it: EXIF orientations 5-8 (phone portraits) swap width and height."""
    width, height = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not make a good photo unreadable
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _has_real_alpha(img: Image.Image) -> bool:
    """True when some pixel is actually see-through, not merely stored with an alpha channel."""
    if img.mode in ("RGBA", "LA", "PA"):
        alpha = img.getchannel("A")
    elif img.mode == "P" and "transparency" in img.info:
        alpha = img.convert("RGBA").getchannel("A")
    elif img.mode in ("RGB", "L", "I", "I;16") and "transparency" in img.info:
        alpha = img.convert("RGBA").getchannel("A")  # a colour key marks see-through pixels
    else:
        return False
    low = alpha.getextrema()[0]  # one band: (lowest, highest)
    return isinstance(low, int | float) and low < 255


def _probe_av(path: Path, media_id: str, name: str, kind: str) -> MediaItem:
    """Parse ``ffmpeg -i`` (there is no ffprobe in imageio-ffmpeg) for streams, size and duration,
    and refuse a copy cut short."""
    noun = "a video" if kind == "video" else "an audio file"
    hint = (
        "re-export it as MP4 (H.264/AAC) or remove it from the job"
        if kind == "video"
        else ("re-export it as MP3 or WAV, or remove it from the job")
    )
    info, tail_end = _ffmpeg_info(path, name, noun, hint)
    video_line = _VIDEO_STREAM.search(info)
    has_audio = _AUDIO_STREAM.search(info) is not None
    if video_line is None and not has_audio:
        if _NO_INDEX in info:
            raise MediaError(
                f"{name} could not be read as {noun}: its index (the moov atom) is missing, "
                "as in a copy that was cut short",
                "copy it again from the original, or remove it from the job",
            )
        raise MediaError(f"{name} could not be read as {noun}: {_ffmpeg_reason(info)}", hint)
    width = height = 0
    has_alpha = False
    # Cover art in an MP3 shows up as a video stream; only a video-kind file is treated as moving pictures.
    if video_line is not None and kind == "video":
        size = _SIZE.search(video_line.group("rest"))
        if size:
            width, height = int(size.group(1)), int(size.group(2))
        rotation = _ROTATION.search(info)
        if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
            width, height = height, width
        has_alpha = _ALPHA_FORMAT.search(video_line.group("rest")) is not None
    elif kind == "video":
        kind = "audio"  # a sound-only .mp4/.mkv is music, not footage
    stated = header_duration(info)
    if stated is None or _ESTIMATED in info:
        # No length in the header, or only a guess from the bitrate (VBR MP3s without a Xing
        # header, WAVs cut short): the packets' own length is the true one.
        duration = _packets_end(path) or stated
    else:
        duration = stated
        if tail_end is None or tail_end < stated - _slack(stated):
            _refuse_if_cut_short(path, name, stated)
    if not duration or duration <= 0:
        raise MediaError(f"{name} could not be read as {noun}: its length is unknown or zero", hint)
    return MediaItem(
        id=media_id,
        name=name,
        path=path,
        kind=kind,
        width=width,
        height=height,
        duration_s=duration,
        has_audio=has_audio,
        has_alpha=has_alpha,
    )


def _ffmpeg_info(path: Path, name: str, noun: str, hint: str) -> tuple[str, float | None]:
    """What ``ffmpeg -i path`` says about the file, and where the packets of its last seconds end.

    One ffmpeg run: ``-sseof`` seeks to TAIL_S before the end the header states (from the
    start when it states none, or less), and the packets from there on are copied to nowhere,
    not decoded. Reading only the tail keeps the probe as fast for a 500 MB clip as for a
    short one (bench/probe_bench.py); a copy cut short has no packets there.
    """
    args = ["-hide_banner", "-nostdin", "-sseof", f"-{TAIL_S}", "-i", str(path), *_COPY_TO_NOWHERE]
    try:
        text = run_to_end(args)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(
            f"{name} could not be read as {noun}: ffmpeg took too long to open it", hint
        ) from exc
    header, _, copied = text.partition("\nStream mapping:")
    stated = header_duration(header)
    return header, _copied_end(copied, max(0.0, stated - TAIL_S) if stated else 0.0)


def _slack(stated: float) -> float:
    """How far before its header's end a whole file's packets may end (see SHORT_BY_S)."""
    return max(SHORT_BY_S, SHORT_BY_FRACTION * stated)


def _refuse_if_cut_short(path: Path, name: str, stated: float) -> None:
    """Read the whole file and refuse it when its packets end clearly before the ``stated`` length.

    For files whose last seconds are missing: a copy cut short (a phone sync that stopped)
    keeps a header that states the whole length (MP4s with the index in front, MP3s with a
    Xing header, WebM) but holds only the packets up to the cut; rendered, the video would
    freeze on its last decodable frame. The whole read says how much of it is there.
    """
    readable = _packets_end(path)
    if readable is not None and stated - readable > _slack(stated):
        raise MediaError(
            f"{name} is cut short: its header says {stated:.1f} s but only {readable:.1f} s can be decoded",
            "copy it again from the original",
        )


def _packets_end(path: Path) -> float | None:
    """Where the file's video and audio packets end (seconds), all of them copied to nowhere."""
    try:
        text = run_to_end(["-hide_banner", "-nostdin", "-i", str(path), *_COPY_TO_NOWHERE])
    except subprocess.TimeoutExpired:
        return None
    return _copied_end(text.partition("\nStream mapping:")[2], 0.0)


def _copied_end(report: str, start: float) -> float | None:
    """The end of the copied packets from ffmpeg's report after "Stream mapping:", read from
    ``start``; None when it reports no time (no packet at all, or a failed read).

    The last progress line is the final one. Its time counts from the seek point; a seek past
    the packets prints a negative time or "N/A", which the pattern leaves out.
    """
    times = _COPIED_TIME.findall(report)
    return start + clock_seconds(*times[-1]) if times else None


def _ffmpeg_reason(info: str) -> str:
    """The most telling error line ffmpeg printed, lower-cased, without its [tag @ 0x…] prefix."""
    lines = [re.sub(r"^\[[^\]]*\]\s*", "", line).strip() for line in info.splitlines()]
    for needle in ("Invalid data", "Error opening", "No such file"):
        for line in lines:
            if needle in line:
                return _clean(line.split(":", 1)[-1] if line.startswith("Error opening") else line)
    return "it holds no video or audio stream ffmpeg can read"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "the file is not a picture Pillow recognises"
    if isinstance(exc, Image.DecompressionBombError):
        return "the picture is too large to decode safely"
    return _clean(str(exc)) or type(exc).__name__


def _clean(text: str) -> str:
    """One lower-case clause without a trailing full stop, for embedding in a sentence."""
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text else text
