"""The director's first layer: the settings a video is built from (``Plan``), from a message or an edit.

A plan is everything the timeline depends on and nothing about how it came out: ``timeline.py``
builds the draft from it, ``reply.py`` words what changed. It is stored in the draft as
``m.plan`` (an extra key the renderer ignores), so an edit changes one setting and rebuilds the
whole timeline from it. What could not be done as asked is returned as ``wording.Note`` codes,
worded by the reply in the message's language.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from typing import Any

from nemowatch.api.draft import TRACK_AUDIO, TRACK_TEXT, duration_ms, segments, tracks
from nemowatch.local.draftmeta import DraftMeta, read
from nemowatch.local.intent import Intent, prettify
from nemowatch.local.vocabulary import (
    ASPECT,
    DEFAULT_ASPECT,
    DEFAULT_HEIGHT,
    DEFAULT_MOOD,
    DEFAULT_TRANSITION,
    GRADE,
    HEIGHTS,
    MOOD,
    aspect_of,
)
from nemowatch.local.wording import Note

# The paces a plan can have; the timeline's shot, clip, card and transition lengths are keyed by them.
PACES = ("normal", "fast", "slow")

MIN_DURATION_MS = 3_000
MAX_DURATION_MS = 600_000
VOLUME_ALONE = 0.8


@dataclass
class Plan:
    """Every setting the timeline is built from; stored in the draft as ``m.plan`` for later edits."""

    duration_ms: int | None = None  # None: follow the media (about 3.5 s a photo)
    aspect: str = DEFAULT_ASPECT
    height: int = DEFAULT_HEIGHT
    transition: str | None = None
    grade: str | None = None
    music: str = "auto"  # auto: the job's audio file if any · on: file or generated · generated · off
    mood: str = DEFAULT_MOOD
    volume: float | None = None  # None: 0.35 under clips' sound, 0.8 alone
    clip_audio: bool = True
    captions: bool = False
    lines: list[str] = field(default_factory=list)  # description sentences: captions or title cards
    title: str = ""
    show_title: bool = True
    end_text: str | None = None
    pace: str = "normal"
    shot_ms: int | None = None
    logo: bool = True
    logo_hint: bool = False  # the prompt mentions a logo file
    language: str = "en"  # "zh" when the prompt is Chinese: filler card lines follow it

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """A plan from ``m.plan``, ignoring keys it does not know (drafts outlive code versions)."""
        known = {f.name: f for f in fields(cls)}
        plan = cls(**{k: v for k, v in data.items() if k in known})
        return plan.sanitized()

    def sanitized(self) -> Plan:
        """The plan with every out-of-range value replaced by its default, so building never fails."""
        default = Plan()
        if self.aspect not in ASPECT:
            self.aspect = default.aspect
        if self.height not in HEIGHTS:
            self.height = default.height
        if self.pace not in PACES:
            self.pace = default.pace
        if self.mood not in MOOD:
            self.mood = default.mood
        if self.grade not in GRADE:
            self.grade = None
        if self.transition is not None and not isinstance(self.transition, str):
            self.transition = default.transition
        if self.music not in ("auto", "on", "generated", "off"):
            self.music = default.music
        if not isinstance(self.duration_ms, int | None):
            self.duration_ms = None
        if not isinstance(self.lines, list):
            self.lines = []
        self.lines = [str(line) for line in self.lines]
        self.title = str(self.title or "")
        return self


def plan_from_intent(intent: Intent, *, text_mode: bool, hint: str) -> Plan:
    """The settings a first message asks for (``text_mode``: no photos or clips, only title cards)."""
    plan = Plan()
    if intent.duration_s is not None:
        plan.duration_ms = _clamp_duration(intent.duration_s * 1000)
    plan.aspect = intent.aspect or DEFAULT_ASPECT
    plan.height = intent.height or DEFAULT_HEIGHT
    if intent.transition_set:
        plan.transition = intent.transition
    elif intent.promo or text_mode:
        plan.transition = DEFAULT_TRANSITION
    plan.grade = intent.grade if intent.grade_set else None
    plan.music = {True: "on", False: "off"}.get(intent.music, "auto")  # type: ignore[arg-type]
    plan.mood = intent.mood or ("cinematic" if plan.grade == "cinematic" else DEFAULT_MOOD)
    plan.clip_audio = intent.clip_audio is not False
    plan.captions = bool(intent.captions)
    plan.end_text = intent.end_text
    plan.lines = _lines_without(intent.lines, [intent.end_text, intent.title, intent.subject])
    explicit = intent.title
    if text_mode:
        plan.title = explicit or intent.subject or hint or (plan.lines.pop(0) if plan.lines else "")
    else:
        plan.title = explicit or hint or intent.subject or ""
    plan.show_title = bool(plan.title) and not intent.title_off
    plan.title = plan.title or prettify("video")
    plan.pace = intent.pace or "normal"
    if intent.shot_s is not None:
        plan.shot_ms = int(min(max(intent.shot_s, 1.0), 30.0) * 1000)
    plan.logo = intent.logo is not False
    plan.logo_hint = intent.logo is True
    plan.language = intent.language
    return plan


def _lines_without(lines: list[str], drop: list[str | None]) -> list[str]:
    """Description lines minus those repeating the title, subject or call to action."""
    gone = [d.lower() for d in drop if d]
    kept = (line for line in lines if not any(g in line.lower() or line.lower() in g for g in gone))
    return list(itertools.islice(kept, 8))  # the first 8, without comparing the rest


def _clamp_duration(ms: float) -> int:
    return int(min(max(round(ms / 100) * 100, MIN_DURATION_MS), MAX_DURATION_MS))


def apply(intent: Intent, plan: Plan, draft: dict[str, Any]) -> tuple[Plan, list[Note]]:
    """Change the settings the message names; notes explain what could not be done as asked."""
    notes: list[Note] = []
    current_ms = int(duration_ms(draft))
    if intent.duration_s is not None:
        plan.duration_ms = _clamp_duration(intent.duration_s * 1000)
    elif intent.duration_scale is not None:
        plan.duration_ms = _clamp_duration(round(current_ms * intent.duration_scale / 1000) * 1000)
    if intent.shot_s is not None:
        plan.shot_ms = int(min(max(intent.shot_s, 1.0), 30.0) * 1000)
    if intent.aspect:
        plan.aspect = intent.aspect
    if intent.height:
        plan.height = intent.height
    if intent.transition_set:
        plan.transition = intent.transition
    if intent.grade_set:
        plan.grade = intent.grade
    if intent.music is False:
        plan.music = "off"
    elif intent.mood and intent.mood != plan.mood:
        plan.mood = intent.mood
        # A mood change can only be heard on a generated bed; the user's own file has its mood.
        plan.music = "generated"
    elif (intent.music and plan.music == "off") or (intent.music and plan.music == "auto"):
        plan.music = "on"
    if intent.volume_step:
        base = plan.volume if plan.volume is not None else _current_volume(draft)
        plan.volume = round(min(max(base + intent.volume_step, 0.05), 1.0), 2)
        if plan.music == "off":
            notes.append(Note("no_music_volume"))
    if intent.clip_audio is not None:
        plan.clip_audio = intent.clip_audio
    if intent.captions is not None:
        plan.captions = intent.captions
        if intent.captions and intent.lines:
            plan.lines = _lines_without(intent.lines, [intent.title])
    if intent.title_off:
        plan.show_title = False
    elif intent.title:
        plan.title, plan.show_title = intent.title, True
    if intent.end_text:
        plan.end_text = intent.end_text
    if intent.pace:
        plan.pace = intent.pace if plan.pace == "normal" or intent.pace == plan.pace else "normal"
        plan.shot_ms = None
    if intent.logo is False:
        plan.logo = False
    return plan, notes


def _current_volume(draft: dict[str, Any]) -> float:
    for track in tracks(draft):
        volume = (track.get("m") or {}).get("volume")
        if track.get("tt") == TRACK_AUDIO and isinstance(volume, int | float):
            return float(volume)
    return VOLUME_ALONE


def plan_of(draft: dict[str, Any], title_hint: str) -> Plan:
    """The stored plan, or one read back from the documented draft keys (a draft made elsewhere)."""
    meta = read(DraftMeta, draft)
    stored = meta.get("plan")
    if isinstance(stored, dict):
        return Plan.from_dict(stored)
    plan = Plan(duration_ms=int(duration_ms(draft)) or None)
    width, height = int(meta.get("width") or 1920), int(meta.get("height") or 1080)
    plan.aspect = meta.get("aspect") or aspect_of(width, height)
    plan.height = min(HEIGHTS, key=lambda tier: abs(tier - min(width, height)))
    plan.transition = meta.get("transition")
    plan.grade = meta.get("grade")
    plan.title = str(meta.get("title") or prettify(title_hint) or "Video")
    roles = {(t.get("m") or {}).get("role"): t for t in tracks(draft) if t.get("tt") == TRACK_TEXT}
    plan.show_title = "title" in roles
    plan.captions = "caption" in roles
    audio = [t for t in tracks(draft) if t.get("tt") == TRACK_AUDIO]
    if not audio:
        plan.music = "off"
    else:
        first = (segments(audio[0]) or [{}])[0].get("m") or {}
        plan.mood = first.get("mood") or DEFAULT_MOOD
        plan.music = "auto" if first.get("src") else "generated"
    if "endcard" in roles:
        texts = [(s.get("m") or {}).get("text") for s in segments(roles["endcard"])]
        plan.end_text = next((t for t in texts if t), None)
    if "caption" in roles:
        plan.lines = [str((s.get("m") or {}).get("text")) for s in segments(roles["caption"]) if s.get("m")]
    return plan.sanitized()
