"""Is the folder still the one we opened? The inbox watcher and the state guard ask it every 2 s.

An inotify watch follows an inode, not a path: delete the inbox, rename it or unmount the file
system under it, and the watch goes quiet without an error (watchdog reports a deleted root, but
neither a rename nor an unmount, and its polling mode goes on watching an empty mount point). A
journal whose folder was deleted keeps accepting writes into the void. So the daemon looks at the
paths themselves: one ``stat`` every ``CHECK_S``, compared by (st_dev, st_ino) with what it armed
on. That catches all three cases, costs microseconds, and needs no privilege::

    seen = sight(path)                 # Sighting(identity, problem); blocking, one stat
    mount_point(path) -> bool          # a file system mounted right there (bind mounts too)
    look = Looker()                    # runs a blocking look in a daemon thread, with a time limit
    seen = await look(lambda: sight(path))   # None: no answer within LOOK_TIMEOUT_S (a hung share)
    guard = StateGuard(state_dir, journal_file)   # records the identities now
    problem = await guard.watch()      # returns (a UserError) once the folder or journal is lost
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nemowatch.errors import UserError

T = TypeVar("T")
Identity = tuple[int, int]

# How often the inbox and the state folder are looked at: an os.stat each, far below 0.1 % of a core.
CHECK_S = 2.0
# A stat that takes longer than this means the file system does not answer (a hard NFS mount whose
# server went away); the look is abandoned in its thread and the folder counted as missing.
LOOK_TIMEOUT_S = 10.0
MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Sighting:
    """What one look at a path found: the folder's identity, or in words why there is none."""

    identity: Identity | None  # (st_dev, st_ino); None when no usable folder is there
    problem: str = ""  # "is gone (…)", "is no longer a folder", "cannot be read (Permission denied)"


def sight(path: Path, *, folder: bool = True) -> Sighting:
    """One ``stat`` of ``path``: its identity, or why it is not there (a file where a folder was counts)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return Sighting(None, "is gone (deleted, renamed, or the disk under it unmounted)")
    except OSError as exc:
        return Sighting(None, f"cannot be read ({exc.strerror or exc})")
    if folder and not stat.S_ISDIR(st.st_mode):
        return Sighting(None, "is no longer a folder")
    return Sighting((st.st_dev, st.st_ino))


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def mount_point(path: Path) -> bool:
    """True when a file system (a bind mount included) is mounted right at ``path``.

    Read from ``/proc/self/mountinfo``: a bind mount of a folder of the same file system shares its
    parent's st_dev, so comparing devices alone would miss it. Read only when a folder is armed or
    its identity changed, never on the 2-second look. Without /proc: the device comparison.
    """
    target = os.path.abspath(path)
    try:
        text = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        try:
            return os.path.ismount(target)
        except OSError:
            return False
    return any(
        len(fields) > 4 and _unescape(fields[4]) == target
        for fields in (line.split(" ") for line in text.splitlines())
    )


class Looker:
    """Runs blocking looks in a daemon thread of their own, one at a time, each within a time limit.

    Not on the event loop: a stat on a hung network share would stop the loop until systemd's
    watchdog killed the daemon. Not in asyncio's executor either: ``asyncio.run`` waits for those
    threads at exit, so one hung stat would keep a stopped daemon from ever exiting. A daemon thread
    can be left behind; while one hangs, the next look waits for that same call instead of piling up
    another.
    """

    def __init__(self, timeout_s: float = LOOK_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._pending: asyncio.Future[object] | None = None

    async def __call__(self, func: Callable[[], T]) -> T | None:
        """``func()``'s result, or None when it gave no answer within ``timeout_s`` (it is still awaited next time)."""
        if self._pending is None:
            self._pending = self._start(func)
        done, _ = await asyncio.wait({self._pending}, timeout=self.timeout_s)
        if not done:
            return None
        future, self._pending = self._pending, None
        result: T = future.result()  # type: ignore[assignment]  # the func passed when it started
        return result

    @staticmethod
    def _start(func: Callable[[], object]) -> asyncio.Future[object]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()

        def settle(value: object, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        def run() -> None:
            value: object = None
            error: BaseException | None = None
            try:
                value = func()
            except BaseException as exc:  # handed to the awaiting task, not lost in the thread
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed while we looked
                loop.call_soon_threadsafe(settle, value, error)

        threading.Thread(target=run, name="nemowatch-look", daemon=True).start()
        return future


class StateGuard:
    """Notices the state folder or its journal being deleted or replaced under the running daemon.

    SQLite goes on writing into a deleted journal without an error, and the single-daemon lock file
    goes with the folder: a daemon that ran on would record its jobs nowhere, and report "never
    started" to ``nemowatch status``. The daemon stops instead, with a sentence saying why.
    """

    def __init__(self, state: Path, journal: Path, *, every_s: float = CHECK_S) -> None:
        self.state = state
        self.journal = journal
        self.every_s = every_s
        self._look = Looker()
        self.expected = self._identities()

    def _identities(self) -> tuple[Identity | None, Identity | None]:
        return sight(self.state).identity, sight(self.journal, folder=False).identity

    def problem(self, seen: tuple[Identity | None, Identity | None]) -> UserError | None:
        """What was lost, as one sentence with what to do; None while both are the ones we opened."""
        folder, journal = seen
        hint = (
            "nemowatch stops; start it again (systemd restarts it by itself) to begin a new journal"
            " there, and drop the jobs that were in progress into the inbox again"
        )
        if folder != self.expected[0]:
            what = "deleted" if folder is None else "replaced"
            return UserError(
                f"the state folder {self.state} was {what} while nemowatch ran, and with it the journal"
                " and the single-daemon lock",
                hint,
                code="state_lost",
            )
        if journal != self.expected[1]:
            what = "deleted" if journal is None else "replaced"
            return UserError(
                f"the journal {self.journal} was {what} while nemowatch ran", hint, code="state_lost"
            )
        return None

    async def watch(self) -> UserError:
        """Look every ``every_s`` until something was lost; then return what (a look without answer is skipped)."""
        while True:
            await asyncio.sleep(self.every_s)
            seen = await self._look(self._identities)
            if seen is not None and (lost := self.problem(seen)) is not None:
                return lost
