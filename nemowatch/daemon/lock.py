"""One daemon per inbox and per state folder, held in a way no deleted file can undo.

Two daemons on one inbox split its jobs between them; two on one state folder run jobs twice from
one journal. A lock *file* alone does not prevent that: delete ``daemon.lock`` (or the whole state
folder) and the next daemon locks a new file beside the running one. So the lock is three parts,
taken in this order and held until the process exits::

    lock = DaemonLock.acquire(inbox, state)   # UsageError (code "already_running") naming the holder's pid
    ...
    lock.release()

1. a Linux abstract-namespace unix socket named after the resolved state folder path: it lives in
   no folder, so nothing on disk can remove it;
2. another named after the resolved inbox path: two daemons can never serve one inbox, even with
   different state folders;
3. ``flock`` on ``state/daemon.lock`` (holding the holder's pid), for daemons that do not share a
   network namespace (abstract sockets are per namespace: containers, ``PrivateNetwork=``).

The kernel frees all three the instant the process ends, even by SIGKILL: no stale lock to clean
up after a crash. A refused daemon learns the holder's pid from the socket itself (``SO_PEERCRED``
on a connection to it), which needs no access to the holder's /proc or files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import socket
import struct
import threading
from pathlib import Path
from typing import IO

from loguru import logger

from nemowatch.errors import UsageError
from nemowatch.fsutil import private_opener

LOCK_FILE = "daemon.lock"
# The socket names' prefix; the rest is a hash of the path (a name holds at most 107 bytes).
NAMESPACE = "nemowatch"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def socket_name(kind: str, path: Path) -> bytes:
    """The abstract socket name that stands for "a daemon uses this ``kind`` (inbox | state) at ``path``"."""
    digest = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:40]
    return f"\0{NAMESPACE}/{kind}/{digest}".encode()


def holder_pid(name: bytes) -> int | None:
    """The pid of the process listening on the abstract socket ``name``, or None when it cannot be told."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(name)
            pid, _uid, _gid = _PEERCRED.unpack(
                probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
        except OSError:
            return None
    return pid if pid > 0 else None  # 0: the holder lives in a pid namespace we cannot see into


class _NameLock:
    """One bound, listening abstract socket, and a thread that accepts and drops every probe.

    Probes are accepted so they never fill the listen backlog (a systemd unit restarting every
    10 s would, in the end); the thread sleeps in accept(), costing nothing while nobody knocks.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._thread = threading.Thread(target=self._answer, name="nemowatch-lock", daemon=True)
        self._thread.start()

    @classmethod
    def take(cls, name: bytes) -> _NameLock | None:
        """Bind ``name``; None when another process holds it. OSErrors other than "in use" propagate."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(name)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return None
            raise
        sock.listen(8)
        return cls(sock)

    def _answer(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # released: shutdown() woke us
            conn.close()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.sock.close()
        self._thread.join(timeout=1.0)


# What a held lock means, and where a refused daemon can go instead.
_USES = {
    "inbox": ("watching the inbox", "another inbox (paths.inbox)"),
    "state": ("using the state folder", "another state folder (paths.state)"),
}


def _refusal(kind: str, path: Path, pid: int | None) -> UsageError:
    """The refused daemon's one sentence: who holds the lock, and what to do (exit 2: how it was
    started is what must change — stop the other one, or point this one elsewhere)."""
    holder = f"another nemowatch daemon (pid {pid})" if pid else "another nemowatch daemon"
    doing, elsewhere = _USES[kind]
    return UsageError(
        f"{holder} is already {doing} {path}",
        f"stop that one first, or give this one {elsewhere}",
        code="already_running",
    )


class DaemonLock:
    """What :meth:`acquire` took; hold it for the daemon's lifetime and :meth:`release` it at the end."""

    def __init__(self, names: list[_NameLock], handle: IO[str]) -> None:
        self._names = names
        self._handle = handle

    @classmethod
    def acquire(cls, inbox: Path, state: Path) -> DaemonLock:
        """Take the inbox's and the state folder's locks, or raise one sentence naming the daemon holding one."""
        taken: list[_NameLock] = []
        try:
            # The state folder first: the same config started twice is told about the state folder,
            # as before these sockets existed; another state folder on the same inbox, about the inbox.
            for kind, path in (("state", state), ("inbox", inbox)):
                name = socket_name(kind, path)
                try:
                    held = _NameLock.take(name)
                except OSError as exc:
                    # No abstract sockets here (not Linux, or a sandbox forbids AF_UNIX): the file lock remains.
                    logger.debug(
                        "no abstract-socket lock for the {} ({}); relying on {}", kind, exc, LOCK_FILE
                    )
                    continue
                if held is None:
                    raise _refusal(kind, path, holder_pid(name))
                taken.append(held)
            handle = _lock_file(state)
        except BaseException:
            for held in taken:
                held.release()
            raise
        return cls(taken, handle)

    def release(self) -> None:
        """Give every part back (process exit would too; this is for an orderly stop and for tests)."""
        for held in self._names:
            held.release()
        self._names = []
        self._handle.close()

    def __enter__(self) -> DaemonLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_file(state: Path) -> IO[str]:
    """``flock`` on ``state/daemon.lock``, which then holds our pid (what a refused daemon names)."""
    handle = open(state / LOCK_FILE, "a+", encoding="utf-8", opener=private_opener)  # noqa: SIM115 (held)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        text = handle.read().strip()
        handle.close()
        raise _refusal("state", state, int(text) if text.isdigit() else None) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
