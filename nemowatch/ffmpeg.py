"""The ffmpeg binary: the one shipped in the imageio-ffmpeg wheel (there is no ffprobe), for every layer."""

from __future__ import annotations

from functools import lru_cache

from nemowatch.errors import UserError


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg; a UserError saying how to reinstall it when it is missing."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise UserError(
            f"the ffmpeg binary is missing ({exc})",
            "reinstall it in nemowatch's environment: pip install --force-reinstall imageio-ffmpeg",
            code="ffmpeg_missing",
        ) from exc
