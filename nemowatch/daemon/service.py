"""The daemon: watch the inbox, claim ready jobs, run at most ``max_concurrent`` pipelines, stop cleanly.

The loop, in the order :meth:`Daemon.main` runs it:

1. open the journal and the backend, start the scheduler (token, credits, housekeeping);
2. finish an intake a crash interrupted, then resume every unfinished job (they come first:
   the journal is read oldest job first);
3. watch the inbox (``run``) or scan it once (``once``); ready jobs are claimed by a single
   intake task and land in the journal as ``queued``;
4. every tick (an event, or every ``TICK_S`` for jobs another process requeued with
   ``nemowatch retry``) start pipelines for queued and unfinished jobs while slots are free;
5. SIGTERM/SIGINT: take no new job, cancel the pipelines (each step they finished is already
   in the journal — that is the checkpoint), stop the watcher, the scheduler and the backend.
   The same stop, with exit status 1, when the state folder or the journal is deleted or replaced
   under the daemon (``presence.StateGuard``, every 2 s). ``run_daemon`` holds ``lock.DaemonLock``
   throughout: one daemon per inbox and per state folder.

Passing faults (faults.py) never fail a job at once and never hold a slot: a job whose backend
does not answer waits in ``waiting_backend`` while one probe (every ``jobs.retry_every_s``, five
minutes after the first hour) asks the backend, and resumes when it answers; a job that cannot
write its outbox waits in ``waiting_outbox`` and is tried again every ``jobs.retry_every_s``.

``once`` stops taking jobs after its single scan and exits when nothing it can do is left:
0 when every job it ran is done, 1 when one failed, still waits for credits after
``ONCE_CREDIT_CHECKS`` credit checks, or still waits out a passing fault after
``jobs.once_patience_min`` (it says so plainly; `nemowatch run` would keep waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from nemowatch.api.client import NemoClient
from nemowatch.api.errors import NemoError, TokenRejected
from nemowatch.config import Config, ConfigError
from nemowatch.daemon import facts, steps
from nemowatch.daemon.backend import open_backend
from nemowatch.daemon.faults import BackendHealth, disk_fault, is_backend_fault, retry_delay
from nemowatch.daemon.inbox import InboxWatcher, Missing, check_layout
from nemowatch.daemon.intake import Intake
from nemowatch.daemon.joblogs import JobLogs
from nemowatch.daemon.jobscan import inbox_entries, scan_job, skipped_link_line
from nemowatch.daemon.journal import JobRecord, Journal, journal_path
from nemowatch.daemon.lock import DaemonLock
from nemowatch.daemon.notify import Notifier, describe_queue
from nemowatch.daemon.outbox import STATUS_FILE, Outbox
from nemowatch.daemon.pipeline import Pipeline, PipelineSettings, Waits
from nemowatch.daemon.presence import StateGuard
from nemowatch.daemon.schedule import PAUSED_TOKEN, Scheduler
from nemowatch.errors import UserError
from nemowatch.fsutil import private_dir, tighten_private
from nemowatch.logs import Outage, setup_logging
from nemowatch.states import JobState

# How often the loop looks at the journal without being woken (picks up `nemowatch retry`).
TICK_S = 2.0
# How long a stop waits for cancelled pipelines to unwind before leaving them to the journal.
STOP_GRACE_S = 5.0
# `once` with jobs waiting for credits: check this often, this many times, then give up (exit 1).
ONCE_CREDITS_EVERY_S = 10.0
ONCE_CREDIT_CHECKS = 3
# Not before the backend answers a probe: the "when" of a job waiting for the backend.
UNTIL_PROBED = float("inf")


@dataclass(frozen=True)
class Parts:
    """What a daemon is built from besides its config; ``run_daemon`` uses these production values.

    The crash and fault tests build a daemon of their own (``tests/crash_daemon.py``): a journal
    that calls their crash hook after each state change and intake record, the same hook as the
    pipeline's checkpoint (after each journal step), and shorter waits.
    """

    journal: Callable[[Path], Journal] = Journal
    checkpoint: Callable[[str], None] | None = None
    waits: Waits = field(default_factory=Waits)


class Daemon:
    """One run of the daemon (``run`` or ``once``) over one journal."""

    def __init__(self, cfg: Config, *, once: bool, parts: Parts | None = None) -> None:
        self.cfg = cfg
        self.once = once
        self.parts = parts or Parts()
        self.work_root = cfg.state / "work"
        path = journal_path(cfg.state)
        self.journal = self.parts.journal(path)
        # The state folder and journal as opened now; losing either stops the daemon (exit status 1).
        self.state_guard = StateGuard(cfg.state, path)
        self.state_lost: UserError | None = None
        self.outbox = Outbox(cfg.outbox)
        self.intake = Intake(self.journal, self.outbox, self.work_root)
        self.notifier = Notifier.from_env()
        self.job_logs = JobLogs()  # every job.log behind one sink: adding a sink per job is slow
        self.running: dict[int, asyncio.Task[None]] = {}
        self.released: set[int] = set()  # waiting_credits jobs the last credit check let go
        self.outcomes: dict[int, JobState] = {}  # what every pipeline this run started ended in
        self.paused: str | None = None
        self.held: set[int] = set()  # jobs a bug stopped: not started again before a restart
        # Jobs waiting out a passing fault: not started again before this loop time (UNTIL_PROBED:
        # before the backend answers). Kept in memory: a restart tries every waiting job at once.
        self.not_before: dict[int, float] = {}
        self.health = BackendHealth()
        self._probe: asyncio.Task[None] | None = None
        self._retakes: dict[Path, asyncio.TimerHandle] = {}  # inbox jobs a blocked disk kept out
        self._once_waiting_since: float | None = None
        self._gave_up = False  # once: left jobs waiting out a passing fault
        self._untaken = False  # once: a ready job could not be taken from the inbox (exit 1)
        # The state folder's disk refusing the daemon's own facts (heartbeat): said once, not every 30 s.
        self._state_outage = Outage(logger.warning)
        self.watcher: InboxWatcher | None = None
        self.scheduler: Scheduler | None = None
        self.pipeline: Pipeline | None = None
        self._ready: asyncio.Queue[Path] = asyncio.Queue()
        self._intake_busy = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._status = ""
        self._credit_checks_at_wait: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[str, Any] | None = None  # the last run's daemon fact

    # -- the loop ----------------------------------------------------------------------------

    async def main(self) -> int:
        """Run until stopped (``run``) or until every job is finished (``once``); the exit status."""
        loop = self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        watchdog = self.notifier.start_watchdog(loop)
        self.job_logs.start()
        self.journal.put_meta(facts.PAUSED, None)
        self._previous = self.journal.get_meta(facts.DAEMON)
        self._write_daemon_fact(started=True)
        state_guard = asyncio.create_task(self._guard_state(), name="state-guard")
        intake_task: asyncio.Task[None] | None = None
        try:
            async with open_backend(self.cfg) as client:
                self._attach(client)
                assert self.scheduler is not None
                self.scheduler.start()
                await self.scheduler.prime()
                # A crash mid-claim first, then every unfinished job, before anything new.
                await asyncio.to_thread(self.intake.recover)
                await asyncio.to_thread(self._reconcile_status)
                self._log_resumed()
                intake_task = asyncio.create_task(self._intake_loop(), name="intake")
                if self.once:
                    self._scan_once()
                else:
                    await self._start_watcher(loop)
                self.notifier.ready()
                await self._serve()
                await self._drain()
                intake_task.cancel()
        finally:
            await self._shut_down([intake_task, self._probe, state_guard], watchdog)
        return self._exit_status()

    def _attach(self, client: NemoClient) -> None:
        """The pipeline and the scheduler, over the backend just opened."""
        self.pipeline = Pipeline(
            self.journal,
            client,
            self.outbox,
            PipelineSettings.from_config(self.cfg, self.parts.waits),
            checkpoint=self.parts.checkpoint,
            health=self.health,
        )
        self.scheduler = Scheduler(
            self.journal,
            client,
            min_credits=self.cfg.min_credits,
            housekeeping=self.intake.housekeeping,
            on_credits=self._on_credits,
            on_pause=self.pause,
            heartbeat=self._heartbeat,
            credits_every_s=ONCE_CREDITS_EVERY_S if self.once else 300.0,
        )

    async def _shut_down(
        self, tasks: list[asyncio.Task[None] | None], watchdog: asyncio.Task[None] | None
    ) -> None:
        """Stop what ``main`` started (``tasks``: the intake, the probe, the state guard) and record
        the stop; the watchdog is fed until the watcher has stopped. A full state disk does not keep
        the daemon from exiting."""
        for task in tasks:
            if task is not None:
                task.cancel()
        for handle in self._retakes.values():
            handle.cancel()
        self.notifier.stopping()
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self.watcher is not None:
            await self.watcher.stop()
        if watchdog is not None:
            watchdog.cancel()
        try:
            self._write_daemon_fact(stopped=True)
        except Exception as exc:
            if disk_fault(exc, str(self.journal.path)) is None:
                raise
            logger.warning("could not record the stop in the journal: {}", exc)
        self.notifier.close()
        self.job_logs.stop()

    async def _serve(self) -> None:
        """Start pipelines while slots are free, until a stop (or, in ``once``, until nothing is left)."""
        published = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            # With every slot busy there is nothing to start: skip reading the queue (hundreds of
            # queued jobs would be read at every wake-up) unless the STATUS= line is due.
            due = now - published >= TICK_S
            if len(self.running) < self.cfg.max_concurrent or due:
                if due or self.once or not self.running:
                    jobs = self.journal.jobs(JobState.unfinished())
                else:
                    jobs = self._launchable()  # a slot came free: only the jobs that could fill it
                self._launch(jobs)
                if due or not self.running:
                    self._publish(jobs)
                    published = now
                if self.once and self._once_finished(jobs):
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=TICK_S)
            self._wake.clear()

    def _launchable(self) -> list[JobRecord]:
        """The oldest runnable jobs, enough to fill the free slots past those running or held, and
        the waiting jobs a credit check released (reading hundreds of queued jobs per finished job
        would cost more than the job)."""
        skipped = len(self.running) + len(self.held) + len(self.not_before)
        jobs = self.journal.jobs(JobState.runnable(), limit=skipped + self.cfg.max_concurrent)
        if self.released:
            jobs += [r for r in self.journal.jobs([JobState.WAITING_CREDITS]) if r.id in self.released]
            jobs.sort(key=lambda record: record.id)
        return jobs

    def _launch(self, jobs: Iterable[JobRecord]) -> None:
        """Start a pipeline for each runnable job, oldest first, up to ``max_concurrent`` at once."""
        if self.paused or self._stop.is_set():
            return
        now = time.monotonic()
        for record in jobs:
            if len(self.running) >= self.cfg.max_concurrent:
                return
            if record.id in self.running or record.id in self.held:
                continue
            if self.not_before.get(record.id, 0.0) > now:
                continue
            self.not_before.pop(record.id, None)
            if record.state is JobState.WAITING_CREDITS:
                if record.id not in self.released:
                    continue
                self.released.discard(record.id)
            self.running[record.id] = asyncio.create_task(self._run_job(record), name=f"job-{record.name}")

    async def _run_job(self, record: JobRecord) -> None:
        """One pipeline run with the job's own log sink; the outcome is kept for ``once``'s exit status."""
        assert self.pipeline is not None
        self.job_logs.open(record.name, self.outbox.job_log_path(record.outbox_dir))
        state: JobState | None = None
        try:
            if record.state is not JobState.QUEUED:
                logger.bind(job=record.name).info("resuming where the job stood: {}", record.state.human)
            state = await self.pipeline.run(record.id)
        except TokenRejected:
            self.pause(PAUSED_TOKEN)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The pipeline turns job errors into FAILED itself, so this is a bug: keep serving the
            # other jobs, and do not start this one again before a restart (no hot loop).
            self.held.add(record.id)
            logger.opt(exception=exc).error("job {} stopped: {}; it resumes on restart", record.name, exc)
            state = JobState.FAILED
        finally:
            self.job_logs.close(record.name)
            self.running.pop(record.id, None)
            self._wake.set()
        if (
            state is JobState.FAILED
            and (self.journal.get(record.id).error or {}).get("code") == "token_rejected"
        ):
            # No job can succeed with a rejected token: hold the queue instead of failing the next ones.
            self.pause(PAUSED_TOKEN)
        if state is not None and state.is_finished:
            # The files now live in outbox/<job>/inputs: the emptied claim folder can go.
            self.intake.release(record.files_dir)
        if state is not None:
            self.outcomes[record.id] = state
            if state is JobState.WAITING_CREDITS and self.scheduler is not None:
                self.scheduler.check_credits_soon()
            elif state is JobState.WAITING_BACKEND:
                self.not_before[record.id] = UNTIL_PROBED
                self._start_probe()
            elif state is JobState.WAITING_OUTBOX:
                self.not_before[record.id] = time.monotonic() + self.cfg.retry_every_s

    # -- passing faults ----------------------------------------------------------------------

    def _start_probe(self) -> None:
        """Make sure one probe task asks the backend until it answers (jobs wait for it meanwhile)."""
        if not self.health.down:
            self.health.mark_down("a job could not reach it")
        if self._probe is None or self._probe.done():
            logger.warning(
                "the backend does not answer ({}); jobs wait and resume by themselves when it does",
                self.health.error,
            )
            self._probe = asyncio.create_task(self._probe_backend(), name="backend-probe")

    async def _probe_backend(self) -> None:
        """Ask the backend every ``retry_every_s`` (five minutes after the first hour) until it answers."""
        assert self.pipeline is not None
        client = self.pipeline.client
        while self.health.down and not self._stop.is_set():
            since = self.health.down_since
            assert since is not None
            delay = retry_delay(time.time() - since.timestamp(), self.cfg.retry_every_s)
            self.health.next_try = facts.now() + timedelta(seconds=delay)
            self._show_waiting(JobState.WAITING_BACKEND, self.health.detail())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            if self._stop.is_set():
                return
            try:
                await client.credits()
            except TokenRejected:
                self.pause(PAUSED_TOKEN)
                return
            except NemoError as exc:
                if is_backend_fault(exc):
                    self.health.mark_down(exc.message)
                    logger.info("the backend still does not answer ({})", exc.message)
                    self._release_impatient()
                    continue
                # Any other answer (a refusal, an odd envelope) proves the backend is there.
            self._backend_answered()

    def _backend_answered(self) -> None:
        """The backend answered (a probe or a credit check): resume every job that waited for it."""
        if not self.health.down:
            return
        lasted = self.health.mark_up()
        waiting = [job_id for job_id, when in self.not_before.items() if when == UNTIL_PROBED]
        for job_id in waiting:
            del self.not_before[job_id]
        logger.info(
            "the backend answers again after {:.0f} s: resuming {} waiting job(s)", lasted, len(waiting)
        )
        self._wake.set()

    def _release_impatient(self) -> None:
        """Let jobs whose patience ran out run once more: the pipeline fails them with a clear message."""
        for record in self.journal.jobs([JobState.WAITING_BACKEND]):
            waited = self.journal.read(record.id, steps.WAITING)
            if waited and waited.outlasted(self.cfg.patience_h * 3600):
                self.not_before.pop(record.id, None)
                self._wake.set()

    def _show_waiting(self, state: JobState, detail: str) -> None:
        """Bring the detail of every job waiting in ``state`` up to date (STATUS.txt, `status`)."""
        for record in self.journal.jobs([state]):
            if record.id in self.running or record.detail == detail:
                continue
            try:
                self.journal.set_detail(record.id, detail)
                self.outbox.write_status(record.outbox_dir, replace(record, detail=detail).status_line)
            except Exception as exc:
                if disk_fault(exc, str(self.journal.path)) is None:
                    raise
                logger.debug("could not show {}'s wait: {}", record.name, exc)

    async def _drain(self) -> None:
        """Cancel the pipelines still running and give them a moment to unwind."""
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            if self.state_lost is None:
                logger.info("handing {} running job(s) back to the journal; a restart resumes them", len(tasks))
            else:
                # The journal went with the state folder: nothing resumes them; the error said what to do.
                logger.info("stopping {} running job(s)", len(tasks))
            await asyncio.wait(tasks, timeout=STOP_GRACE_S)

    def request_stop(self, sig: signal.Signals | None = None) -> None:
        """SIGTERM/SIGINT: stop taking jobs and leave the loop."""
        if not self._stop.is_set():
            name = sig.name if sig is not None else "stop"
            if self.state_lost is None:  # else the journal they would resume from is gone
                logger.info("{}: stopping (unfinished jobs resume on the next start)", name)
            self.notifier.stopping()
        self._stop.set()
        self._wake.set()

    async def _guard_state(self) -> None:
        """Stop, as SIGTERM would but with exit status 1, once the state folder or journal is lost."""
        self.state_lost = await self.state_guard.watch()
        logger.error(str(self.state_lost))
        self.request_stop()

    def pause(self, reason: str) -> None:
        """Hold the queue (the token was rejected): no job starts until a restart with a valid token."""
        self.paused = reason
        self.journal.put_meta(facts.PAUSED, reason)
        self.notifier.status(reason)
        if self.once:
            self.request_stop()

    # -- intake ------------------------------------------------------------------------------

    def _on_ready(self, path: Path) -> None:
        """The watcher's callback; may come from its thread, so it only hands the path to the loop."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop or self._loop is None:
            self._ready.put_nowait(path)
        else:
            self._loop.call_soon_threadsafe(self._ready.put_nowait, path)

    async def _intake_loop(self) -> None:
        """Claim ready jobs one at a time (in a thread: a copy across file systems may take a while)."""
        while True:
            path = await self._ready.get()
            if self._stop.is_set() or self._inbox_missing():
                continue  # a missing inbox: the watcher hands its jobs over again once it is back
            self._intake_busy = True
            try:
                if path in self._retakes and not os.path.lexists(path):
                    # Claimed before the fault struck, not yet in the journal: the recovery records it.
                    taken = bool(await asyncio.to_thread(self.intake.recover))
                else:
                    taken = await asyncio.to_thread(self.intake.take, path) is not None
                if self._retakes.pop(path, None) is not None and taken:
                    logger.info("{} was taken from the inbox after all", path.name)
            except UserError as exc:
                logger.error("could not take {} from the inbox: {}", path.name, exc)
                self._untaken = True
            except Exception as exc:
                fault = disk_fault(exc, str(self.journal.path))
                if fault is not None:
                    self._retake_later(path, str(fault))
                elif isinstance(exc, OSError):
                    logger.error("could not take {} from the inbox ({}); it stays there", path.name, exc)
                    self._untaken = True
                else:
                    raise
            finally:
                self._intake_busy = self._ready.qsize() > 0
                self._wake.set()

    def _retake_later(self, path: Path, fault: str) -> None:
        """A job the outbox or state disk kept in the inbox: try to take it again in ``retry_every_s``."""
        every = self.cfg.retry_every_s
        if path in self._retakes:
            logger.debug("{} still cannot be taken: {}", path.name, fault)
        elif os.path.lexists(path):
            logger.warning("{} stays in the inbox for now: {}; trying again every {:g} s", path.name, fault, every)
        else:
            logger.warning(
                "{} was taken from the inbox but not yet recorded: {}; trying again every {:g} s",
                path.name,
                fault,
                every,
            )
        assert self._loop is not None

        def again() -> None:
            self._ready.put_nowait(path)
            self._wake.set()

        self._retakes[path] = self._loop.call_later(every, again)

    def _scan_once(self) -> None:
        """``once``: every complete job now in the inbox is ready; incomplete ones are named and left."""
        pending: dict[str, str] = {}
        candidates, links = inbox_entries(self.cfg.inbox)
        for name, why in links.items():
            logger.warning(skipped_link_line(name, why))
        for path in candidates:
            try:
                scan = scan_job(path)
            except FileNotFoundError:
                continue
            reason = scan.waiting_reason
            if reason is None:
                self._intake_busy = True
                self._ready.put_nowait(path)
            elif path.is_dir():
                pending[path.name] = reason
                logger.warning("{} is not taken: {}", path.name, reason)
        self.journal.put_meta(
            facts.INBOX, {"pending": pending, "orphans": [], "links": links, "scanned_at": facts.stamp()}
        )

    async def _start_watcher(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watcher = InboxWatcher(
            self.cfg.inbox,
            settle_s=self.cfg.settle_s,
            polling=self.cfg.polling,
            poll_interval_s=self.cfg.poll_interval_s,
            rescan_s=self.cfg.rescan_s,
            on_ready=self._on_ready,
            loop=loop,
            on_presence=self._heartbeat,  # `status` shows a lost (or returned) inbox at once
        )
        await self.watcher.start()
        logger.info(
            "watching {} — drop a job folder there (photos, clips, music and a prompt.txt); it starts once"
            " nothing in it changed for {:g} s, and the video appears in {}",
            self.cfg.inbox,
            self.cfg.settle_s,
            self.cfg.outbox,
        )
        from nemowatch.samples import SAMPLE_NAME, try_it_command

        # The quickest way to see a result: the sample job that ships with nemowatch (docs/contract.md).
        logger.info(
            "to try it: {} — the video appears in {}/",
            try_it_command(self.cfg.inbox),
            self.cfg.outbox / SAMPLE_NAME,
        )

    # -- credits and status ------------------------------------------------------------------

    def _on_credits(self, available: int) -> None:
        """After each credit check: the backend answered; release the waiting jobs when the balance suffices."""
        self._backend_answered()
        if available >= self.cfg.min_credits:
            waiting = {record.id for record in self.journal.jobs([JobState.WAITING_CREDITS])}
            if waiting - self.released:
                logger.info(
                    "credits are back ({} available): resuming {} waiting job(s)", available, len(waiting)
                )
            self.released |= waiting
        self._wake.set()

    def _once_finished(self, jobs: list[JobRecord]) -> bool:
        """``once`` is done when nothing runs, nothing waits to be claimed and nothing runnable is left."""
        if self.running or self._intake_busy or not self._ready.empty():
            return False
        now = time.monotonic()
        runnable = [r for r in jobs if r.state in JobState.runnable() and r.id not in self.held]
        if not self.paused and any(self.not_before.get(r.id, 0.0) <= now for r in runnable):
            return False
        blocked = [r for r in runnable if r.id in self.not_before]
        if not self.paused and (blocked or self._retakes):
            return self._once_gives_up(blocked)
        waiting = [record for record in jobs if record.state is JobState.WAITING_CREDITS]
        if not waiting or self.paused:
            return True
        if any(record.id in self.released for record in waiting):
            return False
        assert self.scheduler is not None
        if self._credit_checks_at_wait is None:
            self._credit_checks_at_wait = self.scheduler.credit_checks
        if self.scheduler.credit_checks - self._credit_checks_at_wait < ONCE_CREDIT_CHECKS:
            return False
        names = ", ".join(record.name for record in waiting)
        logger.error(
            "{} still waiting for credits after {} checks: {}; top up your credits and run again"
            " (`nemowatch run` keeps waiting instead)",
            "a job is" if len(waiting) == 1 else f"{len(waiting)} jobs are",
            ONCE_CREDIT_CHECKS,
            names,
        )
        for record in waiting:
            self.outcomes[record.id] = JobState.WAITING_CREDITS
        return True

    def _once_gives_up(self, blocked: list[JobRecord]) -> bool:
        """``once`` with every job left waiting out a passing fault: wait up to ``once_patience_min``, then
        leave them to the next run (not failed) and exit 1, saying so."""
        patience_s = self.cfg.once_patience_min * 60
        now = time.monotonic()
        if self._once_waiting_since is None:
            self._once_waiting_since = now
            logger.warning(
                "waiting up to {:g} min for {}: {}",
                self.cfg.once_patience_min,
                "the backend or the disk to come back",
                ", ".join([r.name for r in blocked] + [path.name for path in self._retakes]),
            )
        if now - self._once_waiting_since < patience_s:
            return False
        names = [f"{r.name} ({r.status_line})" for r in blocked] + [
            f"{path.name} (still in the inbox)" for path in self._retakes
        ]
        logger.error(
            "gave up waiting after {:g} min: {}; these are kept, not failed — run `nemowatch once` again"
            " later, or `nemowatch run`, which keeps waiting",
            self.cfg.once_patience_min,
            "; ".join(names),
        )
        for record in blocked:
            self.outcomes[record.id] = record.state
        self._gave_up = True
        return True

    def _exit_status(self) -> int:
        if self.state_lost is not None:
            return 1
        if self.once and (
            self.paused
            or self._gave_up
            or self._untaken
            or any(state is not JobState.DONE for state in self.outcomes.values())
        ):
            return 1
        return 0

    def _publish(self, jobs: list[JobRecord]) -> None:
        """Tell systemd (STATUS=) what the queue holds, when that changed."""
        counts: dict[JobState, int] = {}
        for record in jobs:
            counts[record.state] = counts.get(record.state, 0) + 1
        missing = self._inbox_missing()
        trouble = f"the inbox {self.cfg.inbox} {missing.reason}; waiting for it" if missing else None
        text = self.paused or trouble or describe_queue(counts, self.cfg.inbox)
        if text != self._status:
            self._status = text
            self.notifier.status(text)

    def _heartbeat(self) -> None:
        """Every ``facts.HEARTBEAT_S``: prove liveness and record the folders the inbox is waiting on."""
        try:
            self._write_daemon_fact()
            if self.watcher is not None:
                self.journal.put_meta(facts.INBOX, self.watcher.report())
        except Exception as exc:
            fault = disk_fault(exc, str(self.journal.path))
            if fault is None:
                raise
            self._state_outage.failed(f"{fault}: `nemowatch status` shows old facts until it can be written")
            return
        self._state_outage.recovered(f"the journal {self.journal.path} can be written again")

    def _inbox_missing(self) -> Missing | None:
        """Why the watched inbox is gone, or None (also None in ``once``, which watches nothing)."""
        return self.watcher.missing if self.watcher is not None else None

    def _write_daemon_fact(self, *, started: bool = False, stopped: bool = False) -> None:
        fact = self.journal.get_meta(facts.DAEMON) or {}
        if started:
            fact = {
                "pid": os.getpid(),
                "mode": "once" if self.once else "run",
                "backend": self.cfg.backend,
                "inbox": str(self.cfg.inbox),
                "outbox": str(self.cfg.outbox),
                "started_at": facts.stamp(),
                "stopped_at": None,
            }
        fact["heartbeat_at"] = facts.stamp()
        if stopped:
            fact["stopped_at"] = facts.stamp()
        self.journal.put_meta(facts.DAEMON, fact)

    def _reconcile_status(self) -> None:
        """Rewrite STATUS.txt where a crash left it behind the journal (it is written just after a state)."""
        since = (self._previous or {}).get("started_at") or ""
        for record in self.journal.jobs():
            if record.updated_at < since or not record.outbox_dir.is_dir():
                continue
            path = record.outbox_dir / STATUS_FILE
            try:
                current = path.read_text(encoding="utf-8").strip()
            except OSError:
                current = ""
            if current != " ".join(record.status_line.split()):
                self.outbox.write_status(record.outbox_dir, record.status_line)

    def _log_resumed(self) -> None:
        unfinished = self.journal.jobs(JobState.unfinished())
        if unfinished:
            logger.info(
                "resuming {} unfinished job(s) from the journal: {}",
                len(unfinished),
                ", ".join(f"{r.name} ({r.state.human})" for r in unfinished),
            )


def _prepare(cfg: Config) -> None:
    """Refuse a layout that would feed the daemon its own output, then create the folders."""
    try:
        check_layout(cfg.inbox, cfg.outbox, cfg.state)
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    for folder in (cfg.inbox, cfg.outbox, cfg.state, cfg.state / "work"):
        try:
            if folder in (cfg.state, cfg.state / "work"):
                private_dir(folder)  # the daemon user's alone (0700); inbox and outbox stay shared
            else:
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create {folder} ({exc.strerror}); check the path and its permissions."
            ) from None


def run_daemon(cfg: Config, once: bool, parts: Parts | None = None) -> int:
    """`nemowatch run` (``once=False``) and `nemowatch once`: the exit status per the contract.

    ``parts``: what the daemon is built from (production values unless given; see :class:`Parts`).
    """
    # Absolute paths: the journal and the logs must mean the same folders from any working directory.
    cfg = cfg.with_overrides(
        inbox=cfg.inbox.resolve(), outbox=cfg.outbox.resolve(), state=cfg.state.resolve()
    )
    _prepare(cfg)
    # Before the daemon log opens (it may be one of them); an inbox or outbox inside stays shared.
    widened = tighten_private(cfg.state, skip=(cfg.inbox, cfg.outbox))
    # Before the logging: a refused second daemon must not write (or rotate) the first one's log.
    with DaemonLock.acquire(cfg.inbox, cfg.state):
        setup_logging(cfg.state)
        # Said once, when the folder itself was open: what lies in a 0700 folder was never reachable,
        # so narrowing it (files other code made with the umask's modes) is tidying, not news.
        if cfg.state in widened:
            logger.warning(
                "the state folder {} was open to other users; it is now the daemon user's alone"
                " (folders 0700, files 0600: {} entries narrowed)",
                cfg.state,
                len(widened),
            )
        return asyncio.run(_run(cfg, once, parts))


async def _run(cfg: Config, once: bool, parts: Parts | None) -> int:
    daemon = Daemon(cfg, once=once, parts=parts)
    try:
        return await daemon.main()
    finally:
        daemon.journal.close()
