"""sd_notify for systemd's Type=notify: READY, STATUS, STOPPING and a watchdog fed by the event loop.

No extra dependency: the protocol is one datagram of ``KEY=value`` lines sent to
the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the
abstract namespace). Without ``$NOTIFY_SOCKET`` (a terminal, a test, ``once``)
every call is a no-op, so callers never check whether they run under systemd.

How the daemon (``daemon/service.py``) uses it::

    notifier = Notifier.from_env()
    watchdog = notifier.start_watchdog(loop)      # at start; None when systemd asked for no watchdog
    ...                                           # journal opened, backend up, inbox watched
    notifier.ready()                              # once: systemd now counts the service as started
    notifier.status(describe_queue(counts, cfg.inbox))   # whenever the queue changes
    ...
    notifier.stopping()                           # on SIGTERM/SIGINT, before draining
    watchdog.cancel()

The watchdog pings (``WATCHDOG=1`` every ``$WATCHDOG_USEC / 2``) come from an
asyncio task, not a timer thread: when the event loop is stuck, the pings stop
and systemd restarts the daemon, which is the point of a watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from loguru import logger

from nemowatch.states import JobState


def _socket_address(value: str) -> str | bytes:
    """The sendto address for ``$NOTIFY_SOCKET``: ``@name`` means the abstract namespace (a leading NUL)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """The watchdog period systemd asked for, or None when it asked for none or for another process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec


class Notifier:
    """Talks to systemd's notify socket; inactive (all no-ops) when there is none."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec if address else None
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC``/``$WATCHDOG_PID`` (default: os.environ)."""
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET") or None, _watchdog_usec(env))

    @property
    def active(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half the watchdog timeout, as sd_watchdog_enabled(3) recommends; None without a watchdog."""
        return self.watchdog_usec / 2 / 1_000_000 if self.watchdog_usec else None

    def send(self, *lines: str) -> bool:
        """Send one notification (several ``KEY=value`` lines); False when inactive or it failed.

        A failure is logged and swallowed: a lost notification must never take the daemon down.
        """
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), _socket_address(self.address))
        except OSError as exc:
            logger.debug("sd_notify to {} failed: {}", self.address, exc)
            return False
        return True

    def ready(self) -> bool:
        """The service is up (inbox watched): systemd finishes ``start`` and starts the dependants."""
        return self.send("READY=1")

    def status(self, text: str) -> bool:
        """The one-line status ``systemctl status nemowatch`` shows."""
        return self.send("STATUS=" + " ".join(text.split()))

    def stopping(self) -> bool:
        """Shutdown began: systemd shows ``deactivating`` while jobs are handed back to the journal."""
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        """One keep-alive ping."""
        return self.send("WATCHDOG=1")

    async def watchdog_task(self) -> None:
        """Ping every half period for as long as the event loop runs this task; returns at once without a watchdog."""
        interval = self.watchdog_interval_s
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def start_watchdog(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Task[None] | None:
        """Start :meth:`watchdog_task` on ``loop`` (default: the running loop); None when systemd wants no pings."""
        if self.watchdog_interval_s is None:
            return None
        loop = loop or asyncio.get_running_loop()
        return loop.create_task(self.watchdog_task(), name="sd-watchdog")

    def close(self) -> None:
        """Close the socket (the notifier reopens it if used again)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def describe_queue(counts: Mapping[JobState, int], inbox: Path | str | None = None) -> str:
    """The STATUS= line: ``"2 rendering, 1 waiting for credits"``, or ``"idle, watching <inbox>"``."""
    # The unfinished states in the order a job goes through them.
    parts = [f"{counts[state]} {state.human}" for state in JobState.unfinished() if counts.get(state, 0) > 0]
    if parts:
        return ", ".join(parts)
    return f"idle, watching {inbox}" if inbox is not None else "idle"
