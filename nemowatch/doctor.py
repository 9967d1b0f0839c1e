"""`nemowatch doctor`: check the setup the daemon depends on and say, line by line, what to fix.

Each check prints one line: ``ok``, ``warn`` or ``FAIL``, what was found, and for
anything not ok the fix after a dash. The checks touch the real things the
daemon uses (a probe file in each folder, a real inotify watch, the ffmpeg
binary, the backend's credit call), so a pass means the daemon will work with
the same user and environment. Exit status: 0 when nothing failed (warnings
allowed), 1 otherwise; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from nemowatch.config import Config, default_config_path
from nemowatch.errors import UserError
from nemowatch.logs import setup_logging

if TYPE_CHECKING:
    from nemowatch.api.client import NemoClient

OK, WARN, FAIL = "ok", "warn", "FAIL"

MIN_FREE_BYTES = 2 * 1024**3  # a render, its inputs in the work area and the download need room
MIN_MAX_USER_WATCHES = 8192  # the old kernel default; desktops with IDEs and sync clients run out
INOTIFY_PROBE_S = 2.0
REINSTALL_FFMPEG = "reinstall it: pip install --force-reinstall imageio-ffmpeg"
PROBE_PREFIX = ".nemowatch-doctor-"  # a hidden name: the daemon ignores it even if it sees it

# File systems where inotify misses changes made by other machines (or by the host of a VM/container).
NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "virtiofs", "ceph", "glusterfs", "afs", "davfs"}
)
NETWORK_FUSE = ("fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.grpcfuse", "fuse.davfs")


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    status: str
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<4} {self.what}" + (f" — {self.fix}" if self.fix else "")


@dataclass(frozen=True)
class Mount:
    """The mount a path lives on, from /proc/self/mountinfo."""

    point: Path
    fstype: str

    @property
    def is_network(self) -> bool:
        return self.fstype in NETWORK_FS or self.fstype.startswith(NETWORK_FUSE)

    def __str__(self) -> str:
        return f"{self.fstype} at {self.point}"


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``); other bytes are raw."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


def mount_of(path: Path) -> Mount | None:
    """The mount holding ``path``: same device number, deepest mount point on its way (bind mounts)."""
    try:
        dev = os.stat(path).st_dev
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    real = path.resolve()
    best: tuple[int, Mount] | None = None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or not tail:
            continue
        major, _, minor = fields[2].partition(":")
        point = Path(_unescape(fields[4]))
        if (int(major), int(minor)) != (os.major(dev), os.minor(dev)) or not real.is_relative_to(point):
            continue
        depth = len(point.parts)
        if best is None or depth > best[0]:
            best = (depth, Mount(point, tail[0]))
    return best[1] if best else None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# -- config and folders -----------------------------------------------------------------------


def check_config(cfg: Config) -> Check:
    """Which config file is in use (the CLI already stopped with exit 2 if it did not parse)."""
    if cfg.source is None:
        return Check(
            WARN,
            f"config: no file at {default_config_path()}; running on defaults and the environment",
            "write one with `nemowatch init`, or pass --config",
        )
    return Check(OK, f"config {cfg.source} parses")


def check_owner(cfg: Config) -> Check | None:
    """Root checking another user's setup would leave root-owned files the service cannot read."""
    if os.geteuid() != 0 or not cfg.state.exists():
        return None
    owner = cfg.state.stat().st_uid
    if owner == 0:
        return None
    name = _user_name(owner)
    return Check(
        WARN,
        f"running as root, but the state folder {cfg.state} belongs to {name}: results here may differ"
        " from the service's, and files created here would be root's",
        f"run doctor as the service user: sudo -u {name} HOME={cfg.state} nemowatch doctor --config ...",
    )


def check_folder(label: str, key: str, path: Path) -> Check:
    """The folder exists and this user can create and delete a file in it; on which file system."""
    if not path.exists():
        return Check(FAIL, f"{label} {path} does not exist", f"create it (mkdir -p {path}) or fix {key}")
    if not path.is_dir():
        return Check(FAIL, f"{label} {path} is not a folder", f"point {key} at a folder")
    probe = path / f"{PROBE_PREFIX}{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as exc:
        user = _user_name(os.geteuid())
        if exc.errno == errno.EROFS:
            fix = (
                f"it is on a read-only file system (under systemd: list it in ReadWritePaths=), or fix {key}"
            )
        elif os.geteuid() == 0:
            fix = f"even root cannot write there (a special or read-only file system): choose another folder in {key}"
        else:
            fix = f"give {user} write access (chown {user} {path}), or choose another folder in {key}"
        return Check(FAIL, f"{label} {path} is not writable for {user} ({exc.strerror})", fix)
    mount = mount_of(path)
    return Check(OK, f"{label} {path} is writable" + (f" ({mount})" if mount else ""))


def check_layout(cfg: Config) -> Check:
    """Outbox and state outside the inbox (the daemon refuses to start otherwise)."""
    from nemowatch.daemon.inbox import check_layout as layout

    try:
        layout(cfg.inbox, cfg.outbox, cfg.state)
    except UserError as exc:
        return Check(FAIL, exc.message, exc.hint)
    return Check(OK, "outbox and state folder lie outside the inbox")


def check_claims(cfg: Config) -> Check | None:
    """Whether claiming a job is a rename (same file system) or a copy and delete."""
    mounts = {label: mount_of(path) for label, path in (("inbox", cfg.inbox), ("state", cfg.state))}
    inbox, state = mounts["inbox"], mounts["state"]
    if inbox is None or state is None:
        return None  # a missing folder was reported above
    if os.stat(cfg.inbox).st_dev == os.stat(cfg.state).st_dev:
        return Check(OK, "inbox and state folder share a file system: jobs are claimed by an instant rename")
    return Check(
        OK,
        f"inbox ({inbox.fstype}) and state folder ({state.fstype}) are on different file systems:"
        " each job is copied into the work area, then removed from the inbox (slower, needs room for a copy)",
    )


# -- watching ---------------------------------------------------------------------------------


def probe_inotify(folder: Path, timeout: float = INOTIFY_PROBE_S) -> bool:
    """Create a file in ``folder`` under a real inotify watch; True when its event arrives in time."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers.inotify import InotifyObserver

    probe = folder / f"{PROBE_PREFIX}inotify-{os.getpid()}"
    seen = threading.Event()

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if Path(os.fsdecode(event.src_path)).name == probe.name:
                seen.set()

    observer = InotifyObserver()
    observer.schedule(Handler(), str(folder), recursive=False)
    observer.start()
    try:
        probe.touch()
        return seen.wait(timeout)
    finally:
        observer.stop()
        observer.join(timeout=5)
        probe.unlink(missing_ok=True)


def check_watching(cfg: Config) -> Check | None:
    """inotify sees changes in the inbox, or polling is configured where it cannot."""
    if cfg.polling:
        return Check(
            OK, f"watching the inbox by polling every {cfg.poll_interval_s:g} s (watch.polling = true)"
        )
    if not cfg.inbox.is_dir():
        return None
    mount = mount_of(cfg.inbox)
    if mount is not None and mount.is_network:
        return Check(
            WARN,
            f"the inbox is on {mount}: inotify sees only files written by this machine, not by other clients",
            "set polling = true in [watch] (see config/network-share.toml)",
        )
    try:
        seen = probe_inotify(cfg.inbox)
    except OSError as exc:
        return Check(
            FAIL,
            f"cannot start an inotify watch on the inbox ({exc.strerror or exc})",
            "raise fs.inotify.max_user_instances with sysctl, or set polling = true in [watch]",
        )
    if not seen:
        return Check(
            FAIL,
            f"inotify reported nothing within {INOTIFY_PROBE_S:g} s for a file created in the inbox",
            "set polling = true in [watch]",
        )
    return Check(OK, "inotify sees new files in the inbox")


def inotify_watches_in_use(uid: int) -> int | None:
    """inotify watches held by this user's processes (/proc/PID/fdinfo), or None when unreadable."""
    total, readable = 0, False
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid:
                continue
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == "anon_inode:inotify":
                    text = (proc / "fdinfo" / fd.name).read_text()
                    total += sum(1 for line in text.splitlines() if line.startswith("inotify wd:"))
            readable = True
        except OSError:
            continue  # a process that exited, or one we may not inspect
    return total if readable else None


def _folders_under(root: Path, limit: int = 100_000) -> int:
    """How many watches a recursive watch of ``root`` takes (one per folder), counted up to ``limit``."""
    count = 0
    for _dirpath, _dirs, _files in os.walk(root):
        count += 1
        if count >= limit:
            break
    return count


def check_watch_limit(cfg: Config) -> Check | None:
    """fs.inotify.max_user_watches leaves room for a recursive watch of the inbox."""
    if cfg.polling or not cfg.inbox.is_dir():
        return None
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except (OSError, ValueError):
        return None  # not Linux, or /proc/sys hidden: nothing to compare
    used = inotify_watches_in_use(os.geteuid())
    needed = _folders_under(cfg.inbox)
    free = limit - (used or 0)
    what = f"inotify watches: {limit} allowed, {used if used is not None else 'unknown'} in use, the inbox needs {needed}"
    if limit < MIN_MAX_USER_WATCHES or free < 2 * needed:
        return Check(
            WARN,
            what,
            "raise the limit: echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/90-nemowatch.conf"
            " && sudo sysctl --system",
        )
    return Check(OK, what)


# -- ffmpeg, backend, disk --------------------------------------------------------------------


def check_ffmpeg(cfg: Config) -> Check:
    """The ffmpeg binary runs and can encode H.264 (the local backend renders with it)."""
    from nemowatch.ffmpeg import MIN_MAJOR, die_with_parent, ffmpeg_exe, version_major

    needed = cfg.backend == "local"
    missing = FAIL if needed else WARN
    try:
        exe = ffmpeg_exe()
        version, encoders = (
            subprocess.run(
                [exe, "-hide_banner", what],
                capture_output=True,
                text=True,
                timeout=30,
                preexec_fn=die_with_parent(),
            )
            for what in ("-version", "-encoders")
        )
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        purpose = "the local backend renders with it" if needed else "result.json measures videos with it"
        return Check(
            missing,
            f"ffmpeg does not run ({exc}); {purpose}",
            REINSTALL_FFMPEG,
        )
    first = (version.stdout.splitlines() or ["ffmpeg"])[0]
    if version.returncode != 0:
        return Check(
            missing,
            f"ffmpeg at {exe} exits with status {version.returncode}",
            REINSTALL_FFMPEG,
        )
    major = version_major(first)
    if needed and major is not None and major < MIN_MAJOR:
        return Check(
            FAIL,
            f"{first.split(' Copyright')[0]} is too old for the local renderer (it needs ffmpeg {MIN_MAJOR} or newer)",
            "pip install -U 'imageio-ffmpeg>=0.6' in nemowatch's environment, and unset "
            "IMAGEIO_FFMPEG_EXE if it points at an older ffmpeg",
        )
    if " libx264 " not in encoders.stdout and needed:
        return Check(
            FAIL,
            f"{first}: no libx264 encoder",
            "install an imageio-ffmpeg build with libx264 (pip install -U imageio-ffmpeg)",
        )
    return Check(OK, f"{first.split(' Copyright')[0]} runs" + (" with libx264" if needed else ""))


@contextlib.asynccontextmanager
async def _client(cfg: Config) -> AsyncIterator[NemoClient]:
    """The daemon's backend; for the cloud, with few retries: doctor reports, it does not wait out outages."""
    from nemowatch.daemon.backend import open_backend

    if cfg.backend == "local":
        async with open_backend(cfg) as client:
            yield client
        return
    from nemowatch.api.client import NemoClient
    from nemowatch.api.settings import ClientSettings

    settings = dataclasses.replace(ClientSettings.from_config(cfg), retry_attempts=2, request_timeout_s=15)
    async with NemoClient(settings) as client:
        yield client


def _expiry(expires_at: datetime | None, anonymous: bool) -> str:
    if expires_at is None:
        return "no expiry given"
    days = (expires_at - datetime.now(UTC)).total_seconds() / 86400
    renewal = "; renewed automatically" if anonymous else ""
    return f"expires {expires_at:%Y-%m-%d %H:%M} UTC, in {days:.1f} days{renewal}"


async def _backend_checks(cfg: Config) -> list[Check]:
    """Backend reachable, token accepted (and when it expires), credits against jobs.min_credits."""
    from nemowatch.api.errors import BackendUnreachable, TokenRejected

    where = (
        "the local backend (ffmpeg on this machine)"
        if cfg.backend == "local"
        else f"the cloud at {cfg.base_url}"
    )
    checks: list[Check] = []
    try:
        async with _client(cfg) as client:
            info = await client.token_info()
            credits = await client.credits()
    except TokenRejected as exc:
        return [
            Check(
                FAIL,
                f"token: {exc.message}",
                exc.hint or "set NEMO_TOKEN, api.token_file or the nemo-token credential to a valid token",
            )
        ]
    except BackendUnreachable as exc:
        return [
            Check(
                FAIL,
                f"{where} is unreachable: {exc.message}",
                "check the network and api.base_url (env NEMO_API_URL)",
            )
        ]
    except UserError as exc:
        return [Check(FAIL, f"{where}: {exc.message}", exc.hint or "see the message")]
    checks.append(Check(OK, f"{where} answers"))
    checks.append(Check(OK, f"token ({info.source}) accepted, {_expiry(info.expires_at, info.anonymous)}"))
    from nemowatch.daemon.status import unlimited_credits

    what = f"credits: {credits.available} available (jobs.min_credits = {cfg.min_credits})"
    if unlimited_credits(credits.available, cfg.backend):
        what = "credits: unlimited (local backend)"
    if credits.available < cfg.min_credits:
        checks.append(Check(WARN, what, f"new jobs wait for credits: top up at {cfg.web_url}"))
    else:
        checks.append(Check(OK, what))
    return checks


def check_backend(cfg: Config) -> list[Check]:
    return asyncio.run(_backend_checks(cfg))


def check_disk(cfg: Config) -> list[Check]:
    """Free space where videos are written and where jobs are worked on."""
    checks: list[Check] = []
    seen: dict[int, list[str]] = {}
    for label, path in (("outbox", cfg.outbox), ("state folder", cfg.state)):
        if path.is_dir():
            seen.setdefault(os.stat(path).st_dev, []).append(label)
    for labels in seen.values():
        path = cfg.outbox if "outbox" in labels else cfg.state
        free = shutil.disk_usage(path).free
        what = f"{free / 1024**3:.1f} GB free for the {' and '.join(labels)} ({path})"
        if free < MIN_FREE_BYTES:
            checks.append(Check(WARN, what, "free some space: renders and their inputs need at least 2 GB"))
        else:
            checks.append(Check(OK, what))
    return checks


# A local render's ffmpeg at 1080p: about 0.5 GB plus 80 MB a photo (bench/render_memory.py).
RENDER_BASE_BYTES = 500 * 1024**2
RENDER_PHOTO_BYTES = 80 * 1024**2
SIZING_PHOTOS = 20  # the job size the memory check plans for


def available_memory() -> int | None:
    """Bytes this process could still use: MemAvailable, or less under a cgroup limit (systemd MemoryMax)."""
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE)
    if found is None:
        return None
    available = int(found.group(1)) * 1024
    try:  # cgroup v2: "0::/system.slice/nemowatch.service"
        group = Path("/proc/self/cgroup").read_text(encoding="ascii").strip().partition("::")[2]
        folder = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (folder / "memory.max").read_text(encoding="ascii").strip()
        if limit != "max":
            used = int((folder / "memory.current").read_text(encoding="ascii"))
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def memory_check(available: int | None, renders: int) -> Check:
    """Whether ``renders`` local renders of a SIZING_PHOTOS-photo job fit in ``available`` bytes."""
    each = RENDER_BASE_BYTES + SIZING_PHOTOS * RENDER_PHOTO_BYTES
    if available is None:
        return Check(WARN, "could not read the memory available (no /proc/meminfo)")
    what = f"{available / 1024**3:.1f} GB of memory available for local renders"
    need = f"{renders} at once of {SIZING_PHOTOS}-photo jobs need about {renders * each / 1024**3:.1f} GB"
    if available >= renders * each:
        return Check(OK, f"{what} ({need})")
    if renders > 1 and available >= each:
        return Check(WARN, f"{what}; {need}", "set jobs.max_concurrent = 1, or free memory")
    return Check(
        WARN,
        f"{what}; one render of a {SIZING_PHOTOS}-photo job needs about {each / 1024**3:.1f} GB",
        "free memory, keep jobs to fewer photos (80 MB each), or use the cloud backend",
    )


def check_memory(cfg: Config) -> Check | None:
    """Room for the local backend's renders (each is one ffmpeg; there are max_concurrent of them)."""
    if cfg.backend != "local":
        return None
    return memory_check(available_memory(), cfg.max_concurrent)


# -- the report -------------------------------------------------------------------------------

CheckStep = Callable[[Config], Check | list[Check] | None]


def _steps() -> list[tuple[str, CheckStep]]:
    return [
        ("config", check_config),
        ("user", check_owner),
        ("inbox", lambda cfg: check_folder("inbox", "paths.inbox", cfg.inbox)),
        ("outbox", lambda cfg: check_folder("outbox", "paths.outbox", cfg.outbox)),
        ("state", lambda cfg: check_folder("state folder", "paths.state", cfg.state)),
        ("layout", check_layout),
        ("claims", check_claims),
        ("watching", check_watching),
        ("watch limit", check_watch_limit),
        ("ffmpeg", check_ffmpeg),
        ("backend", check_backend),
        ("disk", check_disk),
        ("memory", check_memory),
    ]


def _run_step(name: str, step: CheckStep, cfg: Config) -> list[Check]:
    """A step's lines; a step that breaks becomes a FAIL line naming it, never a traceback."""
    try:
        result = step(cfg)
    except Exception as exc:
        return [
            Check(
                FAIL, f"{name}: the check itself failed ({type(exc).__name__}: {exc})", "report this as a bug"
            )
        ]
    if result is None:
        return []
    return [result] if isinstance(result, Check) else list(result)


def collect_checks(cfg: Config, on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Every check in order; ``on_check`` sees each as soon as it is known (slow ones come last)."""
    checks: list[Check] = []
    for name, step in _steps():
        for check in _run_step(name, step, cfg):
            checks.append(check)
            if on_check is not None:
                on_check(check)
    return checks


def summary(checks: Iterable[Check]) -> str:
    statuses = [check.status for check in checks]
    failed, warned = statuses.count(FAIL), statuses.count(WARN)
    if failed:
        return f"{failed} check(s) failed, {warned} warning(s): fix the FAIL lines, then run `nemowatch doctor` again."
    return f"all checks passed ({warned} warning(s))."


def run_doctor(cfg: Config, out: TextIO | None = None) -> int:
    """Print one line per check to ``out`` (stdout); 0 when nothing failed, 1 otherwise."""
    out = out or sys.stdout
    # Only errors reach the console (masked), so the report is not interleaved with client chatter.
    setup_logging(None, level="ERROR")

    def emit(check: Check) -> None:
        out.write(check.line() + "\n")
        out.flush()

    checks = collect_checks(cfg, emit)
    out.write(summary(checks) + "\n")
    return 1 if any(check.status == FAIL for check in checks) else 0
