"""The write-ahead protocol: every journal step a job goes through, its key, its value, and its readers.

The pipeline records each step in the journal *before* it takes it ("…ing") and again after
("…ed"), so a restarted daemon knows what may have happened (daemon/pipeline.py says what it
does with that). This module is the one place that knows the steps: a key builder per step kind,
a typed value per step (with its JSON form), the rule ``nemowatch retry`` applies to them
(:func:`unfinished`), and the readers that turn a job's steps back into result.json's facts
(:class:`Recorded`). Writer and reader use the same names, so they cannot drift; adding a step
kind means adding it here.

The stored form must not change: the key strings and JSON values below are what existing
journals hold, and a daemon of this version resumes them.

=============================  ==========================================  ===================
key                            value                                       written
=============================  ==========================================  ===================
``run``                        {started_at, credits_before}                 the job's first run
``session``                    {task_id, session_id}                        after it is created
``upload:<relpath>``           {done: false}, then {done: true, bytes}      before, after
``message:<i>:sending``        {draft_hash_before}                          before the send
``message:<i>:sent``           {reply, completed[, recovered]}              after
``render:<i>:submitting``      {render_id, timeline}                        before the submit
``render:<i>:submitted``       {render_id, timeline}                        after
``render:<i>:failed``          {render_id, error}                           the one resubmit
``render:<i>:done``            {render_id, url}                             when it completed
``download:<i>``               {file, width, height, duration_s, bytes}     the video is placed
``outbox``                     {written: true}                              result.json written
``waiting``                    {since}                                      a passing fault's patience
=============================  ==========================================  ===================

``<i>`` is the message index (0-based). ``message:<i>:returned`` and ``render:<i>:returned`` are
never journaled: they name the instant a call returned, for the pipeline's checkpoint hook.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

# A step value's field that is left out of the stored JSON while it holds its default: the stored
# form of the steps predates the typed values, and a record keeps exactly the keys it always had.
_OMIT = "omit"
_OMITTED_AT_DEFAULT: dict[str, bool] = {_OMIT: True}

StepJSON = Mapping[str, Any]  # a step's value as the journal stores it
AllSteps = Mapping[str, StepJSON]  # every step of a job, as ``Journal.steps`` returns them
V = TypeVar("V", bound="StepValue")


class StepValue:
    """Base of the step values: dataclasses that go to and from the journal's JSON."""

    def to_json(self) -> dict[str, Any]:
        """The value as the journal stores it."""
        assert dataclasses.is_dataclass(self)
        stored: dict[str, Any] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.metadata.get(_OMIT) and value == spec.default:
                continue
            stored[spec.name] = value
        return stored

    @classmethod
    def from_json(cls: type[V], stored: StepJSON) -> V:
        """The value from its stored JSON; keys this version does not know are ignored."""
        assert dataclasses.is_dataclass(cls)
        known = {spec.name for spec in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in stored.items() if key in known})


# -- the values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run(StepValue):
    """The job's run: when it started and the first balance seen (result.json's "credits.before")."""

    started_at: str
    credits_before: int | None = None


@dataclass(frozen=True)
class Session(StepValue):
    """The backend session the job works in."""

    task_id: str
    session_id: str


@dataclass(frozen=True)
class Upload(StepValue):
    """One media file: ``done`` false before the upload (a crash sends it again), true after."""

    done: bool
    bytes: int | None = field(default=None, metadata=_OMITTED_AT_DEFAULT)


@dataclass(frozen=True)
class Sending(StepValue):
    """A message may be on its way: the draft's fingerprint before it, to see its effect later."""

    draft_hash_before: str


@dataclass(frozen=True)
class Sent(StepValue):
    """A message's outcome: its reply; ``recovered`` when only its effect on the draft was seen."""

    reply: str
    completed: bool
    recovered: bool = field(default=False, metadata=_OMITTED_AT_DEFAULT)


@dataclass(frozen=True)
class RenderRef(StepValue):
    """A render submitted (or about to be) under ``render_id``, with the timeline it exports."""

    render_id: str
    timeline: str | None = None


@dataclass(frozen=True)
class RenderFailed(StepValue):
    """A render that failed once: the next failure of this step fails the job."""

    render_id: str
    error: str


@dataclass(frozen=True)
class RenderDone(StepValue):
    """A completed render and the link its video is downloaded from."""

    render_id: str
    url: str | None = None


@dataclass(frozen=True)
class Download(StepValue):
    """A video placed in the outbox, with the facts result.json reports."""

    file: str
    width: int
    height: int
    duration_s: float
    bytes: int


@dataclass(frozen=True)
class OutboxWritten(StepValue):
    """result.json (and FAILED.txt) are written."""

    written: bool = True


@dataclass(frozen=True)
class Waiting(StepValue):
    """Since when the job waits out a passing fault (an ISO time); progress deletes it."""

    since: str

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.since)

    def outlasted(self, patience_s: float) -> bool:
        """True once the wait has lasted ``patience_s`` (the job's patience, ``jobs.patience_h``)."""
        return time.time() - self.started.timestamp() >= patience_s


# -- the keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step(Generic[V]):
    """One journal step: its key and the type of its value."""

    key: str
    value: type[V]

    def load(self, stored: StepJSON | None) -> V | None:
        """The typed value of a stored record (None when there is none)."""
        return None if stored is None else self.value.from_json(stored)


@dataclass(frozen=True)
class Family(Generic[V]):
    """A step taken once per file or per message: ``<name>:<which>`` or ``<name>:<which>:<phase>``."""

    name: str
    phase: str | None
    value: type[V]

    def __call__(self, which: int | str) -> Step[V]:
        """The step for one message index (or one file's relative path)."""
        return Step(f"{self.name}:{which}" + (f":{self.phase}" if self.phase else ""), self.value)

    @property
    def prefix(self) -> str:
        """What every key of the family starts with."""
        return f"{self.name}:"

    def index(self, key: str) -> int | None:
        """The message index in ``key`` when it is this family's (indexed) key, else None."""
        suffix = f":{self.phase}" if self.phase else ""
        if not (key.startswith(self.prefix) and key.endswith(suffix)):
            return None
        middle = key[len(self.prefix) : len(key) - len(suffix)]
        return int(middle) if middle.isdigit() else None

    def values(self, steps: AllSteps) -> list[V]:
        """This family's recorded values, in the order of their message index."""
        found = [(index, stored) for key, stored in steps.items() if (index := self.index(key)) is not None]
        return [self.value.from_json(stored) for _, stored in sorted(found, key=lambda item: item[0])]


RUN = Step("run", Run)
SESSION = Step("session", Session)
UPLOAD = Family("upload", None, Upload)  # by the file's path relative to the job folder
SENDING = Family("message", "sending", Sending)
SENT = Family("message", "sent", Sent)
SUBMITTING = Family("render", "submitting", RenderRef)
SUBMITTED = Family("render", "submitted", RenderRef)
RENDER_FAILED = Family("render", "failed", RenderFailed)
RENDER_DONE = Family("render", "done", RenderDone)
DOWNLOAD = Family("download", None, Download)
OUTBOX = Step("outbox", OutboxWritten)
WAITING = Step("waiting", Waiting)


def message_returned(index: int) -> str:
    """The checkpoint right after a message's send returned (never journaled)."""
    return f"{SENT.name}:{index}:returned"


def render_returned(index: int) -> str:
    """The checkpoint right after a render's submit returned (never journaled)."""
    return f"{SUBMITTED.name}:{index}:returned"


# -- the rules -----------------------------------------------------------------------------------


def unfinished(steps: AllSteps) -> list[str]:
    """The keys ``nemowatch retry`` drops: write-ahead records whose step never finished.

    Dropped: a message that was ``sending`` but never ``sent`` (the user asked to send it again),
    every record of a render that is not ``done`` (it is submitted anew), the outbox (rewritten),
    the run (its start and first balance are taken afresh) and the patience clock (it starts
    again). Kept: everything that finished, so nothing the backend already has is sent again.
    """
    stale = [key for key in (OUTBOX.key, RUN.key, WAITING.key) if key in steps]
    for key in steps:
        if (index := SENDING.index(key)) is not None and SENT(index).key not in steps:
            stale.append(key)
        for render in (SUBMITTING, SUBMITTED, RENDER_FAILED):
            if (index := render.index(key)) is not None and RENDER_DONE(index).key not in steps:
                stale.append(key)
    return stale


def lost_with_session(steps: AllSteps) -> list[str]:
    """The keys a session the backend lost makes void: the session, its uploads and its messages.

    Downloaded videos and renders stay: what is already in the outbox is not made again.
    """
    return [key for key in steps if key == SESSION.key or key.startswith((UPLOAD.prefix, SENDING.prefix))]


@dataclass(frozen=True)
class Recorded:
    """What a job's steps say for result.json, read back typed."""

    run: Run | None
    session: Session | None
    submitted: list[RenderRef]  # by message index
    downloads: list[Download]  # by message index
    replies: list[str]  # by message index

    @classmethod
    def read(cls, steps: AllSteps) -> Recorded:
        return cls(
            run=RUN.load(steps.get(RUN.key)),
            session=SESSION.load(steps.get(SESSION.key)),
            submitted=SUBMITTED.values(steps),
            downloads=DOWNLOAD.values(steps),
            replies=[sent.reply for sent in SENT.values(steps)],
        )
