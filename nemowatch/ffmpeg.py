"""The ffmpeg binary: the one shipped in the imageio-ffmpeg wheel (there is no ffprobe), for every layer."""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path

from nemowatch.errors import UserError

# `ffmpeg -i` only reads headers; a minute is generous even on a busy 2-core box.
HEADER_TIMEOUT_S = 60.0

_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")


# The renderer reads its filter graph with "-/filter_complex FILE" (ffmpeg 7.0 and newer).
MIN_MAJOR = 7
_VERSION = re.compile(r"ffmpeg version n?(\d+)\.")


def version_major(first_line: str) -> int | None:
    """The major version in ``ffmpeg -version``'s first line; None for builds from git (N-…)."""
    found = _VERSION.match(first_line)
    return int(found[1]) if found else None


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


def read_header(path: Path, timeout: float = HEADER_TIMEOUT_S) -> str:
    """What ``ffmpeg -i path`` prints about the container and its streams (the one probe every layer uses).

    Without an output file ffmpeg exits 1; that is expected, so the exit status is ignored.
    OSError and subprocess.TimeoutExpired reach the caller, which knows what a failure means.
    """
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return done.stderr.decode("utf-8", errors="replace")


def clock_seconds(hours: str, minutes: str, seconds: str) -> float:
    """Seconds in an ffmpeg ``HH:MM:SS.ss`` clock already split into its three parts."""
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def header_duration(header: str) -> float | None:
    """The container's ``Duration:`` from :func:`read_header`'s text; None when it names none."""
    found = _DURATION.search(header)
    return clock_seconds(*found.groups()) if found else None
