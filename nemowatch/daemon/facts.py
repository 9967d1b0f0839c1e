"""Daemon-wide facts kept in the journal's meta table, so `nemowatch status` can show them from another process.

The daemon writes them (service.py, schedule.py); status.py only reads. One module names
every key so writer and reader cannot drift apart.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

DAEMON = "daemon"  # {pid, mode, backend, inbox, outbox, started_at, heartbeat_at, stopped_at}
TOKEN = "token"  # {source, anonymous, expires_at, checked_at}
CREDITS = "credits"  # {available, frozen, total, checked_at}
PAUSED = "paused"  # the reason new jobs are held, or None
INBOX = "inbox"  # {pending: {name: reason}, orphans: [name], missing: {reason, since} or None, scanned_at}
INTAKE = "intake"  # the claim in progress (write-ahead), or None

# The daemon writes its heartbeat this often; status calls it dead after three missed beats.
HEARTBEAT_S = 30.0
STALE_AFTER_S = 3 * HEARTBEAT_S


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def stamp(when: datetime | None = None) -> str:
    """An ISO 8601 UTC time as the meta table stores it."""
    return (when or now()).isoformat(timespec="seconds")


def parse(value: Any) -> datetime | None:
    """A stored ISO time back into a datetime (None for missing or malformed values)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def pid_alive(pid: Any) -> bool:
    """True when a process with this pid exists (signal 0 probes without touching it)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to someone else
    return True


def daemon_running(fact: Any) -> bool:
    """True when the recorded daemon is alive: its pid exists, it has not said goodbye, its heartbeat is fresh."""
    if not isinstance(fact, dict) or fact.get("stopped_at"):
        return False
    beat = parse(fact.get("heartbeat_at"))
    if beat is None or (now() - beat).total_seconds() > STALE_AFTER_S:
        return False
    return pid_alive(fact.get("pid"))
