"""The SQLite journal: job states and write-ahead steps, so a restarted daemon resumes each job.

Every step the pipeline takes is recorded here *before* it is taken and committed
with ``synchronous=FULL`` (WAL mode fsyncs the log on every commit), so a crash
at any instant leaves a record that says what may have happened. One connection
serves the daemon's asyncio thread; other processes (``nemowatch status``) open
their own read-only connection, which WAL lets run beside the writer.

Writes that guard no side effect — progress (a working state, its detail), and records of a
step that already happened (``…ed``) — pass ``durable=False``: committed with
``synchronous=NORMAL``, in order, without their own fsync (about 1 ms each, 15 a job). They
are safe to lose in a power cut, and only then: a killed process loses nothing (the OS keeps
the WAL), the WAL keeps commits in order, and the next durable commit — the write-ahead
record before the next side effect, or the job's final state — makes every earlier one
durable too. Losing a ``…ed`` record is the crash the pipeline already recovers from
(between a call and its record).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemowatch.daemon import steps as protocol
from nemowatch.daemon.facts import stamp
from nemowatch.daemon.steps import Step, V
from nemowatch.errors import UsageError, UserError
from nemowatch.fsutil import PRIVATE_FILE_MODE
from nemowatch.states import JobState

JOURNAL_FILE = "journal.sqlite3"

# Each entry upgrades the schema by one version; PRAGMA user_version counts how many ran.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        state       TEXT NOT NULL,
        detail      TEXT NOT NULL DEFAULT '',
        files_dir   TEXT NOT NULL,
        outbox_dir  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        attempt     INTEGER NOT NULL DEFAULT 1,
        error       TEXT
    );
    CREATE INDEX jobs_name ON jobs(name);
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE steps (
        job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        written_at  TEXT NOT NULL,
        PRIMARY KEY (job_id, key)
    );
    CREATE TABLE meta (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        written_at  TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def journal_path(state_dir: Path) -> Path:
    """Where the daemon keeps its journal inside the state folder."""
    return state_dir / JOURNAL_FILE


@dataclass(frozen=True)
class JobRecord:
    """One job as the journal knows it."""

    id: int
    name: str
    kind: str  # "folder" | "text"
    state: JobState
    detail: str  # what STATUS.txt shows after the state word
    files_dir: Path  # where the job's files are now (work area, later outbox/<job>/inputs)
    outbox_dir: Path
    created_at: str
    updated_at: str
    attempt: int
    error: dict[str, Any] | None  # {"code", "message", "hint"} when failed

    @property
    def status_line(self) -> str:
        """The one line STATUS.txt holds: the state's words, then the detail."""
        return f"{self.state.human} — {self.detail}" if self.detail else self.state.human


class Journal:
    """The daemon's journal at ``path``; ``read_only`` for other processes reading beside the daemon."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        # The daemon uses the journal from its event loop thread, but a worker thread (a scheduler
        # job, an executor) may touch it too: one connection, serialised by a lock.
        self._lock = threading.RLock()
        if read_only and not self.path.exists():
            raise UsageError(
                f"there is no journal at {self.path} yet",
                "start the daemon once with `nemowatch run` (or `nemowatch once`)",
                code="no_journal",
            )
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            raise UserError(
                f"the journal {self.path} cannot be read ({exc})",
                "if it is damaged or not nemowatch's, move it away: the daemon starts a fresh one"
                " (finished jobs stay in the outbox)",
                code="journal_unreadable",
            ) from None
        self._db.row_factory = sqlite3.Row

    def _open(self) -> None:
        """Connect (read-only, or read-write with the schema brought up to date); the first read
        tells a file that is no SQLite database apart."""
        if self.read_only:
            self._db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10
            )
            self._db.execute("PRAGMA user_version").fetchone()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database's mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE))
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite when the last writer closes)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        """Bring the schema up to ``SCHEMA_VERSION``, one migration per transaction."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UserError(
                f"the journal {self.path} was written by a newer nemowatch (schema {version})",
                "upgrade nemowatch, or move that file away to start a fresh journal",
                code="journal_too_new",
            )
        for number in range(version, SCHEMA_VERSION):
            with self._write() as db:
                for statement in _MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                # PRAGMA does not take parameters; the value is our own integer.
                db.execute(f"PRAGMA user_version={number + 1}")

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One committed transaction; ``BEGIN IMMEDIATE`` takes the write lock up front.

        ``durable=False``: committed without an fsync of its own (see the module docstring).
        """
        if self.read_only:
            raise RuntimeError("this journal was opened read-only")
        with self._lock:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- jobs --------------------------------------------------------------------------------

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            state=JobState(row["state"]),
            detail=row["detail"],
            files_dir=Path(row["files_dir"]),
            outbox_dir=Path(row["outbox_dir"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            attempt=row["attempt"],
            error=json.loads(row["error"]) if row["error"] else None,
        )

    def add_job(self, name: str, kind: str, files_dir: Path, outbox_dir: Path) -> JobRecord:
        """Record a newly claimed job in state ``queued``."""
        created = stamp()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO jobs (name, kind, state, files_dir, outbox_dir, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, kind, JobState.QUEUED.value, str(files_dir), str(outbox_dir), created, created),
            )
            job_id = cursor.lastrowid
        assert job_id is not None
        return self.get(job_id)

    def get(self, job_id: int) -> JobRecord:
        """The job with this id; KeyError when there is none."""
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise KeyError(f"no job {job_id} in the journal")
        return self._record(rows[0])

    def find(self, name: str) -> JobRecord | None:
        """The most recent job with this name, or with this outbox folder name (``holiday-2``)."""
        rows = self._query("SELECT * FROM jobs WHERE name = ? ORDER BY id DESC LIMIT 1", (name,))
        if rows:
            return self._record(rows[0])
        for record in self.jobs():
            if record.outbox_dir.name == name:
                return record
        return None

    def jobs(self, states: Iterable[JobState] | None = None, *, limit: int | None = None) -> list[JobRecord]:
        """Every job (in the given states), oldest first; only the ``limit`` oldest when given."""
        tail = " ORDER BY id" if limit is None else f" ORDER BY id LIMIT {int(limit)}"
        if states is None:
            rows = self._query("SELECT * FROM jobs" + tail)
        else:
            wanted = [JobState(state).value for state in states]
            marks = ",".join("?" * len(wanted))
            rows = self._query(f"SELECT * FROM jobs WHERE state IN ({marks})" + tail, wanted)
        return [self._record(row) for row in rows]

    def set_state(
        self, job_id: int, state: JobState, detail: str = "", error: dict[str, Any] | None = None
    ) -> None:
        """Move a job to ``state``; ``error`` is kept only with ``failed``.

        Only a state the daemon does not work on by itself (done, failed, waiting for credits)
        is fsynced: a working state is progress, and the steps say where the job stands.
        """
        stored = json.dumps(error) if error is not None else None
        durable = JobState(state) not in JobState.working()
        with self._write(durable) as db:
            db.execute(
                "UPDATE jobs SET state = ?, detail = ?, error = ?, updated_at = ? WHERE id = ?",
                (JobState(state).value, detail, stored, stamp(), job_id),
            )

    def set_detail(self, job_id: int, detail: str) -> None:
        """Change only the detail (progress such as ``45%``), keeping state and error (not fsynced)."""
        with self._write(durable=False) as db:
            db.execute("UPDATE jobs SET detail = ?, updated_at = ? WHERE id = ?", (detail, stamp(), job_id))

    def set_files_dir(self, job_id: int, path: Path) -> None:
        """Record where the job's files now are (after they were moved to ``inputs/``).

        Not fsynced: a lost record is the crash ``move_inputs`` already handles (moved, not journaled).
        """
        with self._write(durable=False) as db:
            db.execute(
                "UPDATE jobs SET files_dir = ?, updated_at = ? WHERE id = ?", (str(path), stamp(), job_id)
            )

    def requeue(self, job_id: int) -> None:
        """``nemowatch retry``: back to ``queued`` with attempt + 1.

        Steps that finished stay (the session, the uploads, the confirmed messages, finished
        renders), so nothing the backend already has is sent again; steps that never finished
        are dropped so the retry takes them afresh: an unconfirmed message is sent again (the
        user asked for it), a render that failed is submitted anew, the outbox is rewritten.
        """
        stale = protocol.unfinished(self.steps(job_id))
        with self._write() as db:
            db.executemany("DELETE FROM steps WHERE job_id = ? AND key = ?", [(job_id, k) for k in stale])
            db.execute(
                "UPDATE jobs SET state = ?, detail = '', error = NULL, attempt = attempt + 1,"
                " updated_at = ? WHERE id = ?",
                (JobState.QUEUED.value, stamp(), job_id),
            )

    # -- steps -------------------------------------------------------------------------------

    def put_step(self, job_id: int, key: str, value: dict[str, Any], *, durable: bool = True) -> None:
        """Record a step (replacing an earlier record of it); committed to disk before returning.

        ``durable=False`` for a record of a step already taken (see the module docstring); a
        write-ahead record, made before its side effect, must stay durable.
        """
        with self._write(durable) as db:
            db.execute(
                "INSERT INTO steps (job_id, key, value, written_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value,"
                " written_at = excluded.written_at",
                (job_id, key, json.dumps(value), stamp()),
            )

    def step(self, job_id: int, key: str) -> dict[str, Any] | None:
        """The recorded value of one step, or None when it was never recorded."""
        rows = self._query("SELECT value FROM steps WHERE job_id = ? AND key = ?", (job_id, key))
        return json.loads(rows[0]["value"]) if rows else None

    def record(self, job_id: int, step: Step[V], value: V, *, durable: bool = True) -> None:
        """Record a step of the write-ahead protocol (``daemon/steps.py``) with its typed value."""
        self.put_step(job_id, step.key, value.to_json(), durable=durable)

    def read(self, job_id: int, step: Step[V]) -> V | None:
        """The typed value of a step of the write-ahead protocol, or None when it was never recorded."""
        return step.load(self.step(job_id, step.key))

    def steps(self, job_id: int, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Every step of a job whose key starts with ``prefix``, in the order they were first written."""
        rows = self._query(
            "SELECT key, value FROM steps WHERE job_id = ? AND substr(key, 1, ?) = ? ORDER BY rowid",
            (job_id, len(prefix), prefix),
        )
        return {row["key"]: json.loads(row["value"]) for row in rows}

    def delete_steps(self, job_id: int, keys: Iterable[str]) -> None:
        """Forget the named steps (``daemon/steps.py`` says which: a lost session's, a refused message's)."""
        with self._write() as db:
            db.executemany("DELETE FROM steps WHERE job_id = ? AND key = ?", [(job_id, k) for k in keys])

    # -- daemon-wide facts -------------------------------------------------------------------

    def put_meta(self, key: str, value: Any, *, durable: bool = True) -> None:
        """Record a daemon-wide fact (token expiry, last credits, paused reason, heartbeat)."""
        with self._write(durable) as db:
            db.execute(
                "INSERT INTO meta (key, value, written_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, written_at = excluded.written_at",
                (key, json.dumps(value), stamp()),
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A daemon-wide fact, or ``default`` when it was never recorded."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default
