"""The director writes only the metadata keys draftmeta declares, with the JSON shape the renderer reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemowatch.api.draft import TRACK_AUDIO, TRACK_TEXT, TRACK_VIDEO
from nemowatch.local import draftmeta as dm
from nemowatch.local.director import direct
from nemowatch.local.media import MediaItem

_SEGMENT = {
    TRACK_VIDEO: dm.VideoSegmentMeta,
    TRACK_AUDIO: dm.AudioSegmentMeta,
    TRACK_TEXT: dm.TextSegmentMeta,
}
_TRACK = {TRACK_VIDEO: dm.VideoTrackMeta, TRACK_AUDIO: dm.AudioTrackMeta, TRACK_TEXT: dm.TextTrackMeta}


def _media() -> list[MediaItem]:
    here = Path("/nonexistent")
    return [
        MediaItem("p1", "beach.jpg", here / "beach.jpg", "image", 1600, 1200),
        MediaItem("c1", "waves.mp4", here / "waves.mp4", "video", 1280, 720, 8.0, has_audio=True),
        MediaItem("l1", "logo.png", here / "logo.png", "image", 400, 400, has_alpha=True),
        MediaItem("s1", "song.mp3", here / "song.mp3", "audio", duration_s=30.0),
    ]


def _declared(meta: dict[str, Any], kind: type) -> None:
    assert set(meta) <= set(kind.__annotations__), (kind.__name__, set(meta) - set(kind.__annotations__))


def test_every_metadata_key_the_director_writes_is_declared() -> None:
    drafts = [
        direct(
            "A 12 second promo with captions, warm look, slide transitions. Shop now",
            _media(),
            None,
            title_hint="x",
        ),
        direct("A 9 second video about a new shoe, lo-fi music", [], None, title_hint="x"),
    ]
    for direction in drafts:
        draft = direction.draft
        assert draft is not None
        _declared(draft["m"], dm.DraftMeta)
        if draft["m"]["logo"] is not None:
            _declared(draft["m"]["logo"], dm.MediaRefMeta)
        for track in draft["t"]:
            _declared(track["m"], _TRACK[track["tt"]])
            for segment in track["sg"]:
                _declared(segment["m"], _SEGMENT[track["tt"]])


def test_the_readers_give_an_empty_metadata_for_a_draft_without_one() -> None:
    assert dm.read(dm.DraftMeta, {}) == {}
    assert dm.read(dm.VideoSegmentMeta, {"m": "not an object"}) == {}
