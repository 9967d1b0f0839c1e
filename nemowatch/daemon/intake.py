"""Taking a ready job out of the inbox into the journal, write-ahead, so a crash never loses or doubles one.

The order, each step recorded before the next (journal meta ``intake``):

1. the intent (stage ``intent``): which inbox entry, under which name;
2. (stage ``reserved``) ``Outbox.reserve_job`` — ``outbox/<job>`` (``-2``, ``-3`` when taken), which fixes the job's unique name;
3. (stage ``claimed``) ``claim()`` — the files leave the inbox for ``state/work/<claim>/`` (claim.py keeps its own
   crash record there);
4. ``Journal.add_job`` — from here the pipeline owns the job; the intent is cleared and
   STATUS.txt says ``queued``.

:meth:`Intake.recover` runs before the watcher starts: claims a crash interrupted are finished
(``recover_claims``), a claimed job the journal does not know yet is recorded, and a reservation
whose job never left the inbox is dropped — the start-up scan takes that job again.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from loguru import logger

from nemowatch.daemon import facts
from nemowatch.daemon.claim import RECORD, claim, recover_claims
from nemowatch.daemon.jobscan import job_name
from nemowatch.daemon.journal import JobRecord, Journal
from nemowatch.daemon.outbox import STATUS_FILE, Outbox
from nemowatch.fsutil import is_temp_name
from nemowatch.states import JobState

# Housekeeping leaves younger claim folders alone: a claim may be under way in the intake thread.
CLAIM_MIN_AGE_S = 600.0


class Intake:
    """Claims ready inbox entries into the work area and the journal, one at a time."""

    def __init__(self, journal: Journal, outbox: Outbox, work_root: Path) -> None:
        self.journal = journal
        self.outbox = outbox
        self.work_root = work_root

    def take(self, source: Path) -> JobRecord | None:
        """Claim one ready job folder (or NAME.txt); None when it vanished before we got to it."""
        if not os.path.lexists(source):
            return None
        intent = {"source": str(source), "name": job_name(source), "kind": _kind(source), "stage": "intent"}
        self.journal.put_meta(facts.INTAKE, intent)
        out_dir, unique = self.outbox.reserve_job(intent["name"])
        intent.update(outbox=str(out_dir), job=unique, stage="reserved")
        self.journal.put_meta(facts.INTAKE, intent)
        try:
            files = claim(source, self.work_root)
        except BaseException:
            _drop_reservation(Path(intent["outbox"]))
            self.journal.put_meta(facts.INTAKE, None)
            raise
        intent.update(files=str(files), stage="claimed")
        # Not fsynced: add_job's durable commit follows at once, and without this record ``recover``
        # still pairs the claimed folder with the "reserved" one by its name.
        self.journal.put_meta(facts.INTAKE, intent, durable=False)
        return self._record(intent, files)

    def recover(self) -> list[JobRecord]:
        """Finish what a crash interrupted: record claimed-but-unknown jobs, drop orphan reservations."""
        claimed = recover_claims(self.work_root)
        known = {record.files_dir for record in self.journal.jobs()}
        used = {record.outbox_dir for record in self.journal.jobs()}
        intent = self.journal.get_meta(facts.INTAKE) or None
        recorded: list[JobRecord] = []
        for files in claimed:
            if files in known:
                continue
            if (
                intent
                and intent.get("outbox")
                and Path(intent.get("files") or intent["source"]).name == files.name
            ):
                pending, intent = {**intent, "kind": _kind(files)}, None
            else:
                name = job_name(files)
                pending = {"source": str(files), "name": name, "kind": _kind(files)}
                out_dir, unique = self.outbox.reserve_job(name)
                pending.update(outbox=str(out_dir), job=unique)
            logger.info("recording job {}, claimed just before the daemon stopped", files.name)
            recorded.append(self._record(pending, files))
        if intent:
            # The job never left the inbox (or left it by the user's hand): the start-up scan decides.
            out_dir = intent.get("outbox")
            if out_dir and Path(out_dir) not in used:
                _drop_reservation(Path(out_dir))
            self.journal.put_meta(facts.INTAKE, None)
        return recorded

    def _record(self, intent: dict[str, str], files: Path) -> JobRecord:
        out_dir = Path(intent["outbox"])
        # The full unique name ("shoot-2"); the folder's name may be shortened to fit the file system.
        # (An intent from before names were kept has none: its folder's name is the name.)
        record = self.journal.add_job(intent.get("job") or out_dir.name, intent["kind"], files, out_dir)
        # Not fsynced: lost, the intent names a job the journal knows, and ``recover`` clears it.
        self.journal.put_meta(facts.INTAKE, None, durable=False)
        try:
            self.outbox.write_status(out_dir, JobState.QUEUED.human)
        except OSError as exc:
            # The job is taken (the journal says so); its pipeline writes STATUS.txt again or waits.
            logger.warning("could not write {}: {}", out_dir / STATUS_FILE, exc.strerror or exc)
        logger.info("job {} taken from the inbox; its results will be in {}", record.name, out_dir)
        return record

    def release(self, claimed: Path) -> None:
        """Remove a finished job's claim folder once its files have moved on (only the claim record is left)."""
        folder = claimed.parent
        if folder.parent != self.work_root or not folder.is_dir():
            return
        _remove_claim_folder(folder)

    def housekeeping(self) -> int:
        """Remove claim folders no unfinished job uses and that hold nothing but the claim record."""
        if not self.work_root.is_dir() or self.journal.get_meta(facts.INTAKE):
            return 0
        in_use = {r.files_dir.parent for r in self.journal.jobs() if not r.state.is_finished}
        removed = 0
        for folder in sorted(self.work_root.iterdir()):
            if folder in in_use or not folder.is_dir() or folder.is_symlink():
                continue
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime < CLAIM_MIN_AGE_S:
                    continue
                removed += _remove_claim_folder(folder)
        return removed


def _kind(path: Path) -> str:
    return "folder" if path.is_dir() and not path.is_symlink() else "text"


def _remove_claim_folder(folder: Path) -> int:
    """Remove ``folder`` when it holds only the claim record and empty folders; never a user's file."""
    for _root, _dirs, files in os.walk(folder):
        if any(name != RECORD and not is_temp_name(name) for name in files):
            return 0
    for root, _dirs, files in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):
            for name in files:
                os.unlink(os.path.join(root, name))
            os.rmdir(root)
    return 0 if folder.exists() else 1


def _drop_reservation(out_dir: Path) -> None:
    """Undo ``Outbox.reserve`` for a job that was not taken: only an empty folder (or a lone STATUS.txt)."""
    with contextlib.suppress(OSError):
        if all(entry.name == STATUS_FILE for entry in out_dir.iterdir()):
            (out_dir / STATUS_FILE).unlink(missing_ok=True)
            out_dir.rmdir()
