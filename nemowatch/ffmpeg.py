"""The ffmpeg binary: the one shipped in the imageio-ffmpeg wheel (there is no ffprobe), for every layer.

Every ffmpeg nemowatch starts goes through :func:`die_with_parent`, so that none outlives the
process that started it, not even when that process is SIGKILLed.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
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


# prctl(2): PR_SET_PDEATHSIG asks the kernel to send a signal when the creator of this process dies.
_PR_SET_PDEATHSIG = 1
_Prctl = Callable[[int, int, int, int, int], int]


def _load_prctl() -> _Prctl | None:
    """libc's prctl, or None off Linux (nothing there kills a child with its parent)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).prctl  # no use_errno: nothing reads it, and it costs the child work
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    function.restype = ctypes.c_int
    return function


# Resolved once, at import: looking a symbol up in the forked child could take the dynamic
# loader's lock, which another thread of the daemon may have held at the moment of the fork.
_PRCTL = _load_prctl()


def die_with_parent(parent: int | None = None) -> Callable[[], None] | None:
    """The ``preexec_fn`` every ffmpeg is started with: the child gets SIGKILL when its parent dies.

    Why: after a SIGKILL of the daemon nothing can stop its renders, and an orphaned ffmpeg
    would keep a core and write its ``.part`` file for minutes. The kernel does it instead.

    The rules this relies on (see prctl(2) and subprocess's warning about ``preexec_fn``):

    - The signal fires when the *thread* that forked the child ends, not only the process. So
      the thread that starts an ffmpeg must wait for it to end: every caller does (``subprocess.run``,
      and ``render.run_ffmpeg``, which kills and reaps its ffmpeg before it returns), and render
      threads are pool workers that live on between renders.
    - The parent may die between the fork and the prctl call; the child then already has
      another parent and no signal will come, so it compares ``getppid()`` with ``parent``
      (this process's pid, read now, before the fork) and kills itself.
    - In a threaded program the child may run only async-signal-safe work before exec: the
      function below makes one foreign call (resolved at import) and a system call or three
      (getppid; getpid and kill in the race), every name bound beforehand; no import, no
      lock, no logging.

    ``parent`` is for tests (a pid that is not the parent). None where prctl does not exist.
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    expected = os.getpid() if parent is None else parent
    sigkill = int(signal.SIGKILL)
    getppid, getpid, kill = os.getppid, os.getpid, os.kill

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if getppid() != expected:  # the parent died before the prctl: nobody will send the signal
            kill(getpid(), sigkill)

    return in_child


def run_to_end(args: Sequence[str], timeout: float = HEADER_TIMEOUT_S) -> str:
    """ffmpeg's stderr after ``ffmpeg ARGS`` has finished; the exit status is the caller's to read from it.

    For the short runs (probes) that wait for their ffmpeg in the calling thread. OSError and
    subprocess.TimeoutExpired (the process is killed first) reach the caller.
    """
    done = subprocess.run(
        [ffmpeg_exe(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
        preexec_fn=die_with_parent(),  # see die_with_parent: why preexec_fn is safe here
    )
    return done.stderr.decode("utf-8", errors="replace")


def read_header(path: Path, timeout: float = HEADER_TIMEOUT_S) -> str:
    """What ``ffmpeg -i path`` prints about the container and its streams (the one probe every layer uses).

    Without an output file ffmpeg exits 1; that is expected, so the exit status is ignored.
    OSError and subprocess.TimeoutExpired reach the caller, which knows what a failure means.
    """
    return run_to_end(["-hide_banner", "-nostdin", "-i", str(path)], timeout)


def clock_seconds(hours: str, minutes: str, seconds: str) -> float:
    """Seconds in an ffmpeg ``HH:MM:SS.ss`` clock already split into its three parts."""
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def header_duration(header: str) -> float | None:
    """The container's ``Duration:`` from :func:`read_header`'s text; None when it names none."""
    found = _DURATION.search(header)
    return clock_seconds(*found.groups()) if found else None
