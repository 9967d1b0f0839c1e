"""The outbox: one folder per job holding STATUS.txt, the video, result.json, job.log, inputs/, FAILED.txt.

Interface (used by ``pipeline.py`` and ``service.py``)::

    box = Outbox(root)
    job_dir = box.reserve("shoot")                 # outbox/shoot, or shoot-2, shoot-3 … (atomic mkdir)
    job_dir, name = box.reserve_job("shoot")       # … and the job's unique name ("shoot-2"), never shortened
    box.write_status(job_dir, "uploading 3/7")     # STATUS.txt: one line, replaced atomically
    box.write_result(job_dir, {...})               # result.json: pretty JSON, replaced atomically, fsynced
    box.write_failed(job_dir, error, hint=None, inputs=None)  # FAILED.txt: what went wrong, what to do
    tmp = box.video_temp(job_dir, "shoot.mp4")     # outbox/shoot/.shoot.mp4.part (hidden, same folder)
    box.place_video(job_dir, tmp, "shoot.mp4")     # fsync + rename: the video appears only complete
    box.move_inputs(work_dir, job_dir)             # the claimed job → outbox/shoot/inputs/, byte-identical
    box.job_log_path(job_dir)                      # outbox/shoot/job.log (sink: nemowatch.logs.add_job_sink)
    box.cleanup_partials(job_dir)                  # remove our own temp files a crash left behind

Every text written here goes through ``nemowatch.logs.mask``: the token never reaches a file.
Temp files are hidden and live in the destination folder, so the final rename is atomic; only
names this module (or the API client's downloads, ``.NAME.part``) produce are ever cleaned up.
A job name too long for a folder name (255 bytes) gets a shortened folder (``fsutil.fit_name``);
the job keeps its full name in the journal, result.json and ``nemowatch status``.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import re
from pathlib import Path
from typing import Any

from nemowatch.daemon.claim import move_path
from nemowatch.errors import UserError
from nemowatch.fsutil import atomic_write, fit_name, fsync_dir, is_temp_name
from nemowatch.logs import mask

STATUS_FILE = "STATUS.txt"
RESULT_FILE = "result.json"
FAILED_FILE = "FAILED.txt"
LOG_FILE = "job.log"
INPUTS_DIR = "inputs"
# Error codes whose cure is in the dropped files (FAILED.txt then says to fix them): every other
# failure (the backend, the token, the disk, a bug) is fixed elsewhere and retried as it is.
INPUT_ERRORS = frozenset(
    {
        "bad_media",
        "bad_prompt",
        "bad_job_toml",
        "no_prompt",
        "prompt_too_long",
        "unsupported_file",
        "file_too_large",
        "not_ready_for_export",
    }
)

# Our own leftovers only: ".NAME.part" (videos, as the client downloads them) and atomic_write's temps.
_PARTIAL = re.compile(r"^\..+\.part$")


def atomic_write_text(path: Path, text: str, *, durable: bool = True, keep_claim_links: bool = False) -> Path:
    """Write ``text`` (masked) beside ``path`` under a hidden temp name, then rename it over ``path``."""
    return atomic_write(path, mask(text, keep_claim_links=keep_claim_links), durable=durable)


class Outbox:
    """Writes each job's results under ``root``; every file appears complete or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def reserve(self, job_name: str) -> Path:
        """Create ``root/<job>`` (``<job>-2``, ``-3`` … when taken) with one atomic mkdir each try."""
        return self.reserve_job(job_name)[0]

    def reserve_job(self, job_name: str) -> tuple[Path, str]:
        """:meth:`reserve`, also returning the job's unique full name (``<job>`` or ``<job>-2``).

        The folder's name is that name shortened when it would not fit (``fsutil.fit_name``): the
        number stays readable at the end, and the hash of the full name keeps long names apart.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        base = job_name.replace("/", "_").replace(os.sep, "_").strip() or "job"
        if base in (".", ".."):
            base = "job"
        n = 1
        while True:
            tail = "" if n == 1 else f"-{n}"
            candidate = self.root / fit_name(base, tail)
            try:
                candidate.mkdir()
            except FileExistsError:
                n += 1
                continue
            fsync_dir(self.root)
            return candidate, base + tail

    def write_status(self, job_dir: Path, text: str) -> Path:
        """STATUS.txt: the job's current state as one line, swapped in atomically (readers never see half)."""
        line = " ".join(text.split())
        # Not fsynced: it is rewritten at every step, and a resumed job writes it again.
        return atomic_write_text(job_dir / STATUS_FILE, line + "\n", durable=False)

    def write_result(self, job_dir: Path, data: dict[str, Any]) -> Path:
        """result.json: the outcome for scripts, pretty-printed, replaced atomically and durably."""
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        # project_url is the claim link the contract promises; the bearer token is still masked.
        return atomic_write_text(job_dir / RESULT_FILE, text + "\n", keep_claim_links=True)

    def write_failed(
        self, job_dir: Path, error: UserError | str, hint: str | None = None, inputs: Path | None = None
    ) -> Path:
        """FAILED.txt: a few plain lines saying what went wrong, what to do, and where the dropped files are."""
        if isinstance(error, UserError):
            message, hint, code = error.message, hint or error.hint, error.code
        else:
            message, code = str(error).strip().rstrip("."), None
        hint = (hint or "").strip().rstrip(".") or "see job.log in this folder for the details"
        lines = [
            f"Job {job_dir.name} failed.",
            "",
            f"What went wrong: {message}.",
            f"What to do: {hint}.",
        ]
        if code:
            lines += ["", f"Error code: {code}"]
        where = _shown(inputs, job_dir) if inputs is not None else f"{INPUTS_DIR}/"
        if code in INPUT_ERRORS:
            again = (
                f"To try again: fix the files in {where} and run `nemowatch retry {job_dir.name}`,"
                " or drop a corrected job folder into the inbox."
            )
        else:
            # Nothing in the files is wrong: only the cause above needs fixing.
            again = f"To try again once that is fixed: run `nemowatch retry {job_dir.name}`."
        lines += ["", f"The dropped files are in {where} and the full log in {LOG_FILE}.", again]
        return atomic_write_text(job_dir / FAILED_FILE, "\n".join(lines) + "\n")

    def video_temp(self, job_dir: Path, filename: str) -> Path:
        """Where a video is written before it is placed: a hidden name in the same folder."""
        return job_dir / f".{filename}.part"

    def place_video(self, job_dir: Path, tmp: Path, filename: str) -> Path:
        """Make a finished video appear under its name in one rename (copied aside first when elsewhere)."""
        final = job_dir / filename
        aside = self.video_temp(job_dir, filename)
        if tmp.parent.resolve() != job_dir.resolve():
            # Written elsewhere (another filesystem perhaps): bring it beside the target first.
            aside.unlink(missing_ok=True)  # a stale partial of ours from an earlier attempt
            tmp = move_path(tmp, aside)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(job_dir)
        return final

    def move_inputs(self, work_dir: Path, job_dir: Path) -> Path:
        """Move the claimed job's files into ``job_dir/inputs/`` unchanged (tree and mtimes kept); never deletes.

        A folder job's contents become ``inputs/``; a text job's ``NAME.txt`` becomes
        ``inputs/NAME.txt``. Ignored and conflicted files go along: nothing dropped is lost.
        Safe to call again after a crash: what already arrived is merged, never overwritten.
        """
        inputs = job_dir / INPUTS_DIR
        if work_dir.is_dir() and not work_dir.is_symlink():
            if not inputs.exists():
                move_path(work_dir, inputs)
            else:
                _merge(work_dir, inputs)
        elif os.path.lexists(work_dir):
            inputs.mkdir(exist_ok=True)
            _merge_entry(work_dir, inputs / work_dir.name)
        return inputs

    def job_log_path(self, job_dir: Path) -> Path:
        """``job_dir/job.log``; attach it with ``nemowatch.logs.add_job_sink(job_id, path)``."""
        return job_dir / LOG_FILE

    def cleanup_partials(self, job_dir: Path) -> list[Path]:
        """Remove temp files a crash left in ``job_dir`` (ours only; ``inputs/`` is never looked at)."""
        removed: list[Path] = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(job_dir):
                if (_PARTIAL.match(entry.name) or is_temp_name(entry.name)) and entry.is_file(
                    follow_symlinks=False
                ):
                    Path(entry.path).unlink(missing_ok=True)
                    removed.append(Path(entry.path))
        return removed


def _shown(path: Path, job_dir: Path) -> str:
    """``inputs/`` when the files are in this job folder, else their full path."""
    try:
        return f"{path.relative_to(job_dir).as_posix()}/"
    except ValueError:
        return str(path)


def _merge(src: Path, dst: Path) -> None:
    """Move every entry of ``src`` into the existing folder ``dst``, then drop ``src`` if emptied."""
    for entry in sorted(src.iterdir()):
        _merge_entry(entry, dst / entry.name)
    with contextlib.suppress(OSError):
        src.rmdir()


def _merge_entry(src: Path, dst: Path) -> None:
    """Move one entry to ``dst``; an identical copy already there (an interrupted move) is not duplicated."""
    if not os.path.lexists(dst):
        move_path(src, dst)
    elif src.is_dir() and not src.is_symlink() and dst.is_dir() and not dst.is_symlink():
        _merge(src, dst)
    elif src.is_file() and dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        src.unlink()
    else:
        # Different content under the same name: keep both, the newcomer under a free name.
        n = 2
        while os.path.lexists(free := dst.with_name(fit_name(dst.stem, f" ({n}){dst.suffix}"))):
            n += 1
        move_path(src, free)
