"""The director's second layer: a plan and the session's media → the draft's timeline.

Pure arithmetic on the draft contract: every time a multiple of 100 ms, shots that fill the
length exactly, text inside its shot's window. ``build`` returns the draft with what the reply
needs to say about it (counts, the song, the logo) and notes (``wording.Note`` codes) on what
could not be done as asked; it words nothing itself.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from nemowatch.api.draft import TRACK_AUDIO, TRACK_TEXT, TRACK_VIDEO
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
)
from nemowatch.local.intent import prettify
from nemowatch.local.media import MediaItem
from nemowatch.local.plan import MAX_DURATION_MS, VOLUME_ALONE, Plan
from nemowatch.local.vocabulary import MOOD, SIZES, palette
from nemowatch.local.wording import Note, Phrase, seconds_text

FPS = 30
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
MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right")
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
class _Shot:
    """One video segment before timing: a photo, a clip or a card."""

    kind: str  # "image" | "video" | "card"
    item: MediaItem | None
    pref: int
    cap: int
    text: str = ""
    logo: bool = False


@dataclass(frozen=True)
class Timeline:
    """The draft built from a plan, and what the reply needs to say about it."""

    draft: dict[str, Any]
    notes: list[Note]  # what could not be done as asked, in the order it came up
    photos: int  # distinct photos used
    clips: int  # distinct clips used
    cards: int  # title cards of a video without photos or clips (else 0)
    captions: int  # caption segments placed
    music_src: MediaItem | None  # the user's song; None: a generated bed, or no music
    logo: MediaItem | None
    keep_audio: bool  # some clip plays its own sound


def build(plan: Plan, media: list[MediaItem]) -> Timeline:
    """The whole draft from a plan and the media, with timing that obeys the draft contract, and
    what the reply needs to say about it."""
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
    transition_ms = TRANSITION_MS[plan.pace] if plan.transition else 0

    shots = _shots(plan, visuals, logo)
    transition_ms = _clip_limited(shots, transition_ms)
    total = (
        plan.duration_ms if plan.duration_ms is not None else _default_duration(shots, visuals, transition_ms)
    )
    shots, total, notes = _fit_shot_count(plan, shots, visuals, total, transition_ms)
    transition_ms = _transition_for(shots, total, transition_ms)
    lengths = _allocate(shots, total, transition_ms)

    video_segments, keep_audio = _video_segments(plan, shots, lengths, transition_ms)
    total = video_segments[-1]["st"] + video_segments[-1]["d"]

    used = {s.item.id: s.item for s in shots if s.item is not None}.values()
    photos = sum(1 for m in used if m.kind == "image")
    clips = sum(1 for m in used if m.kind == "video")
    cards = sum(1 for s in shots if s.kind == "card") if not visuals else 0
    video_meta: VideoTrackMeta = {"name": _video_track_name(photos, clips, cards)}
    video_track = {"tt": TRACK_VIDEO, "m": video_meta, "sg": video_segments}
    all_tracks: list[dict[str, Any]] = [video_track]
    audio_track, music_src = _audio_track(plan, audio_files, total, keep_audio)
    if audio_track:
        all_tracks.append(audio_track)
    text_tracks, captions, caption_notes = _text_tracks(plan, shots, video_segments, transition_ms, visuals)
    all_tracks += text_tracks
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
    draft = {"d": total, "m": draft_meta, "t": all_tracks}
    return Timeline(draft, notes + caption_notes, photos, clips, cards, captions, music_src, logo, keep_audio)


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
    plan: Plan, shots: list[_Shot], visuals: list[MediaItem], total: int, transition_ms: int
) -> tuple[list[_Shot], int, list[Note]]:
    """Repeat the media when they cannot fill the length; drop some when the length cannot hold them.

    Returns the shots, the length (which only shrinks when even repeated clips cannot fill it)
    and notes on what was dropped or shortened.
    """
    notes: list[Note] = []
    end = [s for s in shots if s.kind == "card" and visuals]
    body = [s for s in shots if s not in end]
    room = max(1, total // MIN_VISIBLE_MS)
    if len(body) + len(end) > room:
        keep = max(1, room - len(end))
        if keep < len(body) and visuals:
            kinds = {s.kind for s in body}
            noun = "media_both" if len(kinds) > 1 else "media_clips" if kinds == {"video"} else "media_photos"
            notes.append(Note("first_of", {"keep": keep, "total": len(body), "noun": Phrase(noun)}))
        body = body[:keep]
        if len(body) + len(end) > room:
            end = []
    if not visuals:
        return body + end, total, notes
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
        notes.append(Note("clips_fill", {"seconds": seconds_text(total)}))
    return body + end, total, notes


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


def _video_segments(
    plan: Plan, shots: list[_Shot], lengths: list[int], transition_ms: int
) -> tuple[list[dict[str, Any]], bool]:
    """The video track's segments, each overlapping the one before by the transition, and whether
    any clip keeps its own sound."""
    keep_audio = False
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
            keep_audio = keep_audio or meta["keep_audio"]
        else:
            meta["colors"] = list(colors[index % len(colors)])
            meta["logo"] = shot.logo
        video_segments.append({"st": start, "d": length, "m": meta})
        start += length - transition_ms
    return video_segments, keep_audio


def _video_track_name(photos: int, clips: int, cards: int) -> str:
    """The video track's name in the timeline summary (English, like the whole summary)."""
    if cards:
        return W.count(W.EN, cards, "title card")
    parts = [W.count(W.EN, clips, "clip")] if clips else []
    if photos:
        parts.append(W.count(W.EN, photos, "photo"))
    return ", ".join(parts)


def _audio_track(
    plan: Plan, audio_files: list[MediaItem], total: int, keep_audio: bool
) -> tuple[dict[str, Any] | None, MediaItem | None]:
    """The music: the job's own file unless a generated bed was asked for, ducked under clip sound;
    and that file (None: a generated bed, or no music)."""
    if plan.music == "off":
        return None, None
    source = audio_files[0] if audio_files and plan.music != "generated" else None
    if source is None and plan.music == "auto":
        return None, None
    volume = plan.volume
    if volume is None:
        volume = VOLUME_WITH_CLIP_AUDIO if keep_audio else VOLUME_ALONE
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
    return {"tt": TRACK_AUDIO, "m": track_meta, "sg": [{"st": 0, "d": total, "m": meta}]}, source


def _text_tracks(
    plan: Plan,
    shots: list[_Shot],
    video: list[dict[str, Any]],
    transition_ms: int,
    visuals: list[MediaItem],
) -> tuple[list[dict[str, Any]], int, list[Note]]:
    """Title, captions and end-card text, each inside its shot's own window (never past ``d``);
    the number of captions placed, and a note when there were none to place."""
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
        return out, 0, []

    end_index = len(shots) - 1 if shots[-1].kind == "card" else None
    body_end = video[end_index]["st"] if end_index is not None else total
    if plan.show_title and plan.title:
        # The title leaves before the end card, which carries its own text.
        title_end = min(TITLE_MS, body_end if body_end >= 1_000 else total)
        out.append(track("Title", "title", [segment(0, title_end, plan.title, "center")]))
    placed = 0
    notes: list[Note] = []
    if plan.captions:
        captions, notes = _captions(plan, [s.item for s in shots if s.item is not None])
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
        placed = len(segs)
    if end_index is not None:
        text = shots[end_index].text
        position = "bottom" if shots[end_index].logo else "center"
        out.append(track("End card", "endcard", [segment(*window(end_index), text, position)]))
    return out, placed, notes


def _captions(plan: Plan, items: list[MediaItem]) -> tuple[dict[str, str], list[Note]]:
    """A caption per media item: its readable file name, else the next description sentence;
    a note when no item got one."""
    lines = iter(plan.lines)
    out: dict[str, str] = {}
    for item in items:
        if item.id in out:
            continue
        name = caption_from_name(item.name)
        text = name or next(lines, None)
        if text:
            out[item.id] = text
    return out, [] if out else [Note("no_captions")]


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
