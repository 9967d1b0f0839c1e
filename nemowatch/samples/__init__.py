"""The sample job that ships with nemowatch: four photos of lakes from dawn to night and a prompt.txt.

``nemowatch init --sample`` writes it into the inbox, and the daemon's first lines name that
command: the quickest way to see a result, with nothing but an installed nemowatch. The photos are
drawn by ``make_sample.py`` (no third-party images) and kept at about 50 kB each, so the wheel
stays small; they are package data, read through :mod:`importlib.resources`.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

from nemowatch.errors import UsageError

SAMPLE_NAME = "promo"


def write_sample(inbox: Path) -> Path:
    """Copy the sample job to ``inbox/promo`` and return that folder.

    The job is assembled in a hidden folder, which the inbox watcher ignores, and renamed into
    place, so a running daemon never sees half of it. An ``inbox/promo`` already there (a sample
    not yet taken) is refused rather than joined or renamed: a second job would cost credits twice.
    """
    target = inbox / SAMPLE_NAME
    if target.exists() or target.is_symlink():
        raise UsageError(
            f"{target} already exists (a sample dropped earlier that the daemon has not taken yet?)",
            "wait until it has been taken, or remove it",
        )
    staging = inbox / f".{SAMPLE_NAME}.{secrets.token_hex(4)}.nwtmp"
    try:
        inbox.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        try:
            for item in resources.files(__name__).joinpath(SAMPLE_NAME).iterdir():
                if item.is_file():
                    (staging / item.name).write_bytes(item.read_bytes())
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        raise UsageError(
            f"cannot write the sample job into {inbox} ({exc.strerror or exc})",
            "check that folder and its permissions, or pass another --inbox",
        ) from None
    return target


def try_it_command(inbox: Path) -> str:
    """The command line that writes the sample job into ``inbox``, ready to paste into a shell.

    Paths are absolute, and the program is the running one when it was started as ``…/nemowatch``
    (a virtual environment that is not on PATH, as in the README's quick start).
    """
    started_as = sys.argv[0] if sys.argv else ""
    program = os.path.abspath(started_as) if Path(started_as).name == "nemowatch" else "nemowatch"
    return shlex.join([program, "init", "--sample", "--inbox", os.path.abspath(inbox)])
