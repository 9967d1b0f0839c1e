"""Reading a job's words: prompt.txt (split into messages) and the optional job.toml overrides."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemowatch.api.formats import ASPECTS, MAX_MESSAGE_BYTES, message_bytes, over_limit, size_text
from nemowatch.errors import UserError

OPTIONS_FILE = "job.toml"
EXPORTS = ("last", "each")
# A longer video than this is almost certainly a typo (minutes for seconds).
MAX_DURATION_S = 3600
# prompt.txt holds words: several messages of up to MAX_MESSAGE_BYTES each fit, while a larger
# file (a log or a document saved under that name) is refused without being read into memory.
MAX_PROMPT_FILE_BYTES = 1000 * 1000
# job.toml is a handful of short lines.
MAX_OPTIONS_FILE_BYTES = 64 * 1000

# A line holding only "---" (surrounding spaces allowed) separates two messages.
_SEPARATOR = re.compile(r"^[ \t]*---[ \t]*$", re.MULTILINE)
_EXAMPLE = '"a 20-second montage of these photos with calm music and the title Summer"'


@dataclass(frozen=True)
class JobOptions:
    """Per-job overrides from job.toml; None means "use the daemon's setting"."""

    language: str | None = None
    aspect: str | None = None
    duration_s: float | None = None
    export: str = "last"

    def sentence(self) -> str:
        """What the overrides ask of the video, in words appended to the first message."""
        parts = []
        if self.aspect:
            parts.append(f"Aspect {self.aspect}.")
        if self.duration_s is not None:
            secs = self.duration_s
            shown = str(int(secs)) if secs == int(secs) else f"{secs:g}"
            parts.append(f"Duration {shown} seconds.")
        return " ".join(parts)


@dataclass(frozen=True)
class JobPrompt:
    """The messages to send, in order (overrides already applied), and the options."""

    messages: list[str]
    options: JobOptions = field(default_factory=JobOptions)


def split_messages(text: str) -> list[str]:
    """The messages in a prompt: the text split at ``---`` lines, blank parts dropped."""
    parts = (part.strip() for part in _SEPARATOR.split(text.replace("\r\n", "\n").replace("\r", "\n")))
    return [part for part in parts if part]


def prompt_problem(path: Path) -> UserError | None:
    """Why ``path`` (a job's prompt.txt, or a text job's NAME.txt) is not a readable regular file in
    its folder, as a UserError saying what to do; None when it is one.

    Checked without opening it: opening a fifo named prompt.txt would block the daemon.
    """
    name = path.name
    missing = UserError(
        f"{name} is missing",
        "put a prompt.txt saying what the video should be in the job folder",
        code="bad_prompt",
    )
    try:
        link = path.lstat()
    except FileNotFoundError:
        return missing
    if stat.S_ISLNK(link.st_mode):
        folder = os.path.realpath(path.parent)
        if os.path.commonpath([folder, os.path.realpath(path)]) != folder:
            return UserError(
                f"{name} is a link to a file outside the job folder, and such links are never followed",
                f"copy the text itself into {name} instead of linking to it",
                code="bad_prompt",
            )
    try:
        st = path.stat()
    except FileNotFoundError:
        return UserError(
            f"{name} is a link to a file that does not exist",
            "replace it with a text file saying what the video should be",
            code="bad_prompt",
        )
    if stat.S_ISDIR(st.st_mode):
        return UserError(
            f"{name} is a folder, not a text file",
            f"replace the folder {name} with a text file saying what the video should be",
            code="bad_prompt",
        )
    if not stat.S_ISREG(st.st_mode):
        return UserError(
            f"{name} is not a regular file",
            "replace it with a text file saying what the video should be",
            code="bad_prompt",
        )
    if not os.access(path, os.R_OK):
        return UserError(
            f"{name} cannot be read (permission denied)",
            f"make it readable for the user nemowatch runs as (chmod a+r {name})",
            code="bad_prompt",
        )
    return None


def _read_at_most(path: Path, limit: int) -> tuple[bytes, int]:
    """The file's bytes and its size; only ``limit + 1`` bytes are read, so a larger file is found
    over the limit without being loaded (its size then comes from the file system)."""
    with path.open("rb") as file:
        data = file.read(limit + 1)
        size = max(len(data), os.fstat(file.fileno()).st_size)
    return data, size


def read_prompt(path: Path) -> list[str]:
    """Read prompt.txt (UTF-8, a BOM is fine) into its messages; a UserError when it says nothing."""
    name = path.name
    problem = prompt_problem(path)
    if problem is not None:
        raise problem
    try:
        raw, size = _read_at_most(path, MAX_PROMPT_FILE_BYTES)
    except OSError as exc:
        raise UserError(
            f"{name} cannot be read ({exc.strerror or exc})",
            "check the file, then retry the job",
            code="bad_prompt",
        ) from None
    if size > MAX_PROMPT_FILE_BYTES:
        raise UserError(
            f"prompt too long: {name} is {over_limit(size, MAX_PROMPT_FILE_BYTES)}",
            f"keep only the words for the video in {name}; each message (lines `---` separate them) "
            f"may be up to {size_text(MAX_MESSAGE_BYTES)}",
            code="prompt_too_long",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(
            f"{name} is not UTF-8 text", "save it as UTF-8 (any editor's 'UTF-8' encoding)", code="bad_prompt"
        ) from None
    messages = split_messages(text)
    if not messages:
        raise UserError(
            f"{name} is empty", f"write what the video should be, e.g. {_EXAMPLE}", code="bad_prompt"
        )
    return messages


def _option_error(key: str, why: str) -> UserError:
    return UserError(
        f"{OPTIONS_FILE}: `{key}` {why}", f"fix or remove that line in {OPTIONS_FILE}", code="bad_job_toml"
    )


def parse_options(data: dict[str, Any]) -> JobOptions:
    """Validate job.toml's table; every problem names the key and what it must be."""
    known = ("language", "aspect", "duration_s", "export")
    for key in data:
        if key not in known:
            raise _option_error(key, f"is not a known key; {OPTIONS_FILE} takes {', '.join(known)}")
    language = data.get("language")
    if language is not None and (not isinstance(language, str) or not language.strip()):
        raise _option_error("language", 'must be a language code in quotes, like "en"')
    aspect = data.get("aspect")
    if aspect is not None and aspect not in ASPECTS:
        choices = ", ".join(f'"{a}"' for a in ASPECTS)
        raise _option_error("aspect", f"must be one of {choices}, not {aspect!r}")
    duration = data.get("duration_s")
    if duration is not None:
        ok = isinstance(duration, int | float) and not isinstance(duration, bool)
        if not ok or not 0 < duration <= MAX_DURATION_S:
            raise _option_error("duration_s", f"must be a number of seconds above 0, not {duration!r}")
        duration = float(duration)
    export = data.get("export", "last")
    if export not in EXPORTS:
        raise _option_error(
            "export", f'must be "last" (one video) or "each" (a video after every message), not {export!r}'
        )
    return JobOptions(
        language=language.strip() if isinstance(language, str) else None,
        aspect=aspect,
        duration_s=duration,
        export=export,
    )


def read_options(path: Path) -> JobOptions:
    """Read job.toml when it exists; defaults otherwise."""
    if not path.exists():
        return JobOptions()
    raw, size = _read_at_most(path, MAX_OPTIONS_FILE_BYTES)
    if size > MAX_OPTIONS_FILE_BYTES:
        raise UserError(
            f"{OPTIONS_FILE} is {over_limit(size, MAX_OPTIONS_FILE_BYTES)}",
            f'write it like `aspect = "9:16"` one key a line, or delete {OPTIONS_FILE}',
            code="bad_job_toml",
        )
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise UserError(
            f"{OPTIONS_FILE} is not UTF-8 text", "save it as UTF-8", code="bad_job_toml"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"{OPTIONS_FILE} is not valid TOML ({exc})",
            f'write it like `aspect = "9:16"` one key a line, or delete {OPTIONS_FILE}',
            code="bad_job_toml",
        ) from None
    return parse_options(data)


def check_sizes(messages: list[str], name: str) -> None:
    """A UserError for the first message over MAX_MESSAGE_BYTES: found here, nothing has been sent."""
    for index, message in enumerate(messages):
        size = message_bytes(message)
        if size > MAX_MESSAGE_BYTES:
            which = f" (message {index + 1} of {len(messages)})" if len(messages) > 1 else ""
            raise UserError(
                f"prompt too long: {over_limit(size)}{which}",
                f"shorten {name} or split it into messages with a line `---` between them",
                code="prompt_too_long",
            )


def load_job_prompt(prompt: Path, job_toml: Path | None = None) -> JobPrompt:
    """The job's messages with the job.toml overrides applied to the first one, each within the size limit."""
    messages = read_prompt(prompt)
    options = read_options(job_toml) if job_toml is not None else JobOptions()
    sentence = options.sentence()
    if sentence:
        messages[0] = f"{messages[0]}\n\n{sentence}"
    # Checked as sent (the overrides included), since that is what the backend measures.
    check_sizes(messages, prompt.name)
    return JobPrompt(messages=messages, options=options)
