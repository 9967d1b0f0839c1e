"""Atomic, durable file writes: one way for every layer (config, token cache, journal side files,
outbox, the local backend's store).

A file written here appears whole or not at all: the bytes go to a hidden temp name in the same
folder (``.NAME.<hex>.nwtmp``) and are renamed over the target. ``durable`` adds the fsyncs that
make the rename survive a power cut.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.nwtmp$")


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


def atomic_write(path: Path, data: str | bytes, *, mode: int = 0o666, durable: bool = True) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; ``mode`` applies from creation on
    (0o600 files are never readable by others, not even for a moment). Parents are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.nwtmp")
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
