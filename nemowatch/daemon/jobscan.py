"""What a job folder holds: the pure scan and name rules the inbox watcher decides readiness with.

Interface (used by ``inbox.py``, the pipeline and ``nemowatch status``)::

    scan_job(path: Path) -> JobScan            # a folder job, or a NAME.txt text job
    inbox_candidates(inbox: Path) -> list[Path]  # what directly in the inbox may be a job
    is_busy(name) / is_ignored(name) / is_conflicted(name) -> bool
    natural_key(relpath: str) -> tuple          # from api.formats: 2 before 10, case-insensitive
    JobScan: name, kind ("folder" | "text"), path, prompt, media, job_toml, ignored,
             conflicted, busy, unsupported, escaping_symlinks, fingerprint, newest_mtime_ns,
             .waiting_reason -> str | None      # None: may start once settled

Relative paths in the lists are POSIX strings relative to the job folder; ``prompt``,
``media`` and ``job_toml`` are absolute Paths inside it. Nothing here writes, and a
scan never follows a symlink out of the job folder.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from nemowatch.api.formats import ACCEPTED_EXTENSIONS, extension, natural_key

PROMPT_NAME = "prompt.txt"
JOB_TOML_NAME = "job.toml"

# Files sync clients, browsers and editors are still writing: they keep a job waiting.
# Matched case-insensitively on the file name; these win over the hidden-file rule below.
BUSY_PATTERNS: tuple[str, ...] = (
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    "*.tmp",  # also .syncthing.*.tmp and ~syncthing~*.tmp
    ".~lock.*#",  # LibreOffice
)
# Nextcloud/ownCloud write ".NAME.~1a2b3c4d" beside the final file.
_NEXTCLOUD_TEMP = re.compile(r"^\..+\.~[0-9a-z]{4,}$", re.IGNORECASE)

# What sync clients and operating systems leave behind: never media, never a reason to wait.
IGNORED_PATTERNS: tuple[str, ...] = (
    ".dropbox*",  # also the .dropbox.cache/ folder
    ".stfolder",
    ".stversions",
    ".ds_store",
    "._*",
    "__macosx",
    ".spotlight-v100",
    ".trashes",
    "thumbs.db",
    "desktop.ini",
    "$recycle.bin",
    "~$*",
    "@eadir",
    "#recycle",
    ".*",  # every other hidden file or folder
)

# Dropbox/Nextcloud "photo (Ann's conflicted copy 2024-01-02).jpg", Syncthing "photo.sync-conflict-….jpg".
_CONFLICTED = re.compile(r"\(.*conflicted copy.*\)|\.sync-conflict-", re.IGNORECASE)

Fingerprint = tuple[tuple[str, int, int], ...]


def is_busy(name: str) -> bool:
    """True for a temp file some program is still writing (the job must wait for it)."""
    folded = name.casefold()
    return any(fnmatch.fnmatchcase(folded, p) for p in BUSY_PATTERNS) or bool(_NEXTCLOUD_TEMP.match(name))


def is_ignored(name: str) -> bool:
    """True for sync-client and OS litter (and hidden names) that a job neither uses nor waits for."""
    if is_busy(name):
        return False
    folded = name.casefold()
    return any(fnmatch.fnmatchcase(folded, p) for p in IGNORED_PATTERNS)


def is_conflicted(name: str) -> bool:
    """True for a sync client's conflicted copy: reported, never sent as media."""
    return bool(_CONFLICTED.search(name))


@dataclass(frozen=True)
class JobScan:
    """One look at a job: what it holds, what it waits for, and its fingerprint for the settle check."""

    name: str
    kind: str  # "folder" | "text"
    path: Path
    prompt: Path | None
    media: list[Path] = field(default_factory=list)
    job_toml: Path | None = None
    ignored: list[str] = field(default_factory=list)
    conflicted: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    escaping_symlinks: list[str] = field(default_factory=list)
    # Sorted (relative path, size, mtime_ns) of everything not ignored: equal fingerprints = no change.
    fingerprint: Fingerprint = ()
    # Newest mtime among the counted files and folders (folders change when entries are added or renamed in).
    newest_mtime_ns: int = 0

    @property
    def waiting_reason(self) -> str | None:
        """Why this job cannot start whatever the clock says (``"no prompt.txt"``, ``"busy: x.part"``), or None."""
        if self.prompt is None:
            return "no prompt.txt"
        if self.busy:
            return "busy: " + ", ".join(self.busy[:3]) + (" …" if len(self.busy) > 3 else "")
        return None


def job_name(path: Path) -> str:
    """The job's name: the folder's name, or NAME for a ``NAME.txt`` text job."""
    return path.stem if path.is_file() and path.suffix.casefold() == ".txt" else path.name


def inbox_candidates(inbox: Path) -> list[Path]:
    """Entries directly in the inbox that are (or may become) jobs: folders and ``NAME.txt`` files."""
    return inbox_entries(inbox)[0]


def inbox_entries(inbox: Path) -> tuple[list[Path], dict[str, str]]:
    """:func:`inbox_candidates`, and the symlinks that would be jobs were they not links: their
    names → why they are skipped and what to do (one sentence, for the log and ``nemowatch status``)."""
    found: list[Path] = []
    links: dict[str, str] = {}
    try:
        entries = list(os.scandir(inbox))
    except FileNotFoundError:
        return found, links
    for entry in entries:
        if is_ignored(entry.name) or is_busy(entry.name):
            continue
        try:
            if entry.is_symlink():
                if reason := _link_reason(entry):
                    links[entry.name] = reason
                continue
            folder = entry.is_dir(follow_symlinks=False)
            text_job = entry.is_file(follow_symlinks=False) and entry.name.casefold().endswith(".txt")
        except OSError:
            continue  # vanished between listing and looking: the next event or rescan sees it
        if folder or text_job:
            found.append(Path(entry.path))
    return sorted(found, key=lambda p: natural_key(p.name)), links


def skipped_link_line(name: str, reason: str) -> str:
    """The warning (and ``nemowatch status`` line) for a symlink skipped in the inbox."""
    return f"skipped {name} in the inbox: it is {reason}"


def _link_reason(entry: os.DirEntry[str]) -> str | None:
    """Why a symlink in the inbox is not taken as a job (None: it would not be a job anyway)."""
    # Links are never followed out of the inbox: a link could hand the daemon (and the backend)
    # any file on the machine, and claiming would move the link, not what it points to.
    if entry.is_dir():
        return "a link to a folder; links are never followed — copy the folder into the inbox instead"
    if entry.name.casefold().endswith(".txt"):
        return "a link to a text file; links are never followed — copy the file into the inbox instead"
    return None


def is_candidate_name(name: str) -> bool:
    """True when an inbox entry of this name could be a job (decided without touching the disk)."""
    return bool(name) and not is_ignored(name) and not is_busy(name)


def scan_job(path: Path) -> JobScan:
    """Look at a job folder (or a ``NAME.txt`` text job) once; raises FileNotFoundError when it is gone."""
    st = path.lstat()
    if stat.S_ISREG(st.st_mode):
        return JobScan(
            name=path.stem,
            kind="text",
            path=path,
            prompt=path,
            fingerprint=((path.name, st.st_size, st.st_mtime_ns),),
            newest_mtime_ns=st.st_mtime_ns,
        )
    if not stat.S_ISDIR(st.st_mode):
        raise FileNotFoundError(f"{path} is neither a folder nor a file")
    return _scan_folder(path, st.st_mtime_ns)


def _scan_folder(root: Path, root_mtime_ns: int) -> JobScan:
    """Walk a job folder without following symlinked folders and sort every entry into its list."""
    real_root = os.path.realpath(root)
    prompts: list[tuple[str, Path]] = []
    job_toml: Path | None = None
    media: list[tuple[str, Path]] = []
    ignored: list[str] = []
    conflicted: list[str] = []
    busy: list[str] = []
    unsupported: list[str] = []
    escaping: list[str] = []
    prints: list[tuple[str, int, int]] = []
    newest = root_mtime_ns

    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed while we walked: the fingerprint will differ next time
        for entry in entries:
            rel = prefix + entry.name
            busy_entry = is_busy(entry.name)
            if busy_entry:
                busy.append(rel)
            elif is_ignored(entry.name):
                ignored.append(rel)
                continue  # ignored folders are not entered, and litter never changes the fingerprint
            try:
                lst = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not prefix and entry.name.casefold() == PROMPT_NAME and not busy_entry:
                # Whatever it is (a file, a folder, a link leaving the job, a dangling one), the job has
                # its prompt: one that cannot be read fails the job with that said plainly
                # (prompt.read_prompt), instead of "no prompt.txt" and a wait that never ends.
                prints.append((rel, lst.st_size, lst.st_mtime_ns))
                newest = max(newest, lst.st_mtime_ns)
                prompts.append((entry.name, Path(entry.path)))
                continue
            if stat.S_ISLNK(lst.st_mode):
                target = os.path.realpath(entry.path)
                if os.path.commonpath([real_root, target]) != real_root:
                    # Never followed nor uploaded: it could expose any file on the machine.
                    escaping.append(rel)
                    prints.append((rel, lst.st_size, lst.st_mtime_ns))
                    continue
                try:
                    st = os.stat(entry.path)
                except OSError:
                    unsupported.append(rel)  # a dangling link
                    continue
                if stat.S_ISDIR(st.st_mode):
                    # Its contents are already reachable through the real folder inside the job.
                    ignored.append(rel)
                    continue
            else:
                st = lst
            if stat.S_ISDIR(st.st_mode):
                newest = max(newest, st.st_mtime_ns)
                stack.append((entry.path, rel + "/"))
                continue
            prints.append((rel, st.st_size, st.st_mtime_ns))
            newest = max(newest, st.st_mtime_ns)
            if busy_entry:
                continue
            if not stat.S_ISREG(st.st_mode):
                unsupported.append(rel)  # fifos, sockets, devices
            elif is_conflicted(entry.name):
                conflicted.append(rel)
            elif not prefix and entry.name.casefold() == JOB_TOML_NAME and job_toml is None:
                job_toml = Path(entry.path)
            elif extension(entry.name) in ACCEPTED_EXTENSIONS:
                media.append((rel, Path(entry.path)))
            else:
                unsupported.append(rel)

    prompt: Path | None = None
    if prompts:
        # "prompt.txt" exactly wins over "Prompt.TXT"; any other spelling is reported, not read.
        prompts.sort(key=lambda item: (item[0] != PROMPT_NAME, item[0]))
        prompt = prompts[0][1]
        unsupported.extend(name for name, _ in prompts[1:])
    media.sort(key=lambda item: natural_key(item[0]))

    def ordered(items: list[str]) -> list[str]:
        return sorted(items, key=natural_key)

    return JobScan(
        name=root.name,
        kind="folder",
        path=root,
        prompt=prompt,
        media=[p for _, p in media],
        job_toml=job_toml,
        ignored=ordered(ignored),
        conflicted=ordered(conflicted),
        busy=ordered(busy),
        unsupported=ordered(unsupported),
        escaping_symlinks=ordered(escaping),
        fingerprint=tuple(sorted(prints)),
        newest_mtime_ns=newest,
    )
