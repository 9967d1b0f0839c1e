"""One job, step by step, resumable from the journal.

credits → session → uploads → messages → (export check → render → poll → download) → result.

Every step is journaled before it is taken (daemon/steps.py names them all), so a
restarted daemon picks each job up where it stood. Two promises rest on that:

- a message is never sent twice: a record ``message:<i>:sending`` without ``…:sent``
  means it may have reached the backend, so the pipeline only *reads* the session
  state until it sees the message's effect — and if it never does, the job fails
  and the user decides (``nemowatch retry``). The single exception is a session the
  backend lost (1002): then the backend lost the messages too and they are replayed;
- a render is never started twice for the same step: a record ``render:<i>:submitting``
  is checked with the backend (``render_status``) before anything is submitted again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loguru import logger

from nemowatch.api import draft as drafts
from nemowatch.api.errors import (
    BackendUnreachable,
    NemoError,
    OutOfCredits,
    RateLimited,
    ServerError,
    SessionNotFound,
    TokenRejected,
)
from nemowatch.api.formats import ACCEPTED_LIST, MAX_UPLOAD_BYTES, extension
from nemowatch.api.models import RENDER_COMPLETED
from nemowatch.daemon import steps
from nemowatch.daemon.facts import stamp
from nemowatch.daemon.faults import (
    BackendHealth,
    DiskFault,
    StepRetry,
    backend_failure,
    backend_hint,
    disk_fault,
)
from nemowatch.daemon.journal import JobRecord, Journal
from nemowatch.daemon.outbox import FAILED_FILE, STATUS_FILE
from nemowatch.daemon.prompt import JobPrompt, load_job_prompt
from nemowatch.daemon.results import (
    build_result,
    measure_video,
    read_video_facts,
    video_file_name,
    video_number,
)
from nemowatch.daemon.statusfile import StatusFile
from nemowatch.errors import UserError
from nemowatch.states import JobState

if TYPE_CHECKING:
    from nemowatch.api.client import NemoClient
    from nemowatch.api.events import MessageResult
    from nemowatch.api.models import RenderStatus
    from nemowatch.config import Config
    from nemowatch.daemon.outbox import Outbox

T = TypeVar("T")
V = TypeVar("V", bound=steps.StepValue)

# A session the backend loses again and again is not worth chasing forever.
MAX_SESSION_REPLAYS = 2
# How long result.json waits for a nice-to-have fact (project link, final balance).
FACT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Waits:
    """Every wait of the pipeline between reads and tries: the production schedule by default.

    The daemon takes them as a constructor argument (``service.Parts``); tests pass shorter ones.
    """

    # After a dropped stream (docs/api.md): wait, read the state; unchanged → wait again; give up after N reads.
    recovery_first_s: float = 30
    recovery_s: float = 60
    # After a silent or recovered message: read the draft until it stops changing.
    settle_s: float = 5
    # A step's own tries, where the client took its call once (faults.StepRetry).
    retry: StepRetry = field(default_factory=StepRetry)


@dataclass(frozen=True)
class PipelineSettings:
    """Thresholds and waits of the pipeline."""

    min_credits: int = 100
    poll_interval_s: float = 30  # between render status checks
    language: str = "en"
    backend: str = "cloud"  # result.json's "backend"
    waits: Waits = Waits()
    recovery_reads: int = 5  # state reads after a dropped stream before the message counts as unconfirmed
    settle_reads: int = 2  # equal consecutive reads that count as settled
    settle_max_reads: int = 36  # three minutes at 5 s: the backend's second (BGM/title) stage
    # Passing faults (faults.py): how long a job waits them out, and how often a blocked outbox is tried.
    patience_s: float = 24 * 3600
    retry_every_s: float = 60

    @classmethod
    def from_config(cls, cfg: Config, waits: Waits | None = None) -> PipelineSettings:
        """The settings the daemon runs with (``waits``: the production schedule unless given)."""
        # The local backend runs on this machine: asking it costs nothing, so its renders are
        # checked every second instead of at the cloud's polite 30 s.
        poll = min(cfg.render_poll_interval_s, 1.0) if cfg.backend == "local" else cfg.render_poll_interval_s
        return cls(
            min_credits=cfg.min_credits,
            poll_interval_s=poll,
            language=cfg.language,
            backend=cfg.backend,
            waits=waits or Waits(),
            patience_s=cfg.patience_h * 3600,
            retry_every_s=cfg.retry_every_s,
        )


class _WaitForCredits(Exception):
    """Internal: the job must wait for credits; ``detail`` is what STATUS.txt shows."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _WaitForBackend(Exception):
    """Internal: the backend does not answer (after the quick retries); the job waits for it."""

    def __init__(self, error: NemoError) -> None:
        super().__init__(error.message)
        self.error = error


class _SessionLost(Exception):
    """Internal: the backend lost the session (1002); a new one is needed and the work replayed."""


@dataclass(frozen=True)
class JobInputs:
    """What a job sends: its messages and options, and its media as (relative path, path) in order."""

    prompt: JobPrompt
    media: list[tuple[str, Path]]
    conflicted: list[str]


def draft_hash(draft: Any) -> str:
    """A stable fingerprint of a draft, to tell whether a message changed the session."""
    canonical = json.dumps(draft, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _clip(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters, for STATUS.txt and messages quoting the backend."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _bad_files(problem: str, names: list[str], hint: str) -> UserError:
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return UserError(f"{problem}: {shown}", hint, code="bad_media")


def read_inputs(job: JobRecord) -> JobInputs:
    """The job's prompt, options and media from its files; a UserError naming any file that cannot go."""
    from nemowatch.daemon.jobscan import scan_job

    root = job.files_dir
    if not root.exists():
        raise UserError(
            f"the job's files are gone from {root}",
            "drop the job into the inbox again",
            code="files_missing",
        )
    scan = scan_job(root)
    prompt_path = scan.prompt
    if prompt_path is None and job.kind == "text":
        # A text job's NAME.txt kept in a folder of its own (the work area or inputs/).
        texts = sorted(p for p in root.glob("*.txt") if p.is_file())
        prompt_path = texts[0] if len(texts) == 1 else None
    if prompt_path is None:
        raise UserError(
            f"the job has no prompt.txt in {root}",
            "add a prompt.txt saying what the video should be",
            code="no_prompt",
        )
    prompt = load_job_prompt(prompt_path, scan.job_toml)
    if scan.escaping_symlinks:
        raise _bad_files(
            "these links point outside the job folder and are not sent",
            scan.escaping_symlinks,
            "copy the files themselves into the job folder instead of linking to them",
        )
    unsupported = [rel for rel in scan.unsupported if not (job.kind == "text" and rel.endswith(".txt"))]
    if unsupported:
        hint = f"remove them or convert them to one of: {ACCEPTED_LIST}"
        if any(extension(rel) in ("heic", "heif") for rel in unsupported):
            # The iPhone's default photo format: the one unsupported file phone users meet most.
            hint += " (iPhone photos are HEIC: share them as JPEG, or set Settings > Camera > Formats > Most Compatible)"
        raise _bad_files("these files are not media the backend accepts", unsupported, hint)
    media: list[tuple[str, Path]] = []
    empty: list[str] = []
    large: list[str] = []
    for path in scan.media:
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        if size == 0:
            empty.append(rel)
        elif size > MAX_UPLOAD_BYTES:
            large.append(rel)
        media.append((rel, path))
    if empty:
        raise _bad_files(
            "these files are empty", empty, "copy them again; the upload may have been cut short"
        )
    if large:
        limit = MAX_UPLOAD_BYTES // 1_000_000
        raise _bad_files(f"these files are over {limit} MB", large, f"compress or trim them below {limit} MB")
    return JobInputs(prompt=prompt, media=media, conflicted=list(scan.conflicted))


class Pipeline:
    """Runs jobs against one backend client, writing to one outbox, recording every step in the journal."""

    def __init__(
        self,
        journal: Journal,
        client: NemoClient,
        outbox: Outbox,
        settings: PipelineSettings,
        *,
        checkpoint: Callable[[str], None] | None = None,
        health: BackendHealth | None = None,
    ) -> None:
        self.journal = journal
        self.client = client
        self.outbox = outbox
        self.settings = settings
        # Shared with the daemon's probe: a job that meets a known outage waits without retrying.
        self.health = health or BackendHealth()
        # Called with each step key right after it is journaled (and steps.message_returned(i) after a
        # send returns): the seam tests use to simulate a crash at an exact point.
        self.checkpoint = checkpoint or (lambda key: None)

    async def run(self, job_id: int) -> JobState:
        """Take the job as far as it goes: DONE, FAILED, or a waiting state (run it again later)."""
        job = self.journal.get(job_id)
        if job.state.is_finished:
            return job.state
        return await _JobRun(self, job).execute()


class _JobRun:
    """One attempt at one job: holds the job, its logger and the session while the steps run."""

    def __init__(self, pipeline: Pipeline, job: JobRecord) -> None:
        self.p = pipeline
        self.s = pipeline.settings
        self.journal = pipeline.journal
        self.client = pipeline.client
        self.job = job
        self.log = logger.bind(job=job.name)
        self.session_id = ""
        self.task_id = ""
        self.status_file = StatusFile(pipeline.outbox, job.outbox_dir)
        # Since when the job has waited for a passing fault; progress (any new step) resets it.
        self.waiting = self.get(steps.WAITING)

    # -- journal and status ------------------------------------------------------------------

    def put(self, step: steps.Step[V], value: V, *, durable: bool = True) -> None:
        """Journal a step, then call the checkpoint hook (the crash tests kill the daemon there).

        ``durable=False`` for the record of a step already taken (the ``…ed`` records): losing it
        in a power cut is the crash between a call and its record, which resuming handles, and
        the next write-ahead record (always durable) makes it durable anyway.
        """
        self.journal.record(self.job.id, step, value, durable=durable)
        self.p.checkpoint(step.key)
        if self.waiting is not None and step != steps.WAITING:
            self.forget(steps.WAITING)
            self.waiting = None

    def get(self, step: steps.Step[V]) -> V | None:
        """The recorded value of one step, or None when it was never taken."""
        return self.journal.read(self.job.id, step)

    def forget(self, *forgotten: steps.Step[Any]) -> None:
        """Delete the records of steps that must be taken afresh."""
        self.journal.delete_steps(self.job.id, [step.key for step in forgotten])

    def set_state(self, state: JobState, detail: str = "", error: dict[str, Any] | None = None) -> None:
        """Journal the state and keep STATUS.txt in step with it (nothing is written when nothing changed)."""
        job = self.job
        if (job.state, job.detail, job.error) == (state, detail, error) and (
            job.outbox_dir / STATUS_FILE
        ).exists():
            return
        self.journal.set_state(self.job.id, state, detail, error)
        self.job = self.journal.get(self.job.id)
        # Where the daemon stops working on the job, the file says so at once; progress may lag a moment.
        self.status_file.show(self.job.status_line, now=state not in JobState.working())

    def set_detail(self, detail: str) -> None:
        if detail != self.job.detail:
            self.set_state(self.job.state, detail)

    # -- the run -----------------------------------------------------------------------------

    async def execute(self) -> JobState:
        try:
            return await self._execute()
        except Exception as exc:
            # A write that failed for a reason that passes (full, read-only, denied): wait, never fail.
            fault = disk_fault(exc, str(self.journal.path))
            if fault is None:
                raise
            return await self._wait_for_disk(fault)
        finally:
            # The latest state, also when the run is cancelled (a stop); a blocked outbox is not news.
            try:
                self.status_file.flush()
            except OSError as exc:
                self.log.debug("STATUS.txt not written: {}", exc)

    async def _execute(self) -> JobState:
        try:
            await self.work()
        except _WaitForCredits as wait:
            self.log.info("waiting for credits: {}", wait.detail)
            self.set_state(JobState.WAITING_CREDITS, wait.detail)
            return JobState.WAITING_CREDITS
        except _WaitForBackend as wait:
            return await self._wait_for_backend(wait.error)
        except TokenRejected:
            # Not this job's fault: the daemon pauses the queue; the job resumes once the token is fixed.
            raise
        except UserError as exc:
            if disk_fault(exc) is not None:
                raise  # the download could not write the video: a passing fault, see execute
            await self.finish(exc)
            return JobState.FAILED
        except Exception as exc:
            if disk_fault(exc, str(self.journal.path)) is not None:
                raise
            # A bug: the traceback goes to the daemon log only (this line is not bound to the job).
            logger.error("internal error in job {}: {}", self.job.name, traceback.format_exc())
            await self.finish(
                UserError(
                    f"internal error: {type(exc).__name__}: {_clip(str(exc), 200)}",
                    "please report it, with the daemon log",
                    code="internal",
                )
            )
            return JobState.FAILED
        return JobState.DONE

    # -- passing faults ----------------------------------------------------------------------

    def waited(self) -> steps.Waiting:
        """Since when the job waits for a passing fault (recorded now if this is the first wait)."""
        if self.waiting is None:
            self.waiting = steps.Waiting(since=stamp())
            self.put(steps.WAITING, self.waiting)
        return self.waiting

    async def _wait_for_backend(self, error: NemoError) -> JobState:
        """Wait for the backend (the daemon probes it and resumes the job), or fail once patience is over."""
        self.p.health.mark_down(error.message)
        waited = self.waited()
        if waited.outlasted(self.s.patience_s):
            failure = backend_failure(error, waited.started)
            await self.finish(UserError(failure, backend_hint(self.job.name), code=error.code))
            return JobState.FAILED
        self.log.warning("{}; the job waits and resumes by itself when the backend answers", error.message)
        self.set_state(JobState.WAITING_BACKEND, self.p.health.detail())
        return JobState.WAITING_BACKEND

    async def _wait_for_disk(self, fault: DiskFault) -> JobState:
        """Wait for a blocked outbox or state folder (tried again every ``retry_every_s``), or fail once
        patience is over. Each write here may meet the same fault: the journal is the one that must
        hold, and when it cannot either, the daemon still keeps the job waiting in memory."""
        every = self.s.retry_every_s
        self.log.warning("{}; the job waits and is tried again every {:g} s", fault, every)
        try:
            if self.waited().outlasted(self.s.patience_s):
                failure = UserError(
                    f"{fault}, and it stayed so for longer than the job's patience",
                    "free space on that disk or make the folder writable again, then run"
                    f" `nemowatch retry {self.job.name}`",
                    code="outbox_unwritable",
                )
                try:
                    await self.finish(failure)
                except Exception as exc:
                    if disk_fault(exc, str(self.journal.path)) is None:
                        raise
                    # FAILED.txt cannot be written either: the journal (and `nemowatch status`) says it.
                    self.journal.set_state(self.job.id, JobState.FAILED, _clip(str(failure), 300))
                return JobState.FAILED
            self.set_state(JobState.WAITING_OUTBOX, f"{fault}; trying again every {every:g} s")
        except Exception as exc:
            if disk_fault(exc, str(self.journal.path)) is None:
                raise
        return JobState.WAITING_OUTBOX

    async def work(self) -> None:
        """Every step of the job in order, each skipped when the journal says it is done."""
        inputs = read_inputs(self.job)
        # A download a crash interrupted left a hidden partial file: it is fetched again below.
        self.p.outbox.cleanup_partials(self.job.outbox_dir)
        run = self.get(steps.RUN)
        if run is None:
            run = steps.Run(started_at=stamp())
            self.put(steps.RUN, run, durable=False)
            self.log.info(
                "job started: {} message(s), {} media file(s), export {}",
                len(inputs.prompt.messages),
                len(inputs.media),
                inputs.prompt.options.export,
            )
        for rel in inputs.conflicted:
            self.log.warning("{} is a sync client's conflicted copy: not sent", rel)
        messages = inputs.prompt.messages
        if any(self.get(steps.SENT(i)) is None for i in range(len(messages))):
            await self.check_credits(run)
        for replay in range(MAX_SESSION_REPLAYS + 1):
            try:
                await self.session(inputs)
                await self.upload(inputs.media)
                await self.messages_and_videos(inputs)
                break
            except _SessionLost:
                if replay == MAX_SESSION_REPLAYS:
                    raise UserError(
                        "the backend lost the job's session again and again",
                        f"try again later with `nemowatch retry {self.job.name}`",
                        code="session_not_found",
                    ) from None
                self.log.warning(
                    "the backend lost session {}: starting a new one and sending the files and messages again",
                    self.session_id,
                )
                # Videos already downloaded stay; everything the backend forgot is replayed.
                lost = steps.lost_with_session(self.journal.steps(self.job.id))
                self.journal.delete_steps(self.job.id, lost)
        await self.finish()

    # -- credits -----------------------------------------------------------------------------

    async def check_credits(self, run: steps.Run) -> None:
        """Wait (not fail) when the balance is below ``min_credits``; remember the first balance seen."""
        credits = await self.call("checking credits", self.client.credits)
        if run.credits_before is None:
            self.put(steps.RUN, dataclasses.replace(run, credits_before=credits.available), durable=False)
        if credits.available < self.s.min_credits:
            raise _WaitForCredits(self.credit_detail(credits.available))

    def credit_detail(self, available: int) -> str:
        """STATUS.txt's words after "waiting for credits — "."""
        return f"{available} available, {self.s.min_credits} needed"

    async def out_of_credits(self, exc: OutOfCredits, what: str) -> _WaitForCredits:
        """The wait that follows a 2001 answer, with the balance as it is now."""
        self.log.warning("{}", exc)
        try:
            available = (await self.client.credits()).available
        except NemoError:
            return _WaitForCredits(f"not enough for {what}")
        if available < self.s.min_credits:
            return _WaitForCredits(self.credit_detail(available))
        return _WaitForCredits(f"{available} available, not enough for {what}")

    # -- calls under the retry policy ---------------------------------------------------------

    async def call(self, what: str, request: Callable[[], Awaitable[T]], *, client_retried: bool = True) -> T:
        """One backend call of a step under the retry policy (faults.py): a call the client already
        retried (an idempotent one) is not repeated here — the job waits for the backend instead; a
        repeatable step the client took once (``client_retried=False``: a session, an upload) is
        taken again after a 5xx or a 429. 1002 and 2001 go to their handlers."""
        tries = self.s.waits.retry.tries(client_retried=client_retried)
        while True:
            try:
                return await request()
            except SessionNotFound:
                raise _SessionLost() from None
            except (RateLimited, ServerError, BackendUnreachable) as exc:
                wait = tries.wait_before_next(exc, backend_down=self.p.health.down)
                if wait is None:
                    raise _WaitForBackend(exc) from None
                self.log.warning("{} failed ({}); trying again in {:g} s", what, exc, wait)
                await asyncio.sleep(wait)
            except OutOfCredits as exc:
                raise await self.out_of_credits(exc, what) from None

    async def draft(self) -> Any:
        """The session's current draft."""
        state = await self.call("reading the session", lambda: self.client.get_state(self.session_id))
        return state.draft

    # -- session and uploads -----------------------------------------------------------------

    async def session(self, inputs: JobInputs) -> None:
        """Create the job's session once; later runs reuse the journaled one."""
        found = self.get(steps.SESSION)
        if found is None:
            self.set_state(JobState.UPLOADING, "starting a session")
            language = inputs.prompt.options.language or self.s.language
            created = await self.call(
                "creating a session",
                lambda: self.client.create_session(task_name=self.job.name, language=language),
                client_retried=False,
            )
            found = steps.Session(task_id=created.task_id, session_id=created.session_id)
            self.put(steps.SESSION, found, durable=False)
            self.log.info("session {} created", created.session_id)
        self.task_id, self.session_id = found.task_id, found.session_id

    async def upload(self, media: list[tuple[str, Path]]) -> None:
        """Upload the media in natural order, skipping what the journal says is already uploaded."""
        for number, (rel, path) in enumerate(media, start=1):
            step = steps.UPLOAD(rel)
            uploaded = self.get(step)
            if uploaded is not None and uploaded.done:
                continue
            self.set_state(JobState.UPLOADING, f"{number}/{len(media)} {rel}")
            # Write-ahead: a crash mid-upload leaves {done: false}, and the file is sent again.
            self.put(step, steps.Upload(done=False))
            await self.call(
                f"uploading {rel}",
                functools.partial(self.client.upload_file, self.session_id, path),
                client_retried=False,
            )
            self.put(step, steps.Upload(done=True, bytes=path.stat().st_size), durable=False)
            self.log.info("uploaded {} ({}/{})", rel, number, len(media))

    # -- messages ----------------------------------------------------------------------------

    async def messages_and_videos(self, inputs: JobInputs) -> None:
        messages = inputs.prompt.messages
        export = inputs.prompt.options.export
        for index, text in enumerate(messages):
            await self.message(index, text, len(messages))
            if export == "each" or index == len(messages) - 1:
                await self.video(index, video_number(index, export))

    async def message(self, index: int, text: str, total: int) -> None:
        """Send message ``index`` once, or — when a record says it may have been sent — only recover."""
        if self.get(steps.SENT(index)) is not None:
            return
        self.set_state(JobState.PROMPTING, f"message {index + 1}/{total}")
        sending = self.get(steps.SENDING(index))
        if sending is not None:
            self.log.warning("message {} may have reached the backend before a restart: checking", index + 1)
            await self.recover(index, sending.draft_hash_before)
            self.put(steps.SENT(index), steps.Sent(reply="", completed=False, recovered=True), durable=False)
            return
        reply, completed = await self.send(index, text)
        self.put(steps.SENT(index), steps.Sent(reply=reply, completed=completed), durable=False)

    async def send(self, index: int, text: str) -> tuple[str, bool]:
        """The one place a message goes out; returns (reply, completed)."""
        sending = steps.SENDING(index)
        # The client never sends a message twice; the step does only when it was refused before any work.
        tries = self.s.waits.retry.tries(client_retried=False)
        while True:
            before = draft_hash(await self.draft())
            self.put(sending, steps.Sending(draft_hash_before=before))
            self.log.info("message {}: {}", index + 1, _clip(text, 200))
            try:
                result = await self.client.send_message(self.session_id, text)
            except SessionNotFound:
                raise _SessionLost() from None
            except ServerError as exc:
                # The request may have reached the backend: never send again, only look.
                self.log.warning("message {}: the connection failed ({})", index + 1, exc)
                await self.recover(index, before)
                return "", False
            except (OutOfCredits, RateLimited, BackendUnreachable) as exc:
                # Nothing was carried out: 2001 and 429 come before any work, and the client raises
                # BackendUnreachable for a message only when no connection was ever made (after its
                # own retries). The message goes out again: now (429, once), or when the job resumes.
                self.forget(sending)
                if isinstance(exc, OutOfCredits):
                    raise await self.out_of_credits(exc, f"message {index + 1}") from None
                wait = tries.wait_before_next(exc, backend_down=self.p.health.down)
                if wait is None:
                    raise _WaitForBackend(exc) from None
                self.log.warning("rate limited: sending message {} again in {:g} s", index + 1, wait)
                await asyncio.sleep(wait)
                continue
            self.p.checkpoint(steps.message_returned(index))
            return await self.heard(index, before, result)

    async def heard(self, index: int, before: str, result: MessageResult) -> tuple[str, bool]:
        """What a message's answer says: a whole reply, or a stream that must be checked against the
        session (an error frame, a dropped stream) or read until its effect settles (no text)."""
        if result.error:
            self.log.warning("message {}: the backend reported an error: {}", index + 1, result.error)
            await self.recover(index, before, reported=result.error)
            return result.text, False
        if not result.completed:
            self.log.warning("message {}: the stream dropped before the reply ended", index + 1)
            await self.recover(index, before)
            return result.text, False
        if not result.text.strip():
            self.log.info("message {}: no reply text; reading the session state", index + 1)
            await self.settle(before)
        else:
            self.log.info("reply {}: {}", index + 1, _clip(result.text, 500))
        return result.text, True

    async def recover(self, index: int, before: str, reported: str | None = None) -> None:
        """After a dropped stream, an error frame or a restart: read the state until the message's
        effect shows, never sending it again (docs/api.md's recovery schedule)."""
        s = self.s
        self.set_detail(f"message {index + 1}: waiting for the backend to confirm it")
        for read in range(s.recovery_reads):
            await asyncio.sleep(s.waits.recovery_first_s if read == 0 else s.waits.recovery_s)
            now = draft_hash(await self.draft())
            if now != before:
                self.log.info("message {}: the session changed, carrying on", index + 1)
                await self.settle(before, now)
                return
            self.log.info("message {}: no change yet ({}/{})", index + 1, read + 1, s.recovery_reads)
        what = f"the backend did not confirm message {index + 1}"
        if reported:
            what += f" (it reported: {_clip(reported, 200)})"
        raise UserError(
            what,
            f"nothing was sent twice — run `nemowatch retry {self.job.name}` to send it again",
            code="message_unconfirmed",
        )

    async def settle(self, before: str, current: str | None = None) -> None:
        """Wait until the draft has changed from ``before`` and then stopped changing."""
        s = self.s
        stable = 0
        for _ in range(s.settle_max_reads):
            await asyncio.sleep(s.waits.settle_s)
            now = draft_hash(await self.draft())
            stable = stable + 1 if now == current and now != before else 0
            current = now
            if stable >= s.settle_reads - 1 and now != before:
                return
        self.log.warning("the session's draft did not settle; carrying on with what is there")

    # -- renders and downloads ---------------------------------------------------------------

    async def video(self, index: int, number: int | None) -> None:
        """Export the draft as it stands after message ``index`` and place it in the outbox."""
        if self.get(steps.DOWNLOAD(index)) is not None:
            return
        done = self.get(steps.RENDER_DONE(index))
        if done is None:
            done = await self.render(index, number)
        await self.download(index, number, done)

    async def render(self, index: int, number: int | None) -> steps.RenderDone:
        """Submit (or resume) the render of step ``index`` and poll it to the end; one resubmit on failure."""
        while True:
            render_id = await self.resume_render(index) or await self.submit(index, number)
            status = await self.poll(render_id, number)
            if status.status == RENDER_COMPLETED:
                done = steps.RenderDone(render_id=render_id, url=status.url)
                self.put(steps.RENDER_DONE(index), done, durable=False)
                return done
            reason = status.error or "no reason given"
            if self.get(steps.RENDER_FAILED(index)) is not None:
                raise UserError(
                    f"the backend could not render {self.video_label(number)} twice ({_clip(reason, 200)})",
                    f"run `nemowatch retry {self.job.name}` to try again later",
                    code="render_failed",
                )
            self.log.warning("render {} failed ({}); submitting it once more", render_id, reason)
            self.put(steps.RENDER_FAILED(index), steps.RenderFailed(render_id=render_id, error=reason))
            self.forget(steps.SUBMITTING(index), steps.SUBMITTED(index))

    def video_label(self, number: int | None) -> str:
        return "the video" if number is None else f"video {number}"

    async def resume_render(self, index: int) -> str | None:
        """The render id a previous run started for this step, if the backend knows it."""
        submitted = self.get(steps.SUBMITTED(index))
        if submitted is not None:
            return submitted.render_id
        submitting = self.get(steps.SUBMITTING(index))
        if submitting is None:
            return None
        render_id = submitting.render_id
        try:
            await self.call("checking an earlier render", lambda: self.client.render_status(render_id))
        except (_SessionLost, NemoError) as exc:
            # Only "not found" proves the submit never landed; anything else must not lead to a second render.
            if isinstance(exc, NemoError) and exc.http_status != 404:
                raise
            self.log.info("render {} never reached the backend: submitting it now", render_id)
            return None
        self.log.info("render {} was already submitted: following it", render_id)
        self.put(steps.SUBMITTED(index), submitting, durable=False)
        return render_id

    async def submit(self, index: int, number: int | None) -> str:
        """Check the draft can be exported, then submit it (each id journaled before it is sent)."""
        self.set_state(JobState.RENDERING, "checking the timeline")
        draft = await self.draft()
        if not drafts.is_ready_for_export(draft):
            sent = self.get(steps.SENT(index))
            reply = sent.reply if sent is not None else ""
            said = f'; it replied: "{_clip(reply, 300)}"' if reply.strip() else "; it gave no reply"
            raise UserError(
                f"the backend made no timeline to export after message {index + 1}{said}",
                f"say more plainly what the video should show in prompt.txt, then run `nemowatch retry {self.job.name}`",
                code="not_ready_for_export",
            )
        timeline = drafts.timeline_summary(draft)
        self.log.info("{}", timeline)

        def before_submit(render_id: str) -> None:
            self.put(steps.SUBMITTING(index), steps.RenderRef(render_id=render_id, timeline=timeline))

        self.set_state(JobState.RENDERING, "submitting")
        try:
            render_id = await self.client.submit_render(self.session_id, draft, before_submit=before_submit)
        except SessionNotFound:
            raise _SessionLost() from None
        except OutOfCredits as exc:
            raise await self.out_of_credits(exc, f"rendering {self.video_label(number)}") from None
        except (ServerError, BackendUnreachable, RateLimited) as exc:
            # The submit may have landed: the resumed run asks render_status before submitting again.
            raise _WaitForBackend(exc) from None
        self.p.checkpoint(steps.render_returned(index))
        submitted = steps.RenderRef(render_id=render_id, timeline=timeline)
        self.put(steps.SUBMITTED(index), submitted, durable=False)
        self.log.info("render {} submitted", render_id)
        return render_id

    async def poll(self, render_id: str, number: int | None) -> RenderStatus:
        """Poll until the render completes or fails, showing its progress (a fraction, api/models.py) in STATUS.txt."""
        label = "" if number is None else f"video {number}: "
        while True:
            status = await self.call("checking the render", lambda: self.client.render_status(render_id))
            if status.finished:
                return status
            shown = status.status if status.progress is None else f"{int(status.progress * 100)}%"
            self.set_state(JobState.RENDERING, label + shown)
            await asyncio.sleep(self.s.poll_interval_s)

    async def download(self, index: int, number: int | None, done: steps.RenderDone) -> None:
        """Download the render next to the outbox, then rename it into place complete."""
        name = video_file_name(self.job.name, number)
        self.set_state(JobState.DOWNLOADING, name)
        temp = self.p.outbox.video_temp(self.job.outbox_dir, name)
        await self.call(
            f"downloading {name}",
            lambda: self.client.download_render(done.render_id, temp, url=done.url),
        )
        final = self.p.outbox.place_video(self.job.outbox_dir, temp, name)
        # The box reader takes well under a millisecond: run it here rather than pay a thread hop;
        # only a file it cannot read goes to ffmpeg, in a thread.
        facts = read_video_facts(final)
        if facts is None:
            facts = await asyncio.to_thread(measure_video, final)
        self.put(
            steps.DOWNLOAD(index),
            steps.Download(
                file=final.name,
                width=facts.width,
                height=facts.height,
                duration_s=facts.duration_s,
                bytes=facts.bytes,
            ),
            durable=False,
        )
        self.log.info(
            "video {} written ({}x{}, {:.1f} s, {:.1f} MB)",
            final.name,
            facts.width,
            facts.height,
            facts.duration_s,
            facts.bytes / 1e6,
        )

    # -- the end -----------------------------------------------------------------------------

    def move_inputs(self) -> Path | None:
        """Move the job's files to ``outbox/<job>/inputs/`` (once) and journal where they are."""
        inputs = self.job.outbox_dir / "inputs"
        if self.job.files_dir == inputs or self.job.files_dir.is_relative_to(inputs):
            return self.job.files_dir
        try:
            if self.job.files_dir.exists():
                moved = self.p.outbox.move_inputs(self.job.files_dir, self.job.outbox_dir)
            elif inputs.exists():
                moved = inputs  # moved before a crash, not yet journaled
            else:
                return None
        except OSError as exc:
            self.log.warning("could not move the job's files to {}: {}", inputs, exc)
            return None
        self.journal.set_files_dir(self.job.id, moved)
        self.job = self.journal.get(self.job.id)
        return moved

    async def finish(self, failure: UserError | None = None) -> None:
        """Move the inputs, write result.json (and FAILED.txt), then set the final state last."""
        inputs = self.move_inputs()
        error = None
        if failure is not None:
            error = {"code": failure.code, "message": failure.message, "hint": failure.hint}
        # Two independent questions to the backend: asked at once, one round trip instead of two.
        project_url, credits_after = await asyncio.gather(
            self.quietly(self.project_url()), self.quietly(self.credits_now())
        )
        result = build_result(
            self.job,
            self.journal.steps(self.job.id),
            status="failed" if failure else "done",
            backend=self.s.backend,
            project_url=project_url,
            credits_after=credits_after,
            finished_at=stamp(),
            error=error,
        )
        if failure is not None:
            self.p.outbox.write_failed(self.job.outbox_dir, failure, inputs=inputs)
        self.p.outbox.write_result(self.job.outbox_dir, result)
        self.put(steps.OUTBOX, steps.OutboxWritten(), durable=False)
        if failure is None:
            # A retried job that succeeds must not keep the FAILED.txt of its earlier attempt.
            (self.job.outbox_dir / FAILED_FILE).unlink(missing_ok=True)
            self.log.info("done: {}", ", ".join(video["file"] for video in result["videos"]))
            self.set_state(JobState.DONE)
        else:
            self.log.error("failed: {}", failure)
            self.set_state(JobState.FAILED, _clip(str(failure), 300), error=error)

    async def project_url(self) -> str | None:
        """The browser link to the project (the claim link), when there is a session."""
        if not self.session_id:
            return None
        return await self.client.project_link(self.task_id, self.session_id)

    async def credits_now(self) -> int | None:
        return (await self.client.credits()).available

    async def quietly(self, call: Awaitable[T]) -> T | None:
        """A nice-to-have fact for result.json: None when the backend cannot give it soon."""
        try:
            return await asyncio.wait_for(call, FACT_TIMEOUT_S)
        except Exception as exc:
            self.log.debug("left out of result.json: {}", exc)
            return None
