"""Media the NemoVideo API accepts: one list for the client, the inbox and the local backend."""

from __future__ import annotations

from pathlib import PurePath

VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "avi", "webm", "mkv"})
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp"})
AUDIO_EXTENSIONS = frozenset({"mp3", "wav", "m4a", "aac"})
ACCEPTED_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS | AUDIO_EXTENSIONS

# 500 MB, as the API documents it (decimal megabytes, like the cloud's limit).
MAX_UPLOAD_BYTES = 500 * 1000 * 1000

ACCEPTED_LIST = "mp4 mov avi webm mkv jpg jpeg png gif webp mp3 wav m4a aac"


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
