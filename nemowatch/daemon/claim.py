"""Claiming a job: moving it out of the inbox into the work area, crash-safe, never losing a file.

Interface (used by ``service.py`` and ``outbox.py``)::

    claim(job: Path, work_root: Path) -> Path      # job folder or NAME.txt → work_root/<unique>/<job name>
    recover_claims(work_root: Path) -> list[Path]  # at start-up, BEFORE the watcher: finish or undo
                                                   #   interrupted claims; returns every claimed job path
    move_path(src: Path, dst: Path) -> Path        # rename, or verified copy + delete across filesystems

Each claim gets its own folder ``work_root/<stamp>-<name>-<random>/`` holding the job
and a hidden record ``.claim`` (JSON: ``source``, ``name``, ``stage``). On one filesystem
the job is moved with a single atomic ``os.rename``. Across filesystems (EXDEV) it is
copied (mtimes kept, symlinks copied as links, never followed), every file and folder
fsynced, the copy checked file by file against the source, and only then the source
deleted. The record's stage, replaced atomically, says how far a claim got, so a
crash leaves the source intact or both copies, never neither, and ``recover_claims``
resolves it:

- ``copying``: the copy may be partial → it is removed; the job is still in the inbox
  and the watcher picks it up again.
- ``copied``: the copy is complete and verified → what is left of the source is deleted
  (only files identical in size and mtime to their copy: a re-dropped file survives).
- ``claiming``/``done``: the job is in the claim folder → claimed; if not (the rename
  never happened), the empty claim folder is removed.

The claim folder belongs to the job until the service removes it; the pipeline may keep
work files in it beside the job.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

from loguru import logger

from nemowatch.errors import UserError
from nemowatch.fsutil import atomic_write, fit_name, fsync_dir

RECORD = ".claim"
# Sizes must match exactly; mtimes within FAT's 2 s resolution (a copy to vfat/exFAT rounds them).
_MTIME_SLACK_NS = 2_000_000_000


class ClaimError(UserError):
    """A job could not be moved out of the inbox; the job stays where it was."""

    code = "claim_failed"


def claim(job: Path, work_root: Path) -> Path:
    """Move ``job`` (a folder or ``NAME.txt``) out of the inbox; returns its new path in the work area."""
    work_root.mkdir(parents=True, exist_ok=True)
    # A readable hint of the job in the claim folder's name (stamp + it + mkdtemp's 8 characters
    # stay far below NAME_MAX, whatever the job's name: 60 bytes, not characters).
    safe = fit_name(re.sub(r"[^\w.-]+", "_", job.name).lstrip(".") or "job", room=60)
    unique = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-", dir=work_root))
    target = unique / job.name
    _write_record(unique, job, "claiming")
    try:
        os.rename(job, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            shutil.rmtree(unique, ignore_errors=True)
            raise _claim_error(job, exc) from None
        _copy_claim(job, unique, target)
    else:
        fsync_dir(unique)
        fsync_dir(job.parent)
    logger.info(f"claimed job {job.name} from the inbox into {unique}")
    return target


def _claim_error(job: Path, exc: OSError) -> ClaimError:
    """One sentence for the ways a move out of the inbox fails."""
    if isinstance(exc, FileNotFoundError):
        return ClaimError(
            f"job {job.name} disappeared from the inbox before it could be claimed",
            "drop it again if that was not intended",
        )
    if isinstance(exc, PermissionError):
        return ClaimError(
            f"cannot move job {job.name} out of the inbox: permission denied",
            "give the user nemowatch runs as write access to the inbox",
        )
    return ClaimError(
        f"cannot move job {job.name} out of the inbox: {exc.strerror or exc}",
        "check the free space and permissions of the state folder; the job stays in the inbox",
    )


def _copy_claim(job: Path, unique: Path, target: Path) -> None:
    """The cross-filesystem claim: copy, verify, mark copied, delete the source, mark done."""
    _write_record(unique, job, "copying")
    try:
        _copy_verified(job, target)
    except OSError as exc:
        shutil.rmtree(unique, ignore_errors=True)  # the source is untouched: the job stays in the inbox
        raise _claim_error(job, exc) from None
    # From here on the copy is the job: a crash below is finished by recover_claims.
    _write_record(unique, job, "copied")
    try:
        _delete_copied_source(job, target)
    except OSError as exc:
        # The record stays "copied", so the next start tries again; the job itself is safe in the copy.
        logger.warning(
            f"job {job.name} was copied but could not be removed from the inbox ({exc.strerror or exc}); "
            "remove it by hand so it is not processed twice"
        )
        return
    _write_record(unique, job, "done")


def move_path(src: Path, dst: Path) -> Path:
    """Move a file or tree to ``dst`` (which must not exist): rename, or copy + verify + delete (EXDEV)."""
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        try:
            _copy_verified(src, dst)
        except OSError:
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst, ignore_errors=True)
            else:
                dst.unlink(missing_ok=True)
            raise
        _delete_copied_source(src, dst)
    fsync_dir(dst.parent)
    return dst


def recover_claims(work_root: Path) -> list[Path]:
    """Finish or undo claims a crash interrupted (see the module docstring); returns all claimed job paths."""
    claimed: list[Path] = []
    if not work_root.is_dir():
        return claimed
    for unique in sorted(work_root.iterdir()):
        record_path = unique / RECORD
        if not unique.is_dir() or unique.is_symlink() or not record_path.exists():
            continue  # not a claim folder: never touched
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            source, target, stage = Path(record["source"]), unique / record["name"], record["stage"]
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning(f"cannot read the claim record in {unique}; leaving it alone")
            continue
        if stage == "copying":
            shutil.rmtree(unique, ignore_errors=True)
            logger.info(f"dropped a half-finished copy of job {source.name}; it is still in the inbox")
            continue
        if stage == "copied":
            _delete_copied_source(source, target)
            _write_record(unique, source, "done")
            logger.info(f"finished claiming job {source.name}")
        if os.path.lexists(target):
            claimed.append(target)
        else:
            shutil.rmtree(unique, ignore_errors=True)  # the rename never happened
    return claimed


# -- helpers -----------------------------------------------------------------------------------


def _write_record(unique: Path, source: Path, stage: str) -> None:
    """Replace the claim record atomically and durably: it decides what a restart does."""
    data = {"source": str(source), "name": source.name, "stage": stage}
    atomic_write(unique / RECORD, json.dumps(data))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_entry(src: str, dst: str) -> None:
    """Copy one file or symlink (as a link, never followed) with its mtime, durably."""
    shutil.copy2(src, dst, follow_symlinks=False)
    if not os.path.islink(dst):
        _fsync_file(Path(dst))


def _copy_verified(src: Path, dst: Path) -> None:
    """Copy a file or tree, fsync everything, then compare it entry by entry; OSError when they differ."""
    if src.is_symlink() or not src.is_dir():
        _copy_entry(str(src), str(dst))
    else:
        folders: list[tuple[str, str]] = []
        for folder, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(folder, src)
            out = os.path.normpath(os.path.join(dst, rel))
            os.mkdir(out)
            folders.append((folder, out))
            for name in list(dirnames):
                if os.path.islink(os.path.join(folder, name)):
                    dirnames.remove(name)  # a symlinked folder is copied as a link, not entered
                    filenames.append(name)
            for name in filenames:
                _copy_entry(os.path.join(folder, name), os.path.join(out, name))
        # Folder mtimes last, deepest first: filling a folder would move its mtime again.
        for folder, out in reversed(folders):
            shutil.copystat(folder, out, follow_symlinks=False)
            fsync_dir(Path(out))
    fsync_dir(dst.parent)
    missing = [rel for rel, info in _inventory(src).items() if _inventory_of(dst, rel) != info[:2]]
    if missing:
        raise OSError(errno.EIO, f"the copy differs from the original at {missing[0]}")


def _inventory(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry below ``root`` (or root itself when a file) → (type, size, mtime_ns), without following links."""
    found: dict[str, tuple[str, int, int]] = {}
    if root.is_symlink() or not root.is_dir():
        st = root.lstat()
        found["."] = (_kind(st.st_mode), _size(st), st.st_mtime_ns)
        return found
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (_kind(st.st_mode), _size(st), st.st_mtime_ns)
    return found


def _inventory_of(root: Path, rel: str) -> tuple[str, int] | None:
    try:
        st = os.lstat(root if rel == "." else root / rel)
    except FileNotFoundError:
        return None
    return _kind(st.st_mode), _size(st)


def _kind(mode: int) -> str:
    return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"


def _size(st: os.stat_result) -> int:
    # A folder's or link's own size varies between filesystems; only file sizes are compared.
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _same_as_copy(src: str, copy: str) -> bool:
    """True when ``copy`` is ``src``'s verified copy (same type and size, mtime within FAT slack)."""
    try:
        a, b = os.lstat(src), os.lstat(copy)
    except FileNotFoundError:
        return False
    return (
        _kind(a.st_mode) == _kind(b.st_mode)
        and _size(a) == _size(b)
        and (stat.S_ISDIR(a.st_mode) or abs(a.st_mtime_ns - b.st_mtime_ns) <= _MTIME_SLACK_NS)
    )


def _delete_copied_source(src: Path, copy: Path) -> None:
    """Delete the source of a verified copy: only entries identical to their copy, then emptied folders."""
    if not os.path.lexists(src):
        return
    if src.is_symlink() or not src.is_dir():
        if _same_as_copy(str(src), str(copy)):
            src.unlink()
        fsync_dir(src.parent)
        return
    for folder, dirnames, filenames in os.walk(src, topdown=False):
        rel = os.path.relpath(folder, src)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            if _same_as_copy(path, os.path.normpath(os.path.join(copy, rel, name))):
                os.unlink(path)
            else:
                logger.warning(f"kept {path}: it differs from its copy in the work area")
        with contextlib.suppress(OSError):  # not empty: something new was dropped there; it stays
            os.rmdir(folder)
    fsync_dir(src.parent)
