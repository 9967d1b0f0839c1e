"""The NemoVideo draft: the short-key timeline both backends exchange.

A draft is plain JSON. The documented short keys are ``t`` (tracks), ``tt``
(track type: 0 video, 1 audio, 7 text), ``sg`` (segments), ``d`` (duration in
ms) and ``m`` (metadata). nemowatch's local backend fills ``m`` with what its
renderer needs; the cloud fills it with whatever it likes, so every reader here
tolerates missing or unexpected keys.

Shape written by the local backend (readers other than the local renderer must
not rely on more than ``t``/``tt``/``sg``/``d``/``m``)::

    {
      "d": 30000,                                # total length, ms
      "m": {
        "width": 1920, "height": 1080, "fps": 30, "aspect": "16:9",   # 1080p default, 720p on request
        "grade": None | "warm" | "bw" | "vibrant" | "cinematic" | "cool",
        "transition": None | "fade" | "fadeblack" | "slideleft" | "wipeleft" | "zoomin" | ...,  # xfade name
        "transition_ms": 700,
        "logo": None | {"src": "<media id>", "name": "logo.png"},    # corner watermark
        "title": "Urban Dreams",                                      # for summaries and replies
      },
      "t": [
        {"tt": 0, "m": {"name": "5 photos"},
         "sg": [{"st": 0, "d": 6000,
                 "m": {"kind": "image" | "video" | "card",
                       "src": "<media id>" | None,          # None for a card
                       "name": "p1.jpg",
                       "motion": None | "zoom_in" | "zoom_out" | "pan_left" | "pan_right",  # Ken Burns (images)
                       "in_ms": 0,                          # video: where in the clip to start
                       "keep_audio": False,                 # video: mix the clip's sound (ducked under music)
                       "colors": ["#1d2b64", "#f8cdda"],     # card: moving gradient colours
                       "logo": False}}]},                   # card: show the logo large (end card)
        {"tt": 1, "m": {"name": "Lo-fi", "role": "bgm", "volume": 0.35},
         "sg": [{"st": 0, "d": 30000,
                 "m": {"src": "<media id>" | None,          # None: a generated music bed
                       "mood": "upbeat" | "calm" | "lofi" | "cinematic",
                       "in_ms": 0, "fade_in_ms": 1000, "fade_out_ms": 2000, "loop": True}}]},
        {"tt": 7, "m": {"name": "Title", "role": "title" | "caption" | "endcard"},
         "sg": [{"st": 0, "d": 3000, "m": {"text": "Urban Dreams", "position": "center" | "bottom"}}]}
      ]
    }

Times are ms from the start of the video: a segment starts at ``st`` and lasts
``d``. Consecutive video segments overlap by the transition: segment k+1's
``st`` is segment k's ``st + d - transition_ms`` (0 overlap without a
transition), and the renderer joins them with an xfade at offset ``st``. The
draft's ``d`` is the last video segment's ``st + d``.
"""

from __future__ import annotations

from typing import Any

TRACK_VIDEO = 0
TRACK_AUDIO = 1
TRACK_TEXT = 7

Draft = dict[str, Any]


def tracks(draft: Draft | None) -> list[dict[str, Any]]:
    """The draft's tracks, tolerating a missing or malformed ``t``."""
    if not isinstance(draft, dict):
        return []
    found = draft.get("t")
    if not isinstance(found, list):
        return []
    return [track for track in found if isinstance(track, dict)]


def segments(track: dict[str, Any]) -> list[dict[str, Any]]:
    """A track's segments, tolerating a missing or malformed ``sg``."""
    found = track.get("sg")
    if not isinstance(found, list):
        return []
    return [seg for seg in found if isinstance(seg, dict)]


def is_ready_for_export(draft: Draft | None) -> bool:
    """True when at least one track has a non-empty segment list (docs/api.md)."""
    return any(segments(track) for track in tracks(draft))


def json_object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """``obj[key]`` when it is a JSON object, else an empty one: drafts and answers come from outside."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    """A draft's, track's or segment's ``m`` (its metadata), or an empty one."""
    return json_object(obj, "m")


def _ms(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _seconds(ms: float) -> str:
    """Whole seconds when exact (``10``), otherwise one decimal (``2.5``)."""
    secs = ms / 1000.0
    return str(int(secs)) if secs == int(secs) else f"{secs:.1f}"


def track_span_ms(track: dict[str, Any]) -> tuple[float, float]:
    """(start, end) in ms covered by a track's segments; (0, 0) when empty."""
    spans = [
        (_ms(seg.get("st", seg.get("s", 0))), _ms(seg.get("st", seg.get("s", 0))) + _ms(seg.get("d")))
        for seg in segments(track)
    ]
    if not spans:
        return (0.0, 0.0)
    return (min(s for s, _ in spans), max(e for _, e in spans))


def duration_ms(draft: Draft | None) -> float:
    """The draft's length: ``d`` when present, otherwise the end of its longest track."""
    if isinstance(draft, dict) and isinstance(draft.get("d"), int | float) and draft["d"] > 0:
        return float(draft["d"])
    return max((track_span_ms(track)[1] for track in tracks(draft)), default=0.0)


def _label(track: dict[str, Any]) -> str:
    tt = track.get("tt")
    role = meta_of(track).get("role")
    if tt == TRACK_VIDEO:
        return "Video"
    if tt == TRACK_AUDIO:
        return "BGM" if role in (None, "bgm", "music") else "Audio"
    if tt == TRACK_TEXT:
        return {"title": "Title", "caption": "Captions", "endcard": "End card"}.get(role or "title", "Text")
    return "Track"


def _describe(track: dict[str, Any]) -> str:
    meta = meta_of(track)
    start, end = track_span_ms(track)
    span = f"{_seconds(start)}-{_seconds(end)}s"
    if track.get("tt") == TRACK_TEXT:
        texts = [str(meta_of(seg).get("text", "")).strip() for seg in segments(track)]
        texts = [text for text in texts if text]
        name = f'"{texts[0]}"' if len(texts) == 1 else (f"{len(texts)} lines" if texts else "")
    else:
        name = str(meta.get("name") or "").strip()
    extra = ""
    if track.get("tt") == TRACK_AUDIO and isinstance(meta.get("volume"), int | float):
        extra = f", {round(meta['volume'] * 100)}%"
    head = f"{_label(track)}: {name}" if name else _label(track)
    return f"{head} ({span}{extra})"


def timeline_summary(draft: Draft | None) -> str:
    """The human track summary, in the documented form.

    ``Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%)
    3. Title: "Urban Dreams" (0-3s)``
    """
    found = tracks(draft)
    noun = "track" if len(found) == 1 else "tracks"
    parts = [f"{index}. {_describe(track)}" for index, track in enumerate(found, start=1)]
    return f"Timeline ({len(found)} {noun}): " + " ".join(parts) if parts else "Timeline (0 tracks): empty"
