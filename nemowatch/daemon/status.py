"""`nemowatch status`, `credits` and `retry`: what the daemon knows, read from its journal by another process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nemowatch.config import Config
from nemowatch.daemon import facts
from nemowatch.daemon.journal import JobRecord, Journal, journal_path
from nemowatch.daemon.outbox import Outbox
from nemowatch.errors import UsageError
from nemowatch.local.settings import UNLIMITED_CREDITS
from nemowatch.logs import escape_controls
from nemowatch.states import JobState


def _open(cfg: Config, *, read_only: bool = True) -> Journal:
    """The daemon's journal; a clear UserError when the daemon never ran with this state folder."""
    return Journal(journal_path(cfg.state), read_only=read_only)


def _job_dict(record: JobRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "kind": record.kind,
        "state": record.state.value,
        "detail": record.detail,
        "outbox": str(record.outbox_dir),
        "attempt": record.attempt,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "error": record.error,
    }


def collect(cfg: Config) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready dict."""
    path = journal_path(cfg.state)
    if not path.exists():
        return {
            "daemon": {"running": False, "pid": None, "heartbeat_at": None},
            "backend": cfg.backend,
            "inbox": str(cfg.inbox),
            "outbox": str(cfg.outbox),
            "credits": None,
            "token": None,
            "paused": None,
            "inbox_missing": None,
            "waiting_folders": {},
            "orphan_folders": [],
            "skipped_links": {},
            "jobs": [],
        }
    with _open(cfg) as journal:
        daemon = journal.get_meta(facts.DAEMON) or {}
        inbox = journal.get_meta(facts.INBOX) or {}
        running = facts.daemon_running(daemon)
        return {
            "daemon": {
                "running": running,
                "pid": daemon.get("pid") if running else None,
                "mode": daemon.get("mode"),
                "started_at": daemon.get("started_at"),
                "heartbeat_at": daemon.get("heartbeat_at"),
                "stopped_at": daemon.get("stopped_at"),
            },
            "backend": daemon.get("backend") or cfg.backend,
            "inbox": daemon.get("inbox") or str(cfg.inbox),
            "outbox": daemon.get("outbox") or str(cfg.outbox),
            "credits": journal.get_meta(facts.CREDITS),
            "token": journal.get_meta(facts.TOKEN),
            # A pause only holds while the daemon that decided it runs: a restart re-checks the token.
            "paused": journal.get_meta(facts.PAUSED) if running else None,
            # {reason, since} while the running daemon's inbox is gone (it waits for it to come back).
            "inbox_missing": (inbox.get("missing") or None) if running else None,
            "waiting_folders": inbox.get("pending") or {},
            "orphan_folders": inbox.get("orphans") or [],
            "skipped_links": inbox.get("links") or {},
            "jobs": [_job_dict(record) for record in journal.jobs()],
        }


def _daemon_line(info: dict[str, Any]) -> str:
    daemon = info["daemon"]
    if daemon["running"]:
        return f"daemon:   running (pid {daemon['pid']}, {daemon.get('mode') or 'run'}, last heartbeat {daemon['heartbeat_at']})"
    if daemon.get("stopped_at"):
        return f"daemon:   stopped at {daemon['stopped_at']}"
    if daemon.get("heartbeat_at"):
        return (
            f"daemon:   not running (last heartbeat {daemon['heartbeat_at']}); start it with `nemowatch run`"
        )
    return "daemon:   never started with this state folder; start it with `nemowatch run`"


def _inbox_line(inbox: str, missing: dict[str, Any] | None) -> str:
    if not missing:
        return f"inbox:    {inbox}"
    return (
        f"inbox:    {inbox} — MISSING since {missing.get('since')}: it {missing.get('reason')};"
        " the daemon takes jobs again as soon as it is back"
    )


def unlimited_credits(available: int, backend: str) -> bool:
    """Whether a balance is the local backend's stand-in number for "no budget set"."""
    return backend == "local" and available >= UNLIMITED_CREDITS


def _credits_line(credits: dict[str, Any] | None, backend: str) -> str:
    if not credits:
        return "credits:  unknown (not checked yet)"
    available = credits["available"]
    if unlimited_credits(available, backend):
        balance = "unlimited (local backend)"
    else:
        balance = f"{available:,} available ({credits.get('frozen', 0):,} reserved)"
    return f"credits:  {balance}, checked {credits.get('checked_at')}"


def _token_line(token: dict[str, Any] | None) -> str:
    if not token:
        return "token:    unknown (not checked yet)"
    kind = "anonymous" if token.get("anonymous") else "your own"
    expires = token.get("expires_at")
    return f"token:    {kind}" + (f", expires {expires}" if expires else ", no known expiry")


# The widest the job names' column grows; longer names (up to 255 bytes) just run past it.
NAME_COLUMN = 40
# Done jobs listed by `status` without --all: after months of jobs the list would fill screens.
RECENT_DONE = 20


def render_text(info: dict[str, Any], *, show_all: bool = False) -> str:
    """The human form of :func:`collect`: every job not done, and the RECENT_DONE newest done ones
    (all of them with ``show_all``)."""
    lines = [
        _daemon_line(info),
        f"backend:  {info['backend']}",
        _inbox_line(info["inbox"], info.get("inbox_missing")),
        f"outbox:   {info['outbox']}",
        _credits_line(info["credits"], info["backend"]),
        _token_line(info["token"]),
    ]
    if info["paused"]:
        lines.append(f"queue:    {info['paused']}")
    for name, reason in sorted(info["waiting_folders"].items()):
        lines.append(f"waiting:  {name} ({reason})")
    for name in info["orphan_folders"]:
        lines.append(f"ignored:  {name} (a folder without prompt.txt)")
    for name, reason in sorted(info["skipped_links"].items()):
        lines.append(f"skipped:  {name} ({reason})")
    jobs = info["jobs"]
    lines.append(f"jobs:     {len(jobs)}" if jobs else "jobs:     none yet")
    done = [job for job in jobs if job["state"] == JobState.DONE]
    hidden = [] if show_all else done[: max(0, len(done) - RECENT_DONE)]
    if hidden:
        skip = {id(job) for job in hidden}
        jobs = [job for job in jobs if id(job) not in skip]
        lines.append(
            f"  ({len(hidden)} older done jobs not listed; `nemowatch status --all` lists every job)"
        )
    names = [escape_controls(job["name"]) for job in jobs]
    # Aligned up to NAME_COLUMN characters: a name of 255 would push every state off the screen.
    width = min(max((len(name) for name in names), default=0), NAME_COLUMN)
    for name, job in zip(names, jobs, strict=True):
        state = JobState(job["state"]).human
        detail = f" — {job['detail']}" if job["detail"] else ""
        if job["state"] == JobState.FAILED and job["error"] and not job["detail"]:
            detail = f" — {job['error'].get('message', '')}"
        lines.append(f"  {name:<{width}}  {state}{detail}")
    # Names, reasons and messages come from the inbox: a newline or an escape sequence in them is
    # shown escaped, as in the logs, so no job can forge a line or drive the terminal.
    return "\n".join(escape_controls(line) for line in lines)


def status_text(cfg: Config, as_json: bool, show_all: bool = False) -> str:
    """`nemowatch status [--json] [--all]`: daemon health, backend, credits, token, waiting folders
    and the jobs (``--json`` always has every job)."""
    info = collect(cfg)
    return json.dumps(info, indent=2, ensure_ascii=False) if as_json else render_text(info, show_all=show_all)


def credits_text(cfg: Config) -> str:
    """`nemowatch credits`: ask the backend now; an unreachable backend is one clear UserError."""
    from nemowatch.daemon.backend import open_backend

    async def ask() -> Any:
        async with open_backend(cfg) as client:
            return await client.credits()

    balance = asyncio.run(ask())
    if unlimited_credits(balance.available, cfg.backend):
        return "unlimited credits: the local backend renders on this machine (local.credits sets a budget)"
    return f"{balance.available:,} credits available ({balance.frozen:,} reserved)"


def retry_job(cfg: Config, job: str) -> str:
    """`nemowatch retry JOB`: queue a failed job again; the running daemon (or the next start) takes it."""
    if not journal_path(cfg.state).exists():
        _open(cfg).close()  # raises "no journal yet" (a usage error) instead of creating an empty one
    with _open(cfg, read_only=False) as journal:
        record = journal.find(job)
        if record is None:
            names = sorted({r.outbox_dir.name for r in journal.jobs()})
            known = ", ".join(names) if names else "none yet"
            raise UsageError(f"there is no job named {job!r}", f"the jobs are: {known}", code="unknown_job")
        if record.state is not JobState.FAILED:
            raise UsageError(
                f"job {record.name!r} is {record.state.human}, not failed",
                "only a failed job can be retried",
                code="not_failed",
            )
        journal.requeue(record.id)
        # FAILED.txt is no longer true: the job is queued again (result.json is rewritten when it ends).
        (record.outbox_dir / "FAILED.txt").unlink(missing_ok=True)
        if record.outbox_dir.is_dir():
            Outbox(record.outbox_dir.parent).write_status(record.outbox_dir, JobState.QUEUED.human)
        running = facts.daemon_running(journal.get_meta(facts.DAEMON))
    who = (
        "the running daemon picks it up within seconds" if running else "start `nemowatch run` to process it"
    )
    return escape_controls(f"{record.name} queued again (attempt {record.attempt + 1}); {who}.")
