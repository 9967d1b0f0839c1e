"""The inbox watcher: watchdog events, start-up scan and rescans, settle detection → ready jobs.

Interface (used by ``service.py``; every method runs on the event loop's thread)::

    check_layout(inbox, outbox, state) -> None        # UserError when outbox/state lie inside the inbox
    w = InboxWatcher(inbox, settle_s=30, polling=False, poll_interval_s=30, rescan_s=300,
                     on_ready=callback, loop=None, orphan_after_s=3600)
    w = InboxWatcher.from_config(cfg, on_ready)
    await w.start()      # observer first, then the start-up scan (jobs already there are picked up)
    w.rescan()           # full scan: catches what events missed (queue overflow, brand-new folders)
    w.pending()          # [{"name", "path", "reason"}]: reason "settling" | "busy: x.part" | "no prompt.txt"
    w.orphans()          # folders holding media but no prompt.txt for orphan_after_s (logged once each)
    w.skipped_links()    # {name: reason}: symlinked job folders / NAME.txt in the inbox (logged once each)
    await w.stop()
    w.scans, w.events    # counters: readiness checks (one fingerprint each) and file-system events seen

``on_ready(path)`` gets the job folder or ``NAME.txt`` inside the inbox, called once per job
on the loop thread; it is called again only for a new folder of the same name after the
first one left the inbox (was claimed). It must not block: claim in a task or a thread.

Readiness: the prompt exists, no busy temp file remains, and nothing changed for
``settle_s``. Events only stamp a job's ``last_event`` and arm at most one timer per job,
so a storm of hundreds of events costs one check once it is over. A check scans the job
once (its fingerprint) and says "ready" when either
  - the fingerprint equals the one taken at least ``settle_s`` earlier (two samples; works
    everywhere, polling and missed events included), or
  - with inotify only: no event for ``settle_s`` and every file and folder mtime is at least
    ``settle_s`` old. Writes move a file's mtime and adding, removing or renaming an entry
    moves its folder's, so the tree cannot have changed in the window; this saves a second
    window. Polling mode never takes this path: a network share's clock may disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from nemowatch.daemon.jobscan import (
    Fingerprint,
    JobScan,
    inbox_entries,
    is_candidate_name,
    is_ignored,
    job_name,
    scan_job,
    skipped_link_line,
)
from nemowatch.errors import UserError

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

    from nemowatch.config import Config

ORPHAN_AFTER_S = 3600.0

# Reading a folder raises "opened"/"closed_no_write": listening to those would make every scan re-arm itself.
_CHANGE_EVENTS = frozenset({"created", "deleted", "modified", "moved", "closed", "attrib"})


def check_layout(inbox: Path, outbox: Path, state: Path) -> None:
    """Refuse an outbox or state folder inside the inbox: the daemon would process its own output."""
    root = inbox.expanduser().resolve()
    for label, key, folder in (("outbox", "paths.outbox", outbox), ("state folder", "paths.state", state)):
        where = folder.expanduser().resolve()
        if where == root or where.is_relative_to(root):
            raise UserError(
                f"the {label} {where} lies inside the inbox {root}; it would process its own output",
                f"move it outside the inbox ({key} in the config)",
                code="layout",
            )


@dataclass
class _Job:
    """What the watcher knows about one inbox entry (keyed by its entry name, e.g. ``shoot`` or ``idea.txt``)."""

    path: Path
    last_event: float = float("-inf")
    timer: asyncio.TimerHandle | None = None
    checking: bool = False
    fingerprint: Fingerprint | None = None
    fingerprint_at: float = 0.0
    reason: str = "settling"
    has_media: bool = False
    newest_mtime_ns: int = 0
    orphan_since: float | None = None
    orphan_logged: bool = False
    reported: bool = False
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) when reported: a re-dropped folder differs
    scan: JobScan | None = field(default=None, repr=False)


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: maps each event to its top-level inbox entry and hands it to the loop."""

    def __init__(self, inbox: str, loop: asyncio.AbstractEventLoop, sink: Callable[[str], None]) -> None:
        self._prefix = inbox.rstrip(os.sep) + os.sep
        self._loop = loop
        self._sink = sink

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGE_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            # watchdog adds one for the parent of every file event: the file's own event already counts,
            # and for ignored litter (.DS_Store rewritten) the parent's must not count either.
            return
        for raw in (event.src_path, event.dest_path):
            path = os.fsdecode(raw) if raw else ""
            if not path.startswith(self._prefix):
                continue  # the inbox itself, or a move's far end outside it
            parts = path[len(self._prefix) :].split(os.sep)
            # Litter (.DS_Store, .dropbox.cache/…) churning must not keep postponing a job's check.
            if any(is_ignored(part) for part in parts):
                continue
            with contextlib.suppress(RuntimeError):  # the loop closed while the observer wound down
                self._loop.call_soon_threadsafe(self._sink, parts[0])


class InboxWatcher:
    """Watches the inbox and calls ``on_ready(path)`` once per job that has settled."""

    def __init__(
        self,
        inbox: Path,
        *,
        settle_s: float,
        polling: bool = False,
        poll_interval_s: float = 30.0,
        rescan_s: float = 300.0,
        on_ready: Callable[[Path], None],
        loop: asyncio.AbstractEventLoop | None = None,
        orphan_after_s: float = ORPHAN_AFTER_S,
    ) -> None:
        self.inbox = Path(os.path.abspath(inbox.expanduser()))
        self.settle_s = settle_s
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.rescan_s = rescan_s
        self.orphan_after_s = orphan_after_s
        self.scans = 0
        self.events = 0
        self._on_ready = on_ready
        self._loop = loop
        self._jobs: dict[str, _Job] = {}
        self._observer: BaseObserver | None = None
        self._rescanner: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._links: dict[str, str] = {}  # symlinks skipped in the inbox → why (each warned about once)

    @classmethod
    def from_config(
        cls, cfg: Config, on_ready: Callable[[Path], None], *, orphan_after_s: float = ORPHAN_AFTER_S
    ) -> InboxWatcher:
        """A watcher set up from the ``[paths]`` and ``[watch]`` config keys."""
        return cls(
            cfg.inbox,
            settle_s=cfg.settle_s,
            polling=cfg.polling,
            poll_interval_s=cfg.poll_interval_s,
            rescan_s=cfg.rescan_s,
            on_ready=on_ready,
            orphan_after_s=orphan_after_s,
        )

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the observer, then scan: a job dropped between the two is seen by one of them."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if not self.inbox.is_dir():
            raise UserError(
                f"the inbox {self.inbox} does not exist or is not a folder",
                "create it, or run `nemowatch init`",
                code="inbox_missing",
            )
        self._observer = await asyncio.to_thread(self._start_observer)
        mode = f"polling every {self.poll_interval_s:g} s" if self.polling else "inotify"
        logger.info(f"watching {self.inbox} ({mode}, settle {self.settle_s:g} s)")
        self.rescan()
        self._rescanner = self._loop.create_task(self._rescan_forever())

    def _start_observer(self) -> BaseObserver:
        """Schedule a recursive watch; inotify's limits end in a sentence saying which knob to turn."""
        assert self._loop is not None
        observer: BaseObserver = PollingObserver(timeout=self.poll_interval_s) if self.polling else Observer()
        handler = _Handler(str(self.inbox), self._loop, self._on_event)
        try:
            observer.schedule(handler, str(self.inbox), recursive=True)
            observer.start()
        except OSError as exc:
            with contextlib.suppress(Exception):
                observer.stop()
            if exc.errno in (errno.ENOSPC, errno.EMFILE):
                raise UserError(
                    f"cannot watch {self.inbox}: the inotify limit is reached ({exc.strerror})",
                    "raise fs.inotify.max_user_watches / max_user_instances with sysctl, or set watch.polling = true",
                    code="inotify_limit",
                ) from None
            raise UserError(
                f"cannot watch {self.inbox}: {exc.strerror or exc}",
                "check that the folder exists and is readable, or set watch.polling = true",
                code="watch_failed",
            ) from None
        return observer

    async def stop(self) -> None:
        """Stop the observer, the rescans and every pending check."""
        if self._rescanner is not None:
            self._rescanner.cancel()
            self._rescanner = None
        for job in self._jobs.values():
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
        for task in list(self._checks):
            task.cancel()
        if self._checks:
            await asyncio.gather(*self._checks, return_exceptions=True)
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await asyncio.to_thread(observer.join, 10)

    async def _rescan_forever(self) -> None:
        while True:
            await asyncio.sleep(self.rescan_s)
            self.rescan()

    # -- events and timers ----------------------------------------------------------------------

    def _on_event(self, name: str) -> None:
        """A change somewhere under inbox/name: stamp it and make sure one check is armed."""
        self.events += 1
        if not is_candidate_name(name):
            return
        job = self._job(name)
        job.last_event = time.monotonic()
        # A handed-over job is only checked for having left (claimed), and at once: were a new folder
        # of the same name dropped within the window, it could reuse the old inode and go unnoticed.
        self._arm(job, job.last_event if job.reported else job.last_event + self.settle_s)

    def _job(self, name: str) -> _Job:
        job = self._jobs.get(name)
        if job is None:
            job = self._jobs[name] = _Job(self.inbox / name)
        return job

    def _arm(self, job: _Job, when: float) -> None:
        """At most one timer per job; a later event does not move it (the firing re-arms when needed)."""
        if job.timer is None and not job.checking and self._loop is not None:
            job.timer = self._loop.call_at(
                self._loop.time() + max(0.0, when - time.monotonic()), self._fire, job
            )

    def _fire(self, job: _Job) -> None:
        job.timer = None
        quiet_at = job.last_event + self.settle_s
        if not job.reported and time.monotonic() < quiet_at:
            self._arm(job, quiet_at)  # events arrived since the timer was armed
            return
        assert self._loop is not None
        job.checking = True
        task = self._loop.create_task(self._check(job))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    def rescan(self) -> None:
        """Look at every entry of the inbox now: new ones get a check, vanished ones are forgotten."""
        candidates, links = inbox_entries(self.inbox)
        self._note_links(links)
        present = {path.name: path for path in candidates}
        for name in list(self._jobs):
            job = self._jobs[name]
            if name not in present and not job.checking:
                self._forget(name)
        now = time.monotonic()
        for name in present:
            self._arm(self._job(name), now)
        self._log_orphans()

    def _forget(self, name: str) -> None:
        job = self._jobs.pop(name, None)
        if job is not None and job.timer is not None:
            job.timer.cancel()

    # -- the readiness check -------------------------------------------------------------------------

    async def _check(self, job: _Job) -> None:
        """Fingerprint the job once and decide: ready, wait another window, or wait for a change."""
        name = job.path.name
        started = time.monotonic()
        try:
            try:
                identity = await asyncio.to_thread(_identity, job.path)
                if identity is None:
                    self._forget(name)  # claimed, deleted, or not a job at all
                    if job.path.is_symlink():
                        self._note_links(inbox_entries(self.inbox)[1])  # say so now, not at the next rescan
                    return
                if job.reported:
                    if identity == job.identity:
                        return
                    # A new folder of the same name was dropped after the first was claimed.
                    self._jobs[name] = job = _Job(job.path, last_event=job.last_event, checking=True)
                self.scans += 1
                scan = await asyncio.to_thread(scan_job, job.path)
            except FileNotFoundError:
                self._forget(name)
                return
            except OSError as exc:
                job.reason = f"unreadable: {exc.strerror or exc}"
                logger.warning(f"cannot read job {name} in the inbox: {exc.strerror or exc}; will try again")
                job.checking = False
                self._arm(job, time.monotonic() + max(self.settle_s, 1.0))
                return
            job.checking = False  # from here on, _judge may arm the next check
            self._judge(job, scan, identity, started)
        finally:
            job.checking = False
            if job.last_event > started and self._jobs.get(name) is job:
                # Changed while we looked: look again (a handed-over job at once, see _on_event).
                self._arm(job, job.last_event + (0.0 if job.reported else self.settle_s))

    def _judge(self, job: _Job, scan: JobScan, identity: tuple[int, int], started: float) -> None:
        """Apply the readiness rules to one scan (see the module docstring)."""
        now = time.monotonic()
        job.scan = scan
        job.has_media = bool(scan.media)
        job.newest_mtime_ns = scan.newest_mtime_ns
        waiting = scan.waiting_reason
        if waiting is not None:
            job.reason = waiting
            job.fingerprint = None
            if scan.prompt is None and scan.media:
                job.orphan_since = job.orphan_since or now
                self._log_orphans()
            else:
                job.orphan_since = None
            return  # the change that ends the wait (a prompt, a rename) raises an event; rescans back it up
        job.orphan_since = None
        if job.last_event > started:
            job.reason = "settling"
            return  # the finally clause re-arms after the quiet window
        same = scan.fingerprint == job.fingerprint and now - job.fingerprint_at >= self.settle_s
        age_s = (time.time_ns() - scan.newest_mtime_ns) / 1e9
        quiet = not self.polling and now - job.last_event >= self.settle_s and age_s >= 0
        if same or (quiet and age_s >= self.settle_s):
            self._report(job, identity)
            return
        if scan.fingerprint != job.fingerprint:
            job.fingerprint, job.fingerprint_at = scan.fingerprint, now
        job.reason = "settling"
        when = job.fingerprint_at + self.settle_s
        if quiet:
            when = min(when, now + self.settle_s - age_s)  # the mtimes come of age sooner
        self._arm(job, when)

    def _report(self, job: _Job, identity: tuple[int, int]) -> None:
        job.reported = True
        job.identity = identity
        job.reason = "ready"
        scan = job.scan
        media = f"{len(scan.media)} media file(s)" if scan else ""
        logger.info(f"job {job.path.name} is ready: {media}")
        try:
            self._on_ready(job.path)
        except Exception:
            logger.exception(f"handing job {job.path.name} over failed")

    # -- reporting --------------------------------------------------------------------------------------

    def pending(self) -> list[dict[str, str]]:
        """Jobs in the inbox not yet handed over, and what each waits for (for ``nemowatch status``)."""
        rows = []
        for job in self._jobs.values():
            if job.reported or (job.scan is None and _identity(job.path) is None):
                continue  # handed over, or a stray file not yet looked at (photo.jpg beside the jobs)
            name = job.scan.name if job.scan else job_name(job.path)
            rows.append({"name": name, "path": str(job.path), "reason": job.reason})
        return sorted(rows, key=lambda row: row["name"])

    def orphans(self) -> list[Path]:
        """Folders that have held media but no prompt.txt for ``orphan_after_s``."""
        now, wall_ns = time.monotonic(), time.time_ns()
        found = []
        for job in self._jobs.values():
            if job.orphan_since is None or not job.has_media:
                continue
            # The folder may have sat there before the daemon started: its newest mtime counts too.
            age = max(now - job.orphan_since, (wall_ns - job.newest_mtime_ns) / 1e9)
            if age >= self.orphan_after_s:
                found.append(job.path)
        return sorted(found)

    def skipped_links(self) -> dict[str, str]:
        """Symlinks in the inbox that would be jobs were they not links → why they are skipped."""
        return dict(self._links)

    def _note_links(self, links: dict[str, str]) -> None:
        """Remember the inbox's skipped links (from a full listing); warn once about each new one."""
        for name in sorted(links.keys() - self._links.keys()):
            logger.warning(skipped_link_line(name, links[name]))
        self._links = links

    def _log_orphans(self) -> None:
        for path in self.orphans():
            job = self._jobs[path.name]
            if not job.orphan_logged:
                job.orphan_logged = True
                logger.warning(f"folder {path.name} has media but no prompt.txt; add one to start the job")


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a job entry, or None when it is gone or cannot be a job (a stray non-.txt file)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and path.suffix.casefold() == ".txt"):
        return st.st_dev, st.st_ino
    return None
