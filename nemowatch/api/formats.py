"""What the NemoVideo API accepts: media types and sizes, and message sizes, for every layer."""

from __future__ import annotations

import math
import re
from pathlib import PurePath

# Listed in the order error messages name them; ACCEPTED_LIST is derived so the two never drift.
_VIDEO = ("mp4", "mov", "avi", "webm", "mkv")
_IMAGE = ("jpg", "jpeg", "png", "gif", "webp")
_AUDIO = ("mp3", "wav", "m4a", "aac")
VIDEO_EXTENSIONS = frozenset(_VIDEO)
IMAGE_EXTENSIONS = frozenset(_IMAGE)
AUDIO_EXTENSIONS = frozenset(_AUDIO)
ACCEPTED_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS | AUDIO_EXTENSIONS

# 500 MB, as the API documents it (decimal megabytes, like the cloud's limit).
MAX_UPLOAD_BYTES = 500 * 1000 * 1000

ACCEPTED_LIST = " ".join(_VIDEO + _IMAGE + _AUDIO)

# The longest message (UTF-8 bytes, decimal kB like MAX_UPLOAD_BYTES): the daemon refuses a longer
# one before anything is sent and the local backend refuses it unread, so what a message costs
# the local director stays bounded whatever a prompt holds. Prompts are a few hundred bytes.
MAX_MESSAGE_BYTES = 64 * 1000

_DIGITS = re.compile(r"(\d+)")


def extension(name: str | PurePath) -> str:
    """Lower-case extension without the dot (``"IMG_1.JPG"`` → ``"jpg"``)."""
    return PurePath(name).suffix.lower().lstrip(".")


def media_kind(name: str | PurePath) -> str | None:
    """``"video"``, ``"image"``, ``"audio"`` or None when the API does not accept it."""
    ext = extension(name)
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    return None


def natural_key(relpath: str) -> tuple[tuple[tuple[tuple[int, int | str], ...], ...], str]:
    """Sort key for natural name order (the inbox's and the local director's) per path component: ``2.jpg`` before ``10.jpg``, case-insensitive."""
    parts: list[tuple[tuple[int, int | str], ...]] = []
    for component in relpath.split("/"):
        chunks = _DIGITS.split(component.casefold())
        # Tag each chunk so a number never gets compared with text.
        tagged: list[tuple[int, int | str]] = [(1, int(c)) if i % 2 else (0, c) for i, c in enumerate(chunks)]
        parts.append(tuple(tagged))
    # The raw path breaks ties ("01" vs "1") so the order is total and stable.
    return tuple(parts), relpath


def message_bytes(text: str) -> int:
    """A message's size as MAX_MESSAGE_BYTES counts it: its UTF-8 bytes."""
    # surrogatepass: a lone surrogate from a JSON body is counted, not an error.
    return len(text.encode("utf-8", "surrogatepass"))


def size_text(size: int) -> str:
    """A size in words ("65 kB", "1.2 MB", "1 GB"), rounded up so a size over a limit never reads as it."""
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2)):
        if size >= scale:
            return f"{math.ceil(size * 10 / scale) / 10:g} {unit}"
    return f"{math.ceil(size / 1000)} kB"


def over_limit(size: int, limit: int = MAX_MESSAGE_BYTES) -> str:
    """ "70 kB, at most 64 kB": how much too long a message or file is, for error messages."""
    return f"{size_text(size)}, at most {size_text(limit)}"

# The frame shapes a job may ask for (job.toml's ``aspect``); the local backend's vocabulary names the same.
ASPECTS = ("16:9", "9:16", "1:1")
