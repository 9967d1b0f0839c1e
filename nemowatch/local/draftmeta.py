"""The metadata (``m``) a local draft carries, as types the director writes and the renderer reads.

The draft's envelope (``d``, ``t``, ``tt``, ``sg``, ``st``) is the API's format (``api/draft.py``);
what sits in each ``m`` is the local backend's own contract between ``timeline.py`` (the writer)
and ``render.py`` (the reader). Spelled as TypedDicts, mypy checks the keys and value types the
writer puts in and the value types the reader gets out; on the wire they are the same plain JSON
objects as before. mypy does not check the key named in a ``.get("…")``;
``tests/test_draftmeta.py`` checks that the director writes only declared keys.

Every key is optional to the reader (``total=False``): a draft may come from elsewhere or from
an older version, so the renderer still checks each value it reads (``_num``, ``isinstance``)
and falls back to a default. ``read`` only gives a ``m`` its type; it copies and checks nothing.
"""

from __future__ import annotations

from typing import Any, TypedDict, TypeVar, cast

from nemowatch.api.draft import meta_of

_Meta = TypeVar("_Meta")


class MediaRefMeta(TypedDict, total=False):
    """A media file: its id in the session (``src``) and its file name, for messages."""

    src: str | None
    name: str


class DraftMeta(TypedDict, total=False):
    """The draft's own ``m``: frame size, look, the default transition, logo, title and plan."""

    width: int
    height: int
    fps: int
    aspect: str
    grade: str | None  # a vocabulary grade, None: no grade
    transition: str | None  # the default transition between video segments, None: hard cuts
    transition_ms: int
    logo: MediaRefMeta | None
    title: str
    plan: dict[str, Any]  # the director's settings (plan.Plan), which the renderer ignores


class VideoSegmentMeta(TypedDict, total=False):
    """A video segment: a photo, a clip or a gradient card."""

    kind: str  # "image" | "video" | "card"
    src: str | None  # the photo or clip; None for a card
    name: str
    motion: str | None  # a photo's Ken Burns motion: zoom_in, zoom_out, pan_left, pan_right
    in_ms: int  # where a clip starts playing
    keep_audio: bool  # mix the clip's own sound in
    colors: list[str]  # a card's two gradient colours
    logo: bool  # a card that shows the logo large
    transition: str  # this segment's transition in, instead of the draft's


class VideoTrackMeta(TypedDict, total=False):
    """The video track: its name in summaries ("3 clips, 2 photos")."""

    name: str


class AudioTrackMeta(TypedDict, total=False):
    """The music track: its name in summaries, its role and its volume (0..1, up to 2 read)."""

    name: str
    role: str
    volume: float


class AudioSegmentMeta(TypedDict, total=False):
    """A music segment: the user's song (``src``) or, without one, a bed generated for ``mood``."""

    src: str | None
    name: str
    mood: str
    in_ms: int
    fade_in_ms: int
    fade_out_ms: int
    loop: bool  # repeat a song shorter than the segment


class TextTrackMeta(TypedDict, total=False):
    """A text track: its name in summaries and its role (title, caption, endcard)."""

    name: str
    role: str


class TextSegmentMeta(TypedDict, total=False):
    """One text on screen and where it sits (center, bottom)."""

    text: str
    position: str


def read(kind: type[_Meta], obj: dict[str, Any]) -> _Meta:
    """A draft's, track's or segment's ``m`` typed as ``kind`` (an empty one when it has none)."""
    return cast(_Meta, meta_of(obj))
