"""The local backend's director: a prompt and the session's media → a draft, and follow-up edits.

Deterministic on purpose (no model): the same prompt and files always give the same video, and
tests can pin every decision. The parsed settings live in the draft as ``m.plan`` (an extra key
the renderer ignores), so an edit changes one setting and rebuilds the whole timeline from it.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nemowatch.api.draft import (
    TRACK_AUDIO,
    TRACK_TEXT,
    TRACK_VIDEO,
    duration_ms,
    segments,
    timeline_summary,
    tracks,
)
from nemowatch.api.formats import natural_key
from nemowatch.local import wording as W
from nemowatch.local.draftmeta import (
    AudioSegmentMeta,
    AudioTrackMeta,
    DraftMeta,
    TextSegmentMeta,
    TextTrackMeta,
    VideoSegmentMeta,
    VideoTrackMeta,
    read_draft,
)
from nemowatch.local.intent import Intent, parse, prettify, unquote_whole
from nemowatch.local.media import MediaItem
from nemowatch.local.vocabulary import (
    ASPECT,
    DEFAULT_ASPECT,
    DEFAULT_HEIGHT,
    DEFAULT_MOOD,
    DEFAULT_TRANSITION,
    GRADE,
    HEIGHTS,
    MOOD,
    SIZES,
    TRANSITION,
    aspect_of,
    label,
    palette,
)

GENERATION_COST = 100
EDIT_COST = 50

FPS = 30
MIN_DURATION_MS = 3_000
MAX_DURATION_MS = 600_000
DEFAULT_MIN_MS = 6_000  # a photo video shorter than this feels like a glitch
DEFAULT_MAX_MS = 60_000
DEFAULT_CLIPS_MAX_MS = 180_000
TITLE_MS = 3_000
END_CARD_MS = 3_000
# Every time in a draft is a multiple of 100 ms: exactly 3 frames at 30 fps, so the renderer's
# frame counts add up to the draft's ``d`` with no rounding drift between segments.
UNIT_MS = 100
MIN_VISIBLE_MS = 800  # below this a shot is a flicker, so photos are dropped instead
MAX_SHOTS = 400  # repeats of very short clips stop here; the video is then shorter than asked
CLIP_MARGIN_MS = 50  # stay clear of the last, often partial, frame of a clip
# Per pace: a photo's length, a clip's longest use, a card's length, the transition.
SHOT_MS = {"normal": 3_500, "fast": 2_200, "slow": 5_000}
CLIP_CAP_MS = {"normal": 15_000, "fast": 6_000, "slow": 20_000}
CARD_MS = {"normal": 3_500, "fast": 2_500, "slow": 5_000}
TRANSITION_MS = {"normal": 700, "fast": 400, "slow": 1_000}
VOLUME_WITH_CLIP_AUDIO = 0.35
VOLUME_ALONE = 0.8
MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right")
GENERIC_HINTS = {
    "",
    "project",
    "untitled",
    "job",
    "video",
    "new folder",
    "inbox",
    "prompt",
    "test",
    "my video",
}
_LOGO_NAME = re.compile(
    r"^(?:logo|brand)|watermark|[\s_.-](?:logo|brand)(?:[\s_.-]|$)|水印|标志|商标", re.IGNORECASE
)
# A copy mark at the end of a name. Each run of separators is tried from its first character
# only: a start inside it fails as the first did, and trying them all was quadratic.
_COPY_MARK = re.compile(r"(?<!\s)\s*\(\d+\)$|(?<![\s_-])[\s_-]+(?:copy|edit(?:ed)?|final)$", re.IGNORECASE)
_CAMERA_NAME = re.compile(
    r"(?:[a-z]{0,8}|whatsapp (?:image|video)|screen ?shot|photo|image|picture|video)[\s_.-]*\d[\d\s_.:at-]*"
    r"|[0-9a-f]{8,}(?:-[0-9a-f]{4,})*|[a-z]{1,2}|[\d\s_.-]+"
    r"|(?:clip|video|movie|photo|image|picture|pic|img|untitled|file|scan|export|output|final|new|test)s?",
    re.IGNORECASE,
)


@dataclass
class Direction:
    """What one message did: the new draft (None: unchanged), the reply, and its credit cost."""

    draft: dict[str, Any] | None
    reply: str
    cost: int


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
        if self.pace not in SHOT_MS:
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


@dataclass
class _Shot:
    """One video segment before timing: a photo, a clip or a card."""

    kind: str  # "image" | "video" | "card"
    item: MediaItem | None
    pref: int
    cap: int
    text: str = ""
    logo: bool = False


@dataclass
class _Built:
    draft: dict[str, Any]
    notes: list[str]
    lang: str = W.EN  # the language of the reply and its notes (the message's)
    photos: int = 0
    clips: int = 0
    cards: int = 0
    captions: int = 0
    music_src: MediaItem | None = None
    logo: MediaItem | None = None
    keep_audio: bool = False


def direct(text: str, media: list[MediaItem], draft: dict[str, Any] | None, *, title_hint: str) -> Direction:
    """Turn one message into a new draft (or none), a plain-words reply and its cost."""
    text = unquote_whole(text or "")
    intent = parse(text)
    if draft is None:
        return _generate(intent, media, title_hint)
    return _edit(intent, media, draft, title_hint)


# ---------------------------------------------------------------- generation


def _generate(intent: Intent, media: list[MediaItem], title_hint: str) -> Direction:
    visuals = [m for m in media if m.kind in ("image", "video")]
    hint = prettify(title_hint) if title_hint.strip().lower() not in GENERIC_HINTS else ""
    if not visuals and not _has_content(intent, hint):
        return Direction(draft=None, reply=W.say(intent.language, "nothing_to_make"), cost=0)
    plan = _plan_from_intent(intent, text_mode=not visuals, hint=hint)
    built = _build(plan, media, intent.language)
    reply = _generation_reply(plan, built)
    return Direction(draft=built.draft, reply=reply, cost=GENERATION_COST)


def _has_content(intent: Intent, hint: str) -> bool:
    """Whether a media-less message describes something to make title cards about."""
    if intent.subject or intent.lines or intent.title:
        return True
    return bool(hint) and not (intent.export and not intent.asks_for_anything())


def _plan_from_intent(intent: Intent, *, text_mode: bool, hint: str) -> Plan:
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


# ---------------------------------------------------------------- edits


def _edit(intent: Intent, media: list[MediaItem], draft: dict[str, Any], title_hint: str) -> Direction:
    lang = intent.language  # replies follow the message, the video keeps its own language
    if not intent.asks_for_anything():
        if intent.export:
            return Direction(None, W.say(lang, "ready"), 0)
        return Direction(None, W.say(lang, "no_change_found", help=W.say(lang, "help")), 0)
    old = _plan_of(draft, title_hint)
    new, notes = _apply(intent, copy.deepcopy(old), draft)
    built = _build(new, media, lang)
    changes = _describe_changes(old, new, built, draft)
    if _same_timeline(built.draft, draft):
        return Direction(None, W.say(lang, "unchanged"), 0)
    if not changes:
        changes = [W.say(lang, "rebuilt")]
    reply = _with_notes(changes + notes + built.notes, lang) + "\n\n" + timeline_summary(built.draft)
    return Direction(built.draft, reply, EDIT_COST)


def _same_timeline(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Drafts equal apart from the stored plan."""
    strip = [copy.deepcopy(a), copy.deepcopy(b)]
    for d in strip:
        if isinstance(d.get("m"), dict):
            d["m"].pop("plan", None)
    return strip[0] == strip[1]


def _apply(intent: Intent, plan: Plan, draft: dict[str, Any]) -> tuple[Plan, list[str]]:
    """Change the settings the message names; notes explain what could not be done as asked."""
    notes: list[str] = []
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
            notes.append(W.say(intent.language, "no_music_volume"))
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


def _plan_of(draft: dict[str, Any], title_hint: str) -> Plan:
    """The stored plan, or one read back from the documented draft keys (a draft made elsewhere)."""
    meta = read_draft(draft)
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


# ---------------------------------------------------------------- building the timeline


def _natural_key(item: MediaItem) -> tuple[Any, str]:
    """Natural name order: "2.jpg" before "10.jpg", case-insensitive, id as the tie-break."""
    return natural_key(item.name), item.id


def find_logo(images: list[MediaItem], *, prompt_mentions_logo: bool = False) -> MediaItem | None:
    """The logo: a file named logo*/brand*/*watermark*, else the one transparent PNG among photos.

    A transparent picture is only a logo when it is not the only picture and not one of many
    cut-outs (product shots on transparent backgrounds are common); when the prompt mentions a
    logo, a lone PNG among other formats is taken as the logo too.
    """
    ordered = sorted(images, key=_natural_key)
    for image in ordered:
        if _LOGO_NAME.search(image.name.rsplit(".", 1)[0]):
            return image
    if len(ordered) < 2:
        return None
    transparent = [i for i in ordered if i.has_alpha]
    if len(transparent) == 1:
        return transparent[0]
    pngs = [i for i in ordered if i.name.lower().endswith(".png")]
    if prompt_mentions_logo and len(pngs) == 1 and not transparent:
        return pngs[0]
    return None


def _build(plan: Plan, media: list[MediaItem], lang: str = W.EN) -> _Built:
    """The whole draft from a plan and the media, with timing that obeys the draft contract;
    notes on what could not be done as asked are in ``lang``."""
    ordered = sorted(media, key=_natural_key)
    images = [m for m in ordered if m.kind == "image"]
    logo = find_logo(images, prompt_mentions_logo=plan.logo_hint) if plan.logo else None
    # A clip shorter than 0.35 s (a blip, a broken export) cannot carry a shot of its own.
    visuals = [
        m
        for m in ordered
        if (m.kind == "image" and m is not logo)
        or (m.kind == "video" and m.duration_s * 1000 >= CLIP_MARGIN_MS + 300)
    ]
    audio_files = [m for m in ordered if m.kind == "audio"]
    notes: list[str] = []
    built = _Built(draft={}, notes=notes, logo=logo, lang=lang)
    transition_ms = TRANSITION_MS[plan.pace] if plan.transition else 0

    shots = _shots(plan, visuals, logo)
    transition_ms = _clip_limited(shots, transition_ms)
    total = (
        plan.duration_ms if plan.duration_ms is not None else _default_duration(shots, visuals, transition_ms)
    )
    shots, total = _fit_shot_count(plan, shots, visuals, total, transition_ms, built)
    transition_ms = _transition_for(shots, total, transition_ms)
    lengths = _allocate(shots, total, transition_ms)

    video_segments: list[dict[str, Any]] = []
    start = 0
    colors = palette(plan.grade, plan.mood)
    photo_index = 0
    for index, (shot, length) in enumerate(zip(shots, lengths, strict=True)):
        meta: VideoSegmentMeta = {"kind": shot.kind, "src": shot.item.id if shot.item else None}
        meta["name"] = shot.item.name if shot.item else (shot.text or "card")
        meta["motion"] = None
        if shot.kind == "image":
            meta["motion"] = MOTIONS[photo_index % len(MOTIONS)]
            photo_index += 1
        elif shot.kind == "video":
            # The middle of a clip, not its shaky start.
            meta["in_ms"] = max(0, (shot.cap - length) // 2 // UNIT_MS * UNIT_MS)
            meta["keep_audio"] = bool(shot.item and shot.item.has_audio and plan.clip_audio)
            built.keep_audio = built.keep_audio or meta["keep_audio"]
        else:
            meta["colors"] = list(colors[index % len(colors)])
            meta["logo"] = shot.logo
        video_segments.append({"st": start, "d": length, "m": meta})
        start += length - transition_ms
    total = video_segments[-1]["st"] + video_segments[-1]["d"]

    used = {s.item.id: s.item for s in shots if s.item is not None}.values()
    built.photos = sum(1 for m in used if m.kind == "image")
    built.clips = sum(1 for m in used if m.kind == "video")
    built.cards = sum(1 for s in shots if s.kind == "card") if not visuals else 0
    video_meta: VideoTrackMeta = {"name": _video_track_name(built)}
    video_track = {"tt": TRACK_VIDEO, "m": video_meta, "sg": video_segments}
    all_tracks: list[dict[str, Any]] = [video_track]
    audio_track = _audio_track(plan, audio_files, total, built)
    if audio_track:
        all_tracks.append(audio_track)
    all_tracks += _text_tracks(plan, shots, video_segments, transition_ms, visuals, built)
    draft_meta: DraftMeta = {
        "width": SIZES[(plan.aspect, plan.height)][0],
        "height": SIZES[(plan.aspect, plan.height)][1],
        "fps": FPS,
        "aspect": plan.aspect,
        "grade": plan.grade,
        "transition": plan.transition if transition_ms else None,
        "transition_ms": transition_ms,
        "logo": {"src": logo.id, "name": logo.name} if logo else None,
        "title": plan.title,
        "plan": asdict(plan),
    }
    built.draft = {"d": total, "m": draft_meta, "t": all_tracks}
    return built


def _shots(plan: Plan, visuals: list[MediaItem], logo: MediaItem | None) -> list[_Shot]:
    """Photos and clips in name order, or title cards when there are none, plus the end card."""
    shot_ms = plan.shot_ms or SHOT_MS[plan.pace]
    unlimited = MAX_DURATION_MS * 2
    shots: list[_Shot] = []
    for item in visuals:
        if item.kind == "image":
            shots.append(_Shot("image", item, shot_ms, unlimited))
        else:
            usable = _floor_unit(int(item.duration_s * 1000) - CLIP_MARGIN_MS)
            shots.append(_Shot("video", item, min(usable, CLIP_CAP_MS[plan.pace]), usable))
    if not visuals:
        card_ms = plan.shot_ms or CARD_MS[plan.pace]
        texts = ([plan.title] if plan.show_title else []) + plan.lines[: 4 if plan.end_text or logo else 5]
        if not texts:
            texts = [plan.title]
        if len(texts) + 1 < 3 or plan.end_text or logo:
            texts.append(plan.end_text or _closing_line(plan))
        while len(texts) < 3:
            texts.insert(1, _middle_line(plan))
        shots = [_Shot("card", None, card_ms, unlimited, text=t) for t in texts]
        shots[-1].logo = logo is not None
        return shots
    if logo is not None or plan.end_text:
        # The end card holds about 3 s whatever the length; the photos absorb the rest.
        end_cap = END_CARD_MS + 2 * TRANSITION_MS[plan.pace]
        shots.append(
            _Shot("card", None, END_CARD_MS, end_cap, text=plan.end_text or plan.title, logo=logo is not None)
        )
    return shots


def _closing_line(plan: Plan) -> str:
    """The last card when the prompt gave no call to action, in the prompt's language."""
    promo = plan.mood == "upbeat" and plan.transition
    if plan.language == "zh":
        return "现已上市" if promo else "感谢观看"
    return "Available now" if promo else "Thanks for watching"


def _middle_line(plan: Plan) -> str:
    """A card between title and ending when the prompt describes nothing more than its subject."""
    return f"隆重推出{plan.title}" if plan.language == "zh" else f"Introducing {plan.title}"


def _default_duration(shots: list[_Shot], visuals: list[MediaItem], transition_ms: int) -> int:
    """The media's own length: about 3.5 s a photo (6-60 s), clips at their length up to a cap."""
    # A photo's 3.5 s is what shows on its own; a clip's length includes the overlaps it shares.
    clips = sum(1 for s in shots if s.kind == "video")
    natural = sum(s.pref for s in shots) - transition_ms * min(len(shots) - 1, clips)
    has_stills = any(s.kind != "video" for s in shots if not s.logo)
    if has_stills:
        return _floor_unit(int(min(max(natural, DEFAULT_MIN_MS), DEFAULT_MAX_MS)))
    return _floor_unit(int(min(max(natural, 1_000), DEFAULT_CLIPS_MAX_MS)))


def _floor_unit(ms: int) -> int:
    return max(0, ms) // UNIT_MS * UNIT_MS


def _fit_shot_count(
    plan: Plan, shots: list[_Shot], visuals: list[MediaItem], total: int, transition_ms: int, built: _Built
) -> tuple[list[_Shot], int]:
    """Repeat the media when they cannot fill the length; drop some when the length cannot hold them.

    Returns the shots and the length, which only shrinks when even repeated clips cannot fill it.
    """
    end = [s for s in shots if s.kind == "card" and visuals]
    body = [s for s in shots if s not in end]
    room = max(1, total // MIN_VISIBLE_MS)
    if len(body) + len(end) > room:
        keep = max(1, room - len(end))
        if keep < len(body) and visuals:
            kinds = {s.kind for s in body}
            noun = "media_both" if len(kinds) > 1 else "media_clips" if kinds == {"video"} else "media_photos"
            built.notes.append(
                W.say(built.lang, "first_of", keep=keep, total=len(body), noun=W.say(built.lang, noun))
            )
        body = body[:keep]
        if len(body) + len(end) > room:
            end = []
    if not visuals:
        return body + end, total
    cycle = list(body)
    target_shot = (plan.shot_ms or SHOT_MS[plan.pace]) * 1.3

    def capacity() -> int:
        count = len(body) + len(end)
        return sum(min(s.cap, MAX_DURATION_MS) for s in body + end) - transition_ms * (count - 1)

    # Clips alone may be too short for the asked length, and a faster pace wants more cuts.
    while len(body) < MAX_SHOTS:
        count = len(body) + len(end)
        short = capacity() < total
        wants_more = (
            plan.pace == "fast"
            and plan.duration_ms is not None
            and total / count > target_shot
            and count + 1 <= room
        )
        if not short and not wants_more:
            break
        body.append(copy.copy(cycle[len(body) % len(cycle)]))
    if capacity() < total:
        total = max(1_000, _floor_unit(capacity()))
        built.notes.append(W.say(built.lang, "clips_fill", seconds=_seconds_text(total)))
    return body + end, total


def _transition_for(shots: list[_Shot], total: int, transition_ms: int) -> int:
    """Shorten the transition for short shots, so every shot still shows on its own for a while."""
    if not transition_ms or len(shots) < 2:
        return 0 if len(shots) < 2 else transition_ms
    limit = _floor_unit(int(total / len(shots) * 0.3))
    limit = min(limit, _clip_limited(shots, transition_ms))
    return min(transition_ms, limit) if limit >= 100 else 0


def _clip_limited(shots: list[_Shot], transition_ms: int) -> int:
    """A transition no clip is too short for: each clip must outlast the overlaps on both sides."""
    shortest = min((s.cap for s in shots if s.kind == "video"), default=None)
    if shortest is None or not transition_ms:
        return transition_ms
    limit = _floor_unit((shortest - 200) // 2)
    return min(transition_ms, limit) if limit >= 100 else 0


def _allocate(shots: list[_Shot], total: int, transition_ms: int) -> list[int]:
    """Shot lengths (ms) that sum to ``total + overlaps`` exactly, near each shot's preference.

    Each length is ``clamp(pref * f, low, cap)``; a bisection finds the scale ``f``. Lengths are
    whole units (100 ms); units left over by rounding go to shots with room, first to last, so
    the draft's ``d`` is exactly ``total``.
    """
    need = (total + transition_ms * (len(shots) - 1)) // UNIT_MS
    # At least both overlaps plus a moment alone on screen; clips can give no more than they hold.
    caps = [max(1, s.cap // UNIT_MS) for s in shots]
    lows = [
        min((2 * transition_ms + 400) // UNIT_MS, max((2 * transition_ms + 100) // UNIT_MS, c - 1))
        for c in caps
    ]
    caps = [max(c, low) for c, low in zip(caps, lows, strict=True)]
    prefs = [s.pref / UNIT_MS for s in shots]

    def lengths(scale: float) -> list[float]:
        return [min(max(p * scale, low), cap) for p, low, cap in zip(prefs, lows, caps, strict=True)]

    low_f, high_f = 0.0, 1.0
    while sum(lengths(high_f)) < need and high_f < 1e6:
        high_f *= 2
    for _ in range(60):
        mid = (low_f + high_f) / 2
        if sum(lengths(mid)) < need:
            low_f = mid
        else:
            high_f = mid
    result = [math.floor(x) for x in lengths(high_f)]
    diff = need - sum(result)
    for _ in range(2):  # two passes: the first may stop at bounds the second can still use
        for i in range(len(result)):
            if diff == 0:
                break
            room = caps[i] - result[i] if diff > 0 else result[i] - lows[i]
            move = min(max(room, 0), abs(diff)) * (1 if diff > 0 else -1)
            result[i] += move
            diff -= move
    result[-1] += diff  # non-zero only when every shot sits at a bound; keeps d exact regardless
    return [units * UNIT_MS for units in result]


def _video_track_name(built: _Built) -> str:
    if built.cards:
        return W.count(W.EN, built.cards, "title card")
    parts = [W.count(W.EN, built.clips, "clip")] if built.clips else []
    if built.photos:
        parts.append(W.count(W.EN, built.photos, "photo"))
    return ", ".join(parts)


def _audio_track(
    plan: Plan, audio_files: list[MediaItem], total: int, built: _Built
) -> dict[str, Any] | None:
    """The music: the job's own file unless a generated bed was asked for, ducked under clip sound."""
    if plan.music == "off":
        return None
    source = audio_files[0] if audio_files and plan.music != "generated" else None
    if source is None and plan.music == "auto":
        return None
    built.music_src = source
    volume = plan.volume
    if volume is None:
        volume = VOLUME_WITH_CLIP_AUDIO if built.keep_audio else VOLUME_ALONE
    source_ms = int(source.duration_s * 1000) if source else 0
    meta: AudioSegmentMeta = {
        "src": source.id if source else None,
        "mood": plan.mood,
        "in_ms": 0,
        "fade_in_ms": min(1_000, _floor_unit(total // 4)),
        "fade_out_ms": min(2_000, _floor_unit(total // 4)),
        "loop": bool(source and source_ms < total),
    }
    name = (
        display_name(source.name)
        if source
        else (MOOD[plan.mood].track_name if plan.mood in MOOD else "Music")
    )
    track_meta: AudioTrackMeta = {"name": name, "role": "bgm", "volume": volume}
    return {"tt": TRACK_AUDIO, "m": track_meta, "sg": [{"st": 0, "d": total, "m": meta}]}


def _text_tracks(
    plan: Plan,
    shots: list[_Shot],
    video: list[dict[str, Any]],
    transition_ms: int,
    visuals: list[MediaItem],
    built: _Built,
) -> list[dict[str, Any]]:
    """Title, captions and end-card text, each inside its shot's own window (never past ``d``)."""
    total = video[-1]["st"] + video[-1]["d"]
    half = _floor_unit(transition_ms // 2)

    def window(i: int) -> tuple[int, int]:
        start = video[i]["st"] + (half if i > 0 else 0)
        end = video[i]["st"] + video[i]["d"] - (half if i < len(video) - 1 else 0)
        return start, min(end, total)

    def segment(start: int, end: int, text: str, position: str) -> dict[str, Any]:
        meta: TextSegmentMeta = {"text": text, "position": position}
        return {"st": start, "d": end - start, "m": meta}

    def track(name: str, role: str, segs: list[dict[str, Any]]) -> dict[str, Any]:
        meta: TextTrackMeta = {"name": name, "role": role}
        return {"tt": TRACK_TEXT, "m": meta, "sg": segs}

    out: list[dict[str, Any]] = []
    if not visuals:  # title cards: the first is the title, the last the end card, the rest in between
        texts = [(i, s.text) for i, s in enumerate(shots)]
        first = 0 if plan.show_title else None
        last = (
            len(shots) - 1
            if len(shots) > 1 and (plan.end_text or shots[-1].logo or len(shots) >= 3)
            else None
        )
        if first is not None:
            out.append(track("Title", "title", [segment(*window(0), texts[0][1], "center")]))
        middle = [segment(*window(i), t, "center") for i, t in texts if i not in (first, last)]
        if middle:
            out.append(track("Cards", "caption", middle))
        if last is not None:
            position = "bottom" if shots[-1].logo else "center"
            out.append(track("End card", "endcard", [segment(*window(last), texts[last][1], position)]))
        return out

    end_index = len(shots) - 1 if shots[-1].kind == "card" else None
    body_end = video[end_index]["st"] if end_index is not None else total
    if plan.show_title and plan.title:
        # The title leaves before the end card, which carries its own text.
        title_end = min(TITLE_MS, body_end if body_end >= 1_000 else total)
        out.append(track("Title", "title", [segment(0, title_end, plan.title, "center")]))
    if plan.captions:
        captions = _captions(plan, [s.item for s in shots if s.item is not None], built)
        segs = []
        for i, shot in enumerate(shots):
            text = captions.get(shot.item.id) if shot.item else None
            if not text:
                continue
            start, end = window(i)
            # Captions sit at the bottom, the title in the centre: they may share the first seconds.
            if end - start >= 700:
                segs.append(segment(start, end, text, "bottom"))
        if segs:
            out.append(track("Captions", "caption", segs))
        built.captions = len(segs)
    if end_index is not None:
        text = shots[end_index].text
        position = "bottom" if shots[end_index].logo else "center"
        out.append(track("End card", "endcard", [segment(*window(end_index), text, position)]))
    return out


def _captions(plan: Plan, items: list[MediaItem], built: _Built) -> dict[str, str]:
    """A caption per media item: its readable file name, else the next description sentence."""
    lines = iter(plan.lines)
    out: dict[str, str] = {}
    for item in items:
        if item.id in out:
            continue
        name = caption_from_name(item.name)
        text = name or next(lines, None)
        if text:
            out[item.id] = text
    if not out:
        built.notes.append(W.say(built.lang, "no_captions"))
    return out


def _stem(name: str) -> str:
    """A file name without extension, ordering prefix ("01_") or copy marks ("(1)", "-final")."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = _COPY_MARK.sub("", stem)
    return re.sub(r"^\d{1,3}[\s._-]+(?=\D)", "", stem).strip()


def display_name(name: str) -> str:
    """A file's readable name for summaries ("02 summer_vibes.mp3" → "Summer Vibes")."""
    return prettify(_stem(name)) or prettify(name)


def caption_from_name(name: str) -> str | None:
    """A caption from a file name, or None for camera names (IMG_1234, DSC0001, PXL_2024…) and bare numbers."""
    stem = _stem(name)
    if not stem or _CAMERA_NAME.fullmatch(stem):
        return None
    pretty = prettify(stem)
    return pretty if len(pretty) >= 3 else None


# ---------------------------------------------------------------- replies


def _seconds_text(ms: int) -> str:
    secs = ms / 1000
    return str(int(secs)) if secs == int(secs) else f"{secs:.1f}"


def _music_phrase(plan: Plan, built: _Built) -> str | None:
    audio = [t for t in tracks(built.draft) if t.get("tt") == TRACK_AUDIO]
    if not audio:
        return None
    if built.music_src is not None:
        return W.say(built.lang, "your_music", name=display_name(built.music_src.name))
    mood = label(MOOD, built.lang, plan.mood)
    return W.say(built.lang, "music_bed", article="an" if mood[:1] in "aeiou" else "a", mood=mood)


def _generation_reply(plan: Plan, built: _Built) -> str:
    """What was made, in plain words and the message's language, then the timeline summary."""
    draft, lang = built.draft, built.lang
    meta = draft["m"]
    size = W.say(lang, "size", seconds=_seconds_text(draft["d"]), aspect=plan.aspect)
    if plan.height != 1080:
        size += W.say(lang, "size_height", height=plan.height)
    if built.cards:
        source = W.count(lang, built.cards, "animated title card")
    else:
        source = W.join(
            lang,
            ([W.count(lang, built.clips, "clip")] if built.clips else [])
            + ([W.count(lang, built.photos, "photo")] if built.photos else []),
        )
    features: list[str] = []
    if meta["transition"]:
        features.append(W.say(lang, "transitions", name=label(TRANSITION, lang, meta["transition"])))
    if built.photos:
        features.append(W.say(lang, "ken_burns"))
    music = _music_phrase(plan, built)
    if music:
        features.append(music)
    if built.keep_audio:
        features.append(W.say(lang, "clip_sound_under" if music else "clip_sound"))
    if plan.grade:
        features.append(W.say(lang, "look", grade=label(GRADE, lang, plan.grade)))
    if plan.show_title and not built.cards:
        features.append(W.say(lang, "title", title=plan.title))
    if built.captions:
        features.append(W.count(lang, built.captions, "caption"))
    if built.logo is not None:
        features.append(W.say(lang, "logo"))
    elif plan.end_text and not built.cards:
        features.append(W.say(lang, "end_card", text=plan.end_text))
    if built.cards:
        card_texts = [s["m"]["text"] for t in tracks(draft) if t.get("tt") == TRACK_TEXT for s in segments(t)]
        quoted = [W.say(lang, "quoted", text=text) for text in card_texts]
        features.append(W.say(lang, "card_lines", lines=W.join(lang, quoted)))
    with_features = W.say(lang, "with", items=W.join(lang, features)) if features else ""
    reply = W.say(lang, "made", size=size, source=source, features=with_features)
    return _with_notes([reply, *built.notes], lang) + "\n\n" + timeline_summary(draft)


def _with_notes(sentences: list[str], lang: str) -> str:
    """Sentences as one paragraph (Chinese runs them together, English leaves a space)."""
    return ("" if lang == W.ZH else " ").join(sentences)


def _describe_changes(old: Plan, new: Plan, built: _Built, old_draft: dict[str, Any]) -> list[str]:
    """One plain sentence per setting that changed, in the message's language."""
    lang = built.lang
    out: list[str] = []
    new_d, old_d = built.draft["d"], int(duration_ms(old_draft))
    if new_d != old_d:
        out.append(W.say(lang, "length", seconds=_seconds_text(new_d)))
    if (new.aspect, new.height) != (old.aspect, old.height):
        width, height = SIZES[(new.aspect, new.height)]
        out.append(W.say(lang, "shape", aspect=new.aspect, width=width, height=height))
    if new.transition != old.transition:
        if new.transition:
            out.append(W.say(lang, "transitions_now", name=label(TRANSITION, lang, new.transition)))
        else:
            out.append(W.say(lang, "transitions_off"))
    if new.grade != old.grade:
        if new.grade:
            out.append(W.say(lang, "look_now", grade=label(GRADE, lang, new.grade)))
        else:
            out.append(W.say(lang, "look_off"))
    music = _music_phrase(new, built)
    had_music = any(t.get("tt") == TRACK_AUDIO for t in tracks(old_draft))
    if not music and had_music:
        out.append(W.say(lang, "music_off"))
    elif music and not had_music:
        out.append(W.say(lang, "music_added", music=music))
    elif music and (new.mood != old.mood or new.music != old.music):
        out.append(W.say(lang, "music_changed", music=music))
    if new.volume != old.volume and music:
        out.append(W.say(lang, "volume", percent=round((new.volume or 0) * 100)))
    if new.clip_audio != old.clip_audio:
        out.append(W.say(lang, "clip_sound_on" if new.clip_audio else "clip_sound_off"))
    if (new.title, new.show_title) != (old.title, old.show_title):
        out.append(W.say(lang, "title_now", title=new.title) if new.show_title else W.say(lang, "title_off"))
    if new.captions != old.captions or (new.captions and new.lines != old.lines):
        if new.captions and built.captions:
            out.append(W.say(lang, "captions_added", captions=W.count(lang, built.captions, "caption")))
        elif not new.captions:
            out.append(W.say(lang, "captions_off"))
    if new.end_text != old.end_text and new.end_text:
        out.append(W.say(lang, "end_card_now", text=new.end_text))
    if new.pace != old.pace:
        out.append(W.say(lang, {"fast": "pace_fast", "slow": "pace_slow"}.get(new.pace, "pace_normal")))
    if new.logo != old.logo:
        out.append(W.say(lang, "logo_off"))
    return out
