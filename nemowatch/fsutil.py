"""Atomic, durable file writes: one way for every layer (config, token cache, journal side files,
outbox, the local backend's store).

A file written here appears whole or not at all: the bytes go to a hidden temp name in the same
folder (``.NAME.<hex>.nwtmp``) and are renamed over the target. ``durable`` adds the fsyncs that
make the rename survive a power cut.

Also here, because every layer names files after things users name: :func:`fit_name`, the one way
a name too long for the file system is shortened (outbox folders, videos, temp names, claim
folders), and the state folder's privacy (:func:`private_dir`, :func:`tighten_private`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.nwtmp$")

# The longest file name Linux file systems take (ext4, xfs, btrfs, tmpfs): bytes, not characters.
NAME_MAX = 255
# Room to leave for the hidden temp names derived from a name: atomic_write's ".NAME.<8 hex>.nwtmp"
# adds 16 bytes, and a video "NAME" is downloaded as "..NAME.part.part" (the outbox's ".NAME.part",
# to which the API client adds its own ".….part"): 12. A name that fits NAME_MAX - TEMP_ROOM keeps
# every temp name derived from it within NAME_MAX.
TEMP_ROOM = 16
# "~" and 8 hex digits of the full name's SHA-256: what keeps two shortened names apart.
_TAG_HEX = 8

# The state folder's modes: the journal, logs and token cache are for the daemon's user alone.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def name_bytes(name: str) -> int:
    """How many bytes ``name`` takes on disk (UTF-8; undecodable bytes kept as the OS gave them)."""
    return len(os.fsencode(name))


def fit_name(stem: str, suffix: str = "", *, room: int = NAME_MAX) -> str:
    """``stem + suffix`` when it takes at most ``room`` bytes; else the stem cut short, then ``~`` and a
    hash of the whole stem, then ``suffix``.

    Deterministic (the same stem always gives the same name, so a resumed job finds its files) and
    unique in practice (two long names sharing a prefix differ in their hash); cut at a character
    boundary, so the result is still readable UTF-8. ``suffix`` (``-2``, ``.mp4``) is always kept
    whole: it carries a meaning of its own.
    """
    if name_bytes(stem + suffix) <= room:
        return stem + suffix
    tag = "~" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:_TAG_HEX]
    budget = room - name_bytes(suffix) - len(tag)
    if budget < 1:
        raise ValueError(f"no room for a name in {room} bytes with the suffix {suffix!r}")
    kept: list[str] = []
    for char in stem:
        budget -= name_bytes(char)
        if budget < 0:
            break
        kept.append(char)
    return "".join(kept) + tag + suffix


def is_temp_name(name: str) -> bool:
    """True for the temp names :func:`atomic_write` leaves behind when a crash interrupts it."""
    return bool(_TEMP.match(name))


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None, durable: bool = True) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; ``mode`` applies from creation on
    (0o600 files are never readable by others, not even for a moment). Parents are created.

    Without ``mode``, a file replaced keeps the mode it had (a renamed-in copy would otherwise
    take the umask's: a private file made readable by rewriting it), and a new one gets the umask's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = 0o666
    tmp = path.with_name(f".{fit_name(path.name, room=NAME_MAX - TEMP_ROOM)}.{secrets.token_hex(4)}.nwtmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode != 0o666:
            os.chmod(tmp, mode)  # the umask may have narrowed it; never widen beyond mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a folder only its owner can enter (0700, whatever the
    umask); an existing one is left as it is (:func:`tighten_private` narrows it)."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not path.is_dir():  # a file where the folder belongs; made by another process: fine
                raise
    return path


def private_opener(path: str, flags: int) -> int:
    """An ``open(..., opener=)`` that creates the file 0600: for files other code opens by name."""
    return os.open(path, flags, PRIVATE_FILE_MODE)


def tighten_private(root: Path, *, skip: Iterable[Path] = ()) -> list[Path]:
    """Take group and other permissions off ``root`` and everything under it (folders 0700, files 0600
    at most) but the folders in ``skip`` (an outbox kept inside the state folder stays shared);
    returns what was wider. Links are not followed; what the user cannot change is left alone."""
    widened: list[Path] = []
    skipped = {os.path.abspath(path) for path in skip}

    def narrow(path: str, mode: int) -> None:
        if stat.S_ISLNK(mode) or not mode & 0o077:
            return
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IMODE(mode) & ~0o077)  # links were skipped above
            widened.append(Path(path))

    try:
        narrow(str(root), os.lstat(root).st_mode)
    except FileNotFoundError:
        return widened
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if os.path.join(folder, name) not in skipped]
        for name in dirnames + filenames:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                narrow(path, os.lstat(path).st_mode)
    return widened
