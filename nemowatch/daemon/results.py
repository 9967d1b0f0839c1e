"""What a job leaves for people and scripts: result.json built from its journal steps, and video facts.

Everything here is derived from the journal, so a resumed job writes the same
result as one that ran straight through.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemowatch.daemon.journal import JobRecord
from nemowatch.daemon.mp4info import read_mp4_facts
from nemowatch.daemon.steps import AllSteps, Recorded
from nemowatch.ffmpeg import header_duration, read_header
from nemowatch.fsutil import NAME_MAX, TEMP_ROOM, fit_name

_SIZE = re.compile(r"Stream #\S+.*?Video:.*?[, ](\d{2,5})x(\d{2,5})[, \[]")


@dataclass(frozen=True)
class VideoFacts:
    """What result.json says about one video: its size in pixels, length and bytes."""

    width: int
    height: int
    duration_s: float
    bytes: int


def read_video_facts(path: Path) -> VideoFacts | None:
    """The facts from the MP4's boxes alone (no process); None when they cannot be read there."""
    read = read_mp4_facts(path)
    if read is None:
        return None
    return VideoFacts(
        width=read.width, height=read.height, duration_s=read.duration_s, bytes=path.stat().st_size
    )


def measure_video(path: Path) -> VideoFacts:
    """Width, height and duration of an MP4 from its boxes, else from ``ffmpeg -i`` (0 when neither can tell)."""
    # Reading the boxes takes well under a millisecond; ffmpeg is a process per job.
    return read_video_facts(path) or _probe_with_ffmpeg(path, path.stat().st_size)


def _probe_with_ffmpeg(path: Path, size: int) -> VideoFacts:
    """The facts as ``ffmpeg -i`` prints them: for what the box reader cannot follow (fragmented MP4s)."""
    try:
        text = read_header(path)
    except (OSError, subprocess.SubprocessError):
        text = ""
    width = height = 0
    if found := _SIZE.search(text):
        width, height = int(found.group(1)), int(found.group(2))
    duration = round(header_duration(text) or 0.0, 2)
    return VideoFacts(width=width, height=height, duration_s=duration, bytes=size)


def video_number(index: int, export: str) -> int | None:
    """The number in a video's file name: ``<job>-<n>.mp4`` with export="each", none for one video."""
    return index + 1 if export == "each" else None


def video_file_name(job_name: str, number: int | None) -> str:
    """``<job>.mp4``, or ``<job>-<n>.mp4`` for one of several videos; a long name is shortened
    (``fsutil.fit_name``) so that the video's hidden download names fit the file system too."""
    suffix = ".mp4" if number is None else f"-{number}.mp4"
    return fit_name(job_name, suffix, room=NAME_MAX - TEMP_ROOM)


def build_result(
    job: JobRecord,
    steps: AllSteps,
    *,
    status: str,
    backend: str,
    project_url: str | None,
    credits_after: int | None,
    finished_at: str,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """result.json for a finished job, from its journal steps (the contract's keys, always all present)."""
    recorded = Recorded.read(steps)
    session, run = recorded.session, recorded.run
    result: dict[str, Any] = {
        "job": job.name,
        "status": status,
        "backend": backend,
        "session_id": session.session_id if session else None,
        "task_id": session.task_id if session else None,
        "videos": [video.to_json() for video in recorded.downloads],
        "timeline": recorded.submitted[-1].timeline if recorded.submitted else None,
        "messages": recorded.replies,
        "project_url": project_url,
        "credits": {"before": run.credits_before if run else None, "after": credits_after},
        "started_at": (run.started_at if run else None) or job.created_at,
        "finished_at": finished_at,
        "attempt": job.attempt,
    }
    if error is not None:
        result["error"] = {key: error.get(key, "") for key in ("code", "message", "hint")}
    return result
