"""The inbox watcher: watchdog events, start-up scan and rescans, settle detection → ready jobs.

Interface (used by ``service.py``; every method runs on the event loop's thread)::

    check_layout(inbox, outbox, state) -> None        # UserError when outbox/state lie inside the inbox
    w = InboxWatcher(inbox, settle_s=30, polling=False, poll_interval_s=30, rescan_s=300,
                     on_ready=callback, loop=None, orphan_after_s=3600)
    await w.start()      # observer first, then the start-up scan (jobs already there are picked up)
    w.rescan()           # full scan: catches what events missed (queue overflow, brand-new folders)
    w.pending()          # [{"name", "path", "reason"}]: reason "settling" | "busy: x.part" | "no prompt.txt"
    w.orphans()          # folders holding media but no prompt.txt for orphan_after_s (logged once each)
    w.skipped_links()    # {name: reason}: symlinked job folders / NAME.txt in the inbox (logged once each)
    w.report()           # the facts.INBOX dict `nemowatch status` reads: pending, orphans, links, missing
    w.missing            # None, or Missing(reason, since): the inbox itself is gone (see below)
    await w.stop()
    w.scans, w.events, w.rearms   # counters: readiness checks, file-system events, watches re-armed

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

Losing the inbox itself (deleted, renamed away, unmounted) leaves a watch that sees nothing and
says nothing (see ``presence.py``). A guard looks at the inbox's path every ``CHECK_S`` (at once
when watchdog reports the root deleted): when it is gone, one ERROR line says so; the jobs the
watcher knew keep their last state (``pending()``/``orphans()`` are frozen, never "every job is
gone"), no check runs and nothing is reported ready. It then looks every ``MISSING_CHECK_S``, and
when a folder is back at the path (the same one renamed back, a new inode, a new mount) the
observer is started anew and a full rescan follows, so jobs already in it are found without
waiting for the periodic rescan. Those jobs settle from the re-arm on: a sync client re-creating
its folder must not have a half-copied job taken. An inbox that was a mount point counts as
missing while only the bare mount point is there.
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
from typing import TYPE_CHECKING, Any

from loguru import logger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from nemowatch.daemon import facts
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
from nemowatch.daemon.presence import CHECK_S, Identity, Looker, Sighting, mount_point, sight
from nemowatch.errors import UserError

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver


ORPHAN_AFTER_S = 3600.0
# While the inbox is missing, look for its return this often: a stat of a missing path costs nothing,
# and jobs dropped as it comes back are found within half a second.
MISSING_CHECK_S = 0.5
# A folder is back but a watch on it failed (the inotify limit): try again after this long.
REARM_RETRY_S = 10.0

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
class Missing:
    """The inbox is gone: why, since when, and what the watcher knew about its jobs at that moment."""

    reason: str  # completes "the inbox <path> …": "is gone (…)", "is no longer mounted (…)"
    since: str  # ISO time, for `nemowatch status`
    since_mono: float
    pending: list[dict[str, str]]
    orphans: list[Path]
    rearm_error: str = ""  # why the last attempt to watch it again failed (logged once)


@dataclass
class InboxEntry:
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

    def __init__(
        self,
        inbox: str,
        loop: asyncio.AbstractEventLoop,
        sink: Callable[[str], None],
        on_root_gone: Callable[[], None],
    ) -> None:
        self._root = inbox.rstrip(os.sep)
        self._prefix = self._root + os.sep
        self._loop = loop
        self._sink = sink
        self._on_root_gone = on_root_gone

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGE_EVENTS:
            return
        if event.event_type in ("deleted", "moved") and os.fsdecode(event.src_path) == self._root:
            # The inbox itself (inotify's IN_DELETE_SELF, polling's vanished root): the guard looks now.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._on_root_gone)
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
        on_presence: Callable[[], None] | None = None,
        check_s: float = CHECK_S,
    ) -> None:
        self.inbox = Path(os.path.abspath(inbox.expanduser()))
        self.settle_s = settle_s
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.rescan_s = rescan_s
        self.orphan_after_s = orphan_after_s
        self.check_s = check_s
        self.scans = 0
        self.events = 0
        self.rearms = 0
        self.missing: Missing | None = None
        self._on_ready = on_ready
        self._on_presence = on_presence
        self._loop = loop
        self._jobs: dict[str, InboxEntry] = {}
        self._observer: BaseObserver | None = None
        self._rescanner: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._links: dict[str, str] = {}  # symlinks skipped in the inbox → why (each warned about once)
        self._guard: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._look = Looker()
        self._armed: Identity | None = None  # the folder the observer watches
        self._armed_mount = False  # it was a mount point: a bare mount point there is not the inbox
        self._last_seen: Identity | None = None
        self._seen_mount = False
        self._rearm_after = 0.0
        self._settle_from = float("-inf")  # entries first seen after a re-arm settle from the re-arm

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the observer, then scan: a job dropped between the two is seen by one of them."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        seen = await asyncio.to_thread(sight, self.inbox)
        if seen.identity is None:
            raise UserError(
                f"the inbox {self.inbox} does not exist or is not a folder",
                "create it, or run `nemowatch init`",
                code="inbox_missing",
            )
        self._armed = self._last_seen = seen.identity
        self._armed_mount = self._seen_mount = await asyncio.to_thread(mount_point, self.inbox)
        self._observer = await asyncio.to_thread(self._start_observer)
        mode = f"polling every {self.poll_interval_s:g} s" if self.polling else "inotify"
        logger.info(f"watching {self.inbox} ({mode}, settle {self.settle_s:g} s)")
        self.rescan()
        self._rescanner = self._loop.create_task(self._rescan_forever())
        self._guard = self._loop.create_task(self._guard_forever(), name="inbox-guard")

    def _start_observer(self) -> BaseObserver:
        """Schedule a recursive watch; inotify's limits end in a sentence saying which knob to turn."""
        assert self._loop is not None
        observer: BaseObserver = PollingObserver(timeout=self.poll_interval_s) if self.polling else Observer()
        handler = _Handler(str(self.inbox), self._loop, self._on_event, self._poke.set)
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
        for task in (self._rescanner, self._guard):
            if task is not None:
                task.cancel()
        self._rescanner = self._guard = None
        self._quiesce()
        if self._checks:
            await asyncio.gather(*self._checks, return_exceptions=True)
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await asyncio.to_thread(observer.join, 10)

    def _quiesce(self) -> None:
        """Cancel every armed timer and running check (their jobs stay known)."""
        for job in self._jobs.values():
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
        for task in list(self._checks):
            task.cancel()

    async def _rescan_forever(self) -> None:
        while True:
            await asyncio.sleep(self.rescan_s)
            self.rescan()

    # -- the inbox itself: lost, back, replaced ---------------------------------------------------

    async def _guard_forever(self) -> None:
        """Look at the inbox's path every ``check_s`` (every ``MISSING_CHECK_S`` while it is missing)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), MISSING_CHECK_S if self.missing else self.check_s)
            self._poke.clear()
            seen = await self._look(lambda: sight(self.inbox))
            if seen is None:
                seen = Sighting(None, "does not answer (a network share whose server is away?)")
            await self._judge_presence(seen)

    async def _judge_presence(self, seen: Sighting) -> None:
        """Apply one look: lost → wait; back, or another folder there → watch it (again)."""
        if seen.identity is not None and seen.identity != self._last_seen:
            # Something new at the path (a folder back, another one, a mount come or gone): what is it?
            self._seen_mount = await asyncio.to_thread(mount_point, self.inbox)
        self._last_seen = seen.identity
        problem = seen.problem
        if not problem and self._armed_mount and not self._seen_mount:
            problem = "is no longer mounted (only the bare mount point is left)"
        if problem:
            self._lose(problem)
        elif (
            self.missing is not None or seen.identity != self._armed
        ) and time.monotonic() >= self._rearm_after:
            await self._rearm(seen)

    def _lose(self, problem: str) -> None:
        """The inbox is gone: say so once, freeze what status shows, check and report nothing until it is back."""
        if self.missing is not None:
            return
        pending = self._pending_rows(look=False)
        self.missing = Missing(problem, facts.stamp(), time.monotonic(), pending, self.orphans())
        self._quiesce()
        logger.error(
            f"the inbox {self.inbox} {problem}; nemowatch waits for it to come back and takes no job"
            " until then (jobs already in it are found again as soon as it is back)"
        )
        self._changed()

    async def _rearm(self, seen: Sighting) -> None:
        """Watch the folder now at the path with a new observer, forget the old folder's entries, rescan."""
        old, lost = self._observer, self.missing
        starting = asyncio.ensure_future(asyncio.to_thread(self._start_observer))
        try:
            self._observer = await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(_stop_unwanted)  # stopped meanwhile: the new observer must not linger
            raise
        except UserError as exc:
            self._observer = old
            self._rearm_after = time.monotonic() + REARM_RETRY_S
            self._lose(f"cannot be watched ({exc.message})")
            assert self.missing is not None
            if self.missing.rearm_error != exc.message:
                self.missing.rearm_error = exc.message
                logger.warning(f"the inbox {self.inbox} is back but {exc}")
            return
        self._armed, self._armed_mount = seen.identity, self._seen_mount
        self.missing = None
        self.rearms += 1
        self._quiesce()
        self._jobs.clear()  # another folder (or the same one after an absence): look at everything anew
        self._settle_from = time.monotonic()
        if lost is not None:
            logger.info(
                f"the inbox {self.inbox} is back after {time.monotonic() - lost.since_mono:.0f} s;"
                " watching it again and looking for the jobs already in it"
            )
        else:
            logger.warning(
                f"the inbox {self.inbox} was replaced by another folder (deleted and created again, or"
                " mounted anew); watching the new one and looking for the jobs already in it"
            )
        if not os.access(self.inbox, os.W_OK):
            # Jobs could be seen but never claimed (moved out). Under the system unit's sandbox a folder
            # created anew on the host stays read-only inside until the service restarts.
            logger.warning(
                f"the inbox {self.inbox} is back, but nemowatch cannot write to it, so no job can be taken"
                " from it; under the systemd unit restart the service (`systemctl restart nemowatch`),"
                " else check the folder's owner and mode"
            )
        self.rescan()
        self._changed()
        if old is not None:
            old.stop()
            await asyncio.to_thread(old.join, 10)

    def _intact(self) -> bool:
        """True when the inbox is still the folder the watch is on (so an entry gone from it really left)."""
        return self.missing is None and sight(self.inbox).identity == self._armed

    def _changed(self) -> None:
        if self._on_presence is not None:
            try:
                self._on_presence()
            except Exception:
                logger.exception("reporting the inbox's presence failed")

    # -- events and timers ----------------------------------------------------------------------

    def _on_event(self, name: str) -> None:
        """A change somewhere under inbox/name: stamp it and make sure one check is armed."""
        self.events += 1
        if self.missing is not None or not is_candidate_name(name):
            return  # while missing, events come from a folder that is no longer the inbox
        job = self._job(name)
        job.last_event = time.monotonic()
        # A handed-over job is only checked for having left (claimed), and at once: were a new folder
        # of the same name dropped within the window, it could reuse the old inode and go unnoticed.
        self._arm(job, job.last_event if job.reported else job.last_event + self.settle_s)

    def _job(self, name: str) -> InboxEntry:
        job = self._jobs.get(name)
        if job is None:
            job = self._jobs[name] = InboxEntry(self.inbox / name, last_event=self._settle_from)
        return job

    def _arm(self, job: InboxEntry, when: float) -> None:
        """At most one timer per job; a later event does not move it (the firing re-arms when needed)."""
        if job.timer is None and not job.checking and self._loop is not None and self.missing is None:
            job.timer = self._loop.call_at(
                self._loop.time() + max(0.0, when - time.monotonic()), self._fire, job
            )

    def _fire(self, job: InboxEntry) -> None:
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
        if self.missing is not None:
            return
        candidates, links = inbox_entries(self.inbox)
        present = {path.name: path for path in candidates}
        if not self._intact():
            self._poke.set()  # an empty listing of a lost inbox says nothing about its jobs
            return
        self._note_links(links)
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

    async def _forget_if_left(self, name: str) -> None:
        """Forget an entry that vanished, unless the inbox itself did (then the guard takes over, now)."""
        if await asyncio.to_thread(self._intact):
            self._forget(name)
        else:
            self._poke.set()

    # -- the readiness check -------------------------------------------------------------------------

    async def _check(self, job: InboxEntry) -> None:
        """Fingerprint the job once and decide: ready, wait another window, or wait for a change."""
        name = job.path.name
        started = time.monotonic()
        try:
            try:
                identity = await asyncio.to_thread(_identity, job.path)
                if identity is None:
                    if job.path.is_symlink():
                        self._note_links(inbox_entries(self.inbox)[1])  # say so now, not at the next rescan
                    await self._forget_if_left(name)  # claimed, deleted, or not a job at all
                    return
                if job.reported:
                    if identity == job.identity:
                        return
                    # A new folder of the same name was dropped after the first was claimed.
                    self._jobs[name] = job = InboxEntry(job.path, last_event=job.last_event, checking=True)
                self.scans += 1
                scan = await asyncio.to_thread(scan_job, job.path)
            except FileNotFoundError:
                await self._forget_if_left(name)
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

    def _judge(self, job: InboxEntry, scan: JobScan, identity: tuple[int, int], started: float) -> None:
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

    def _report(self, job: InboxEntry, identity: tuple[int, int]) -> None:
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
        """Jobs in the inbox not yet handed over, and what each waits for (for ``nemowatch status``);
        while the inbox is missing, as they stood when it went."""
        if self.missing is not None:
            return list(self.missing.pending)
        return self._pending_rows(look=True)

    def _pending_rows(self, *, look: bool) -> list[dict[str, str]]:
        """The rows of :meth:`pending`; without ``look``, entries never scanned are left out instead of
        being looked at (the inbox may be gone, or hang)."""
        rows = []
        for job in self._jobs.values():
            if job.reported or (job.scan is None and (not look or _identity(job.path) is None)):
                continue  # handed over, or a stray file not yet looked at (photo.jpg beside the jobs)
            name = job.scan.name if job.scan else job_name(job.path)
            rows.append({"name": name, "path": str(job.path), "reason": job.reason})
        return sorted(rows, key=lambda row: row["name"])

    def orphans(self) -> list[Path]:
        """Folders that have held media but no prompt.txt for ``orphan_after_s`` (frozen while the inbox is missing)."""
        if self.missing is not None:
            return list(self.missing.orphans)
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

    def report(self) -> dict[str, Any]:
        """The ``facts.INBOX`` fact: what waits in the inbox, the orphans, and whether the inbox is missing."""
        missing = self.missing
        return {
            "pending": {row["name"]: row["reason"] for row in self.pending()},
            "orphans": [path.name for path in self.orphans()],
            "links": self.skipped_links(),
            "missing": {"reason": missing.reason, "since": missing.since} if missing else None,
            "scanned_at": facts.stamp(),
        }

    def _log_orphans(self) -> None:
        for path in self.orphans():
            job = self._jobs[path.name]
            if not job.orphan_logged:
                job.orphan_logged = True
                logger.warning(f"folder {path.name} has media but no prompt.txt; add one to start the job")


def _stop_unwanted(started: asyncio.Future[BaseObserver]) -> None:
    """Stop an observer whose start finished after the watcher was stopped."""
    if not started.cancelled() and started.exception() is None:
        started.result().stop()


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a job entry, or None when it is gone or cannot be a job (a stray non-.txt file)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and path.suffix.casefold() == ".txt"):
        return st.st_dev, st.st_ino
    return None
