"""Draft → MP4: the local backend's renderer, one ffmpeg process per video.

The draft (see ``nemowatch/api/draft.py``) becomes a single filter graph: one leg per
video segment (photos with Ken Burns motion, clips, gradient cards), blended only where
they overlap, graded, then the logo and Pillow-rendered text composited on top, with the
music bed and any kept clip sound mixed under it. Photos are decoded and resized once with
Pillow and streamed to ffmpeg through a pipe, so ffmpeg never touches a 12-megapixel frame.
Why it is built the way it is (and what each choice saves): docs/internals.md, "The renderer".
"""

from __future__ import annotations

import math
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image

from nemowatch.api.draft import TRACK_AUDIO, TRACK_TEXT, TRACK_VIDEO, duration_ms, segments, tracks
from nemowatch.ffmpeg import MIN_MAJOR, die_with_parent, ffmpeg_exe, header_duration, read_header
from nemowatch.local import graph as g
from nemowatch.local.draftmeta import (
    AudioSegmentMeta,
    AudioTrackMeta,
    DraftMeta,
    MediaRefMeta,
    TextSegmentMeta,
    TextTrackMeta,
    VideoSegmentMeta,
    read,
)
from nemowatch.local.music import write_music_bed
from nemowatch.local.text import Placed, render_logo, render_text

# libx264 settings, shared with bench/render_bench.py's encoder floor so the two compare like for like.
# No B-frames: with mb-tree, x264 codes the B-frames of a slow, grainy pan as near-copies of their
# neighbours, and a 1 px/frame pan decodes as 0, 2, 0, 2 px steps (judder). superfast, not veryfast:
# veryfast's mb-tree starves slow sub-pixel motion the same way in P-frames (a zoom leg of grainy
# photos came out at 0.3 MB with its frame-to-frame motion jitter at 0.14 px against 0.04 before
# encoding); superfast has no mb-tree, keeps the zooms smooth (0.04-0.06 px) and is the cheaper encode.
# The price is bitrate: about 4 Mbit/s for the reference job (grainy 12 MP photos) at CRF 21.
# partitions=none: superfast still tries 8x8 and 4x4 intra prediction on every block; without it the
# reference job encodes about a tenth faster, 5% smaller, 0.06 dB lower (PSNR 49.17 -> 49.11 dB
# against the frames before encoding) and with the same zoom smoothness. 8x8dct stays: High profile.
# fmt: off
X264_ARGS = ("-c:v", "libx264", "-preset", "superfast", "-crf", "21", "-bf", "0", "-profile:v", "high",
             "-x264-params", "partitions=none")
# fmt: on
# The native AAC encoder's "fast" coder: at 160 kbit/s a music bed sounds the same as with the
# default two-loop search, which costs 0.9 s CPU per 30 s of stereo against 0.4 s.
AAC_ARGS = ("-c:a", "aac", "-aac_coder", "fast", "-b:a", "160k")
AUDIO_RATE = 48000
# ffmpeg prints progress twice a second; this long without any means it is stuck.
STALL_TIMEOUT_S = 120.0
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$|^[a-zA-Z]{3,20}$")


class RenderError(Exception):
    """A render that could not be made; ``str()`` is one short sentence for a user or a log."""


@dataclass(frozen=True)
class MediaRef:
    """A media file a draft entry points at: its id (``src``) and the name to show in errors."""

    src: str
    name: str

    @classmethod
    def of(cls, meta: MediaRefMeta | VideoSegmentMeta | AudioSegmentMeta) -> MediaRef | None:
        """The file a draft entry's ``m`` names, or None when it names none."""
        src = meta.get("src")
        if not src:
            return None
        return cls(str(src), str(meta.get("name") or src))


@dataclass(frozen=True)
class Leg:
    """One video segment placed on the output's frame grid, with what its kind needs from the draft."""

    kind: str  # "image" | "video" | "card"
    n: int  # frames
    start: int  # first output frame
    overlap: int  # frames shared with the previous leg (the transition)
    transition: str
    media: MediaRef | None = None  # the photo or clip (always set for those kinds)
    motion: str | None = None  # a photo's Ken Burns motion: zoom_in, zoom_out, pan_left, pan_right
    in_ms: float = 0.0  # where a clip starts playing
    keep_audio: bool = False  # the draft asks for the clip's own sound
    colors: tuple[str, ...] = ()  # a card's gradient (only valid colours)
    logo: bool = False  # a card that shows the logo large


@dataclass
class RenderContext:
    """What one render needs besides the draft: output size, frame count, a scratch folder, the
    media lookup, and the filter graph the command is built into."""

    width: int
    height: int
    total: int  # output frames
    tmp: Path
    resolve: Callable[[str], Path]
    graph: g.Graph = field(default_factory=g.Graph)


def _num(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _even(value: Any, default: int) -> int:
    """A frame dimension: positive and even (yuv420p needs even sizes)."""
    number = int(_num(value, default))
    return max(16, number - number % 2)


def plan_legs(draft: dict[str, Any], total: int) -> list[Leg]:
    """The video segments in time order, as frame counts, starts and transition overlaps."""
    default_transition = read(DraftMeta, draft).get("transition")
    raw = [seg for track in tracks(draft) if track.get("tt") == TRACK_VIDEO for seg in segments(track)]
    raw.sort(key=lambda seg: _num(seg.get("st"), 0.0))
    legs: list[Leg] = []
    for seg in raw:
        meta = read(VideoSegmentMeta, seg)
        n = g.frames(_num(seg.get("d"), 0.0))
        if n < 1:
            continue
        start = g.frames(_num(seg.get("st"), 0.0))
        overlap = 0
        if legs:
            prev = legs[-1]
            overlap = max(0, min(prev.start + prev.n - start, prev.n - 1, n - 1))
        transition = str(meta.get("transition") or default_transition or "fade")
        kind = str(meta.get("kind")) if meta.get("kind") in ("image", "video", "card") else "card"
        media = MediaRef.of(meta)
        if kind == "card" or media is None:
            # Only cards read their colours (and so only a card's malformed colours can fail).
            colors = tuple(c for c in (meta.get("colors") or []) if isinstance(c, str) and _COLOR.match(c))
            legs.append(
                Leg("card", n, start, overlap, transition, colors=colors, logo=bool(meta.get("logo")))
            )
            continue
        motion = meta.get("motion")
        legs.append(
            Leg(
                kind,
                n,
                start,
                overlap,
                transition,
                media=media,
                motion=motion if isinstance(motion, str) else None,
                in_ms=_num(meta.get("in_ms"), 0.0),
                keep_audio=bool(meta.get("keep_audio")),
            )
        )
    if not legs and total > 0:  # text or music only: a gradient card under everything
        legs.append(Leg("card", total, 0, 0, "fade"))
    return legs


# ---------------------------------------------------------------- stills prepared with Pillow


# EXIF orientation → the transpose that makes the stored pixels upright (what ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _load_photo(path: Path, name: str, size: tuple[int, int], detail: tuple[int, int]) -> Image.Image:
    """Open a photo upright and cover-fitted to ``size`` (scaled to cover, centre-cropped, no bars).

    The work happens in the stored orientation and only the small result is turned upright, so
    a sideways phone photo costs no full-size rotation. JPEG draft mode decodes at 1/2, 1/4 or
    1/8 scale straight from the DCT whenever that still covers ``detail``, the frame size: a
    Ken Burns canvas is up to 19% larger than the frame, but only its tightest zoom shows more
    than a frame's worth of pixels, and a 12 MP photo decodes in half the time at 1/2 scale.
    """
    try:
        with Image.open(path) as opened:  # leaving closes the file only; the loaded pixels stay
            orientation = opened.getexif().get(0x0112, 1)
            tw, th = size
            dw, dh = detail
            if orientation in (5, 6, 7, 8):  # stored sideways: cover the target turned the same way
                tw, th, dw, dh = th, tw, dh, dw
            scale = max(dw / opened.width, dh / opened.height)
            opened.draft("RGB", (math.ceil(opened.width * scale), math.ceil(opened.height * scale)))
            opened.load()
        image: Image.Image = opened
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RenderError(
            f"Could not read the photo {name} ({exc}); replace it with a valid JPEG or PNG."
        ) from exc
    if image.mode == "RGBA":  # transparent areas on a dark backdrop, not on black garbage
        backdrop = Image.new("RGBA", image.size, (12, 12, 16, 255))
        image = Image.alpha_composite(backdrop, image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    scale = max(tw / image.width, th / image.height)
    crop_w, crop_h = tw / scale, th / scale
    left, top = max(0.0, (image.width - crop_w) / 2), max(0.0, (image.height - crop_h) / 2)
    box = (left, top, min(image.width, left + crop_w), min(image.height, top + crop_h))
    # Bicubic, not Lanczos: the same sharpness at this ~2x reduction to the eye, 40% less time.
    image = image.resize((tw, th), Image.Resampling.BICUBIC, box=box)
    transpose = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return image.transpose(transpose) if transpose is not None else image


def _pan_bands(strip: Image.Image) -> list[Image.Image]:
    """The strip and the strip shifted left by one pixel: the two copies of a pan stack (graph.pan_piece)."""
    width = strip.width - 1
    return [strip.crop((0, 0, width, strip.height)), strip.crop((1, 0, width + 1, strip.height))]


def _pan_step(leg: Leg, width: int) -> int:
    """Whole pixels per frame for a pan travelling about 12% of the width over the segment."""
    return max(1, round(0.12 * width / max(1, leg.n)))


def _zoom_bands(image: Image.Image, height: int) -> list[Image.Image]:
    """The zoom canvases (see graph.zoom_pick): the still stretched vertically about its centre.

    A float box makes Pillow resample exactly; only the vertical pass runs (same width, full box).
    """
    bands = [image]
    for index in range(1, g.ZOOM_CANVASES):
        trim = image.height * (1.0 - 1.0 / g.zoom_stretch(index, height)) / 2.0
        box = (0.0, trim, float(image.width), image.height - trim)
        bands.append(image.resize(image.size, Image.Resampling.BICUBIC, box=box))
    return bands


@dataclass(frozen=True)
class Layout:
    """How a photo leg's input is made: the photo cover-fitted to ``fit``, cut into ``count`` bands
    of ``band`` size by ``bands``, stacked with ``gap`` black rows between them."""

    fit: tuple[int, int]
    band: tuple[int, int]
    count: int
    gap: int
    bands: Callable[[Image.Image], list[Image.Image]]

    @property
    def size(self) -> tuple[int, int]:
        """The input's size, known before the photo is opened."""
        width, height = self.band
        return width, self.count * height + (self.count - 1) * self.gap


def _layout(leg: Leg, width: int, height: int) -> Layout:
    """The input a photo leg needs: one still, a pan stack or a zoom stack."""
    motion = leg.motion
    if motion in ("pan_left", "pan_right"):
        # One spare column: the second copy of a pan still is the strip shifted left by one pixel.
        strip = width + _pan_step(leg, width) * (leg.n - 1)
        return Layout((strip + 1, height), (strip, height), 2, g.PAN_GAP, _pan_bands)
    if motion in ("zoom_in", "zoom_out"):
        canvas = g.zoom_canvas_size(leg.n, width, height)
        return Layout(canvas, canvas, g.ZOOM_CANVASES, g.ZOOM_GAP, lambda image: _zoom_bands(image, height))
    return Layout((width, height), (width, height), 1, 0, lambda image: [image])


class Stills:
    """Every photo leg's pixels, written by nemowatch into one pipe that ffmpeg reads as one raw
    RGB24 video: photo k (cover-fitted, cut into its leg's bands) is frame k, padded to the largest.

    One input, not one per photo: ffmpeg configures its filter graph only once every input has
    delivered a frame, so with an input per photo nothing ran until the last photo was ready.
    Here the graph starts at the first photo and converts each photo as it arrives; photo k's
    chain can run once frames k and k+1 are in (``trim`` ends a stream when the next frame
    arrives), so encoding starts after the first two photos (with the sound in a graph of its
    own: see ``Graph.argv``). The sizes are known before any photo is decoded (they are the
    legs' canvases), and 100+ MB of stills never touch a disk.
    """

    def __init__(self, ctx: RenderContext, legs: list[Leg]) -> None:
        self.ctx, self.legs = ctx, legs
        self.layouts = [_layout(leg, ctx.width, ctx.height) for leg in legs]
        self.size = (max(lay.size[0] for lay in self.layouts), max(lay.size[1] for lay in self.layouts))

    def input_args(self) -> list[str]:
        """The raw video input: ffmpeg's standard input, which run_ffmpeg connects to a pipe."""
        size = "{}x{}".format(*self.size)
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", size, "-framerate", str(g.FPS)]
        return [*raw, "-i", "pipe:0"]

    def pick(self, index: int) -> list[str]:
        """Filters that keep photo ``index`` alone at its own size (a crop of a frame: no copy)."""
        width, height = self.layouts[index].size
        return [f"trim=start_frame={index}:end_frame={index + 1}", f"crop={width}:{height}:0:0"]

    def _frame(self, index: int) -> list[bytes]:
        """Photo ``index`` decoded and sized for its leg (still, pan stack or zoom stack), as the
        pieces of one padded frame: its bands, black rows between them and below them."""
        leg, layout = self.legs[index], self.layouts[index]
        assert leg.media is not None  # a photo leg always has its file (plan_legs)
        name, path = _media_file(self.ctx, leg.media)
        image = _load_photo(path, name, layout.fit, (self.ctx.width, self.ctx.height))
        width, height = self.size
        row = width * 3
        parts: list[bytes] = []
        for number, band in enumerate(layout.bands(image)):
            if number:
                parts.append(bytes(row * layout.gap))
            if band.width < width:  # a crop beyond the right edge pads with black
                band = band.crop((0, 0, width, band.height))
            parts.append(band.tobytes())
        parts.append(bytes(row * (height - layout.size[1])))
        return parts

    def write(self, pipe: BinaryIO) -> None:
        """Make the photos two at a time (Pillow releases the GIL) and send them in order into ``pipe``."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            ahead: deque[Future[list[bytes]]] = deque(
                pool.submit(self._frame, i) for i in range(min(2, len(self.legs)))
            )
            try:
                for index in range(len(self.legs)):
                    parts = ahead.popleft().result()
                    if index + 2 < len(self.legs):  # at most two made and not yet sent
                        ahead.append(pool.submit(self._frame, index + 2))
                    for part in parts:
                        pipe.write(part)
            finally:
                for future in ahead:
                    future.cancel()


def _render_logo(ctx: RenderContext, draft: dict[str, Any]) -> tuple[Placed | None, Placed | None]:
    """The corner watermark and the big end-card logo, when the draft has a logo."""
    logo_meta = read(DraftMeta, draft).get("logo")
    logo = MediaRef.of(logo_meta) if isinstance(logo_meta, dict) else None
    if logo is None:
        return None, None
    name, logo_path = _media_file(ctx, logo)
    try:
        return render_logo(logo_path, ctx.width, ctx.height, ctx.tmp)
    except (OSError, ValueError) as exc:
        raise RenderError(f"Could not read the logo {name} ({exc}); replace it with a PNG or JPEG.") from exc


def _media_file(ctx: RenderContext, media: MediaRef) -> tuple[str, Path]:
    """The name to show for a media file a draft points at, and the file."""
    name = media.name
    try:
        path = Path(ctx.resolve(media.src))
    except (LookupError, OSError) as exc:
        raise RenderError(f"The media file {name} is not available; upload it again.") from exc
    if not path.is_file():
        raise RenderError(f"The media file {name} is missing; upload it again.")
    return name, path


# ---------------------------------------------------------------- probing clips and music


@dataclass(frozen=True)
class Probe:
    """What ``ffmpeg -i`` says about a media file."""

    duration_s: float
    has_video: bool
    has_audio: bool


def probe(path: Path, name: str) -> Probe:
    """Read a clip's or a song's streams with ``ffmpeg -i``; a broken file becomes a RenderError."""
    text = read_header(path)
    has_video = re.search(r"Stream #\S+.*: Video: (?!.*attached pic)", text) is not None
    has_audio = re.search(r"Stream #\S+.*: Audio: ", text) is not None
    if not (has_video or has_audio):
        reason = _last_lines(text.splitlines(), 1) or "no audio or video stream"
        raise RenderError(
            f"Could not read the media file {name} ({reason}); replace it with a playable file."
        )
    return Probe(header_duration(text) or 0.0, has_video, has_audio)


# Each clip's and song's probe, run by ``prepare``: finished, so ``result()`` gives the probe or
# raises its error (where the file is used, as if it had been probed there).
Probes = dict[Path, "Future[Probe]"]


def _probe(probes: Probes, path: Path, name: str) -> Probe:
    """``probe``, answered by the one ``prepare`` ran (a file it could not find is probed here)."""
    started = probes.get(path)
    return started.result() if started is not None else probe(path, name)


def _start_probes(ctx: RenderContext, draft: dict[str, Any], pool: ThreadPoolExecutor) -> Probes:
    """Probe every clip and song while Pillow works (each probe is an ffmpeg run of ~50 ms)."""
    probes: Probes = {}
    for track in tracks(draft):
        if track.get("tt") not in (TRACK_VIDEO, TRACK_AUDIO):
            continue
        is_video = track.get("tt") == TRACK_VIDEO
        for seg in segments(track):
            if is_video and read(VideoSegmentMeta, seg).get("kind") != "video":
                continue
            media = MediaRef.of(read(VideoSegmentMeta, seg) if is_video else read(AudioSegmentMeta, seg))
            if media is None:
                continue
            try:
                name, path = _media_file(ctx, media)
            except RenderError:
                continue  # reported where the file is used
            if path not in probes:
                probes[path] = pool.submit(probe, path, name)
    return probes


@dataclass(frozen=True)
class Prepared:
    """What the command refers to that must exist before it is built: the legs, the text and logo
    images (with the frames they show), and every clip's and song's probe."""

    legs: list[Leg]
    watermark: Placed | None  # the corner logo
    logo_big: Placed | None  # the end card's logo
    texts: list[tuple[Placed, int, int]]
    probes: Probes


def prepare(draft: dict[str, Any], ctx: RenderContext) -> Prepared:
    """Make the files ffmpeg opens as it starts: text and logo images and the probes, two at a
    time (Pillow releases the GIL). The photos are made later, while ffmpeg runs (see Stills)."""
    legs = plan_legs(draft, ctx.total)
    if not legs:
        raise RenderError("The draft has nothing to show; add photos, clips or text and try again.")
    logo_spans = [(leg.start, leg.start + leg.n) for leg in legs if leg.kind == "card" and leg.logo]
    with ThreadPoolExecutor(max_workers=2) as pool:
        probes = _start_probes(ctx, draft, pool)
        logo_task = pool.submit(_render_logo, ctx, draft)
        texts_task = pool.submit(_texts, ctx, draft, logo_spans)
        watermark, logo_big = logo_task.result()
        texts = texts_task.result()
    return Prepared(legs, watermark, logo_big, texts, probes)


# ---------------------------------------------------------------- the graph


# Makes the frames of one leg for a list of [start, end) ranges: one label per range.
Cutter = Callable[[list[tuple[int, int]]], list[str]]


@dataclass(frozen=True)
class ClipSound:
    """A clip whose own sound is kept: its leg and its ffmpeg input."""

    leg: Leg
    input: int


def _video_legs(
    ctx: RenderContext, prepared: Prepared, photos: dict[int, str]
) -> tuple[list[Cutter], list[ClipSound]]:
    """One cutter per leg (see ``_join`` for why legs are made in pieces), and the kept clip sounds;
    ``photos``: each photo leg's picture (see ``_photo_sources``)."""
    cutters: list[Cutter] = []
    sounds: list[ClipSound] = []
    for index, leg in enumerate(prepared.legs):
        if leg.kind == "image":
            cutters.append(_photo_cutter(ctx, leg, photos[index]))
        elif leg.kind == "video":
            cutter, sound = _clip_cutter(ctx, leg, prepared.probes)
            cutters.append(cutter)
            sounds += [sound] if sound is not None else []
        else:
            cutters.append(_card_cutter(ctx, leg, prepared.logo_big))
    return cutters, sounds


def _cutter(ctx: RenderContext, source: str, piece: Callable[[str, int, int], str]) -> Cutter:
    """A cutter that makes frames [a, b) with ``piece(ref, a, b)``, each range from its own
    reference to ``source`` (a split only when there is more than one range)."""

    def cut(ranges: list[tuple[int, int]]) -> list[str]:
        refs = ctx.graph.split(source, len(ranges)) if len(ranges) > 1 else [source]
        return [piece(ref, a, b) for ref, (a, b) in zip(refs, ranges, strict=True)]

    return cut


def _photo_sources(ctx: RenderContext, legs: list[Leg]) -> tuple[dict[int, str], Stills | None]:
    """Each photo leg's picture (RGB, at its layout's size) out of the one stills input, by leg
    index, and that input (None: no photos)."""
    indices = [index for index, leg in enumerate(legs) if leg.kind == "image"]
    if not indices:
        return {}, None
    stills = Stills(ctx, [legs[index] for index in indices])
    source = f"{ctx.graph.add_input(*stills.input_args())}:v"
    refs = ctx.graph.split(source, len(indices)) if len(indices) > 1 else [source]
    pictures = {
        index: ctx.graph.chain([ref], stills.pick(number))
        for number, (index, ref) in enumerate(zip(indices, refs, strict=True))
    }
    return pictures, stills


def _photo_cutter(ctx: RenderContext, leg: Leg, photo: str) -> Cutter:
    """Pieces of a photo leg, each its own chain from the once-converted still (or zoom canvases)."""
    gr, w, h = ctx.graph, ctx.width, ctx.height
    motion = leg.motion
    if motion in ("zoom_in", "zoom_out"):
        canvas = g.zoom_canvas_size(leg.n, w, h)
        zoom_in = motion == "zoom_in"

        def zoom(ref: str, a: int, b: int) -> str:
            picked = gr.chain([ref], [*g.held(b - a, a), *g.zoom_pick(leg.n, w, h, canvas, zoom_in)])
            branches = [
                gr.chain([source], g.zoom_branch(leg.n, w, h, canvas, zoom_in, parity))
                for source, parity in zip(
                    gr.split(picked, len(g.ZOOM_PARITIES)), g.ZOOM_PARITIES, strict=True
                )
            ]
            return gr.chain(branches, g.zoom_merge(b - a))

        return _cutter(ctx, gr.chain([photo], g.zoom_source()), zoom)
    still = gr.chain([photo], g.still_source())
    if motion in ("pan_left", "pan_right"):
        step, leftward = _pan_step(leg, w), motion == "pan_left"
        return _cutter(
            ctx,
            still,
            lambda ref, a, b: gr.chain(
                [ref], g.pan_piece(b - a, a, w, h, step * (leg.n - 1), step, leftward)
            ),
        )
    return _cutter(ctx, still, lambda ref, a, b: gr.chain([ref], g.still_piece(b - a)))


def _card_cutter(ctx: RenderContext, leg: Leg, logo_big: Placed | None) -> Cutter:
    """Pieces of a gradient card (split while still small), with the big logo on each when asked."""
    gr, w, h = ctx.graph, ctx.width, ctx.height

    def card(ref: str, a: int, b: int) -> str:
        label = gr.chain([ref], g.card_piece(a, b, w, h))
        if leg.logo and logo_big is not None:
            logo = _overlay_source(ctx, logo_big, b - a, 0, fade_in=0.0, fade_out=0.0)
            label = gr.chain([label, logo], [f"overlay=x={logo_big.x}:y={logo_big.y}:eof_action=pass"])
        return label

    return _cutter(ctx, gr.chain([], g.card_source(leg.n, w, h, list(leg.colors))), card)


def _clip_cutter(ctx: RenderContext, leg: Leg, probes: Probes) -> tuple[Cutter, ClipSound | None]:
    """Pieces of a video clip: the one decoded, normalised stream split and trimmed; and its sound
    when the draft keeps it and the clip has any."""
    gr, w, h = ctx.graph, ctx.width, ctx.height
    assert leg.media is not None  # a clip leg always has its file (plan_legs)
    name, path = _media_file(ctx, leg.media)
    info = _probe(probes, path, name)
    if not info.has_video:
        raise RenderError(f"The clip {name} has no picture; use a video file for a video segment.")
    in_s = max(0.0, leg.in_ms / 1000.0)
    if info.duration_s and in_s >= info.duration_s:
        in_s = 0.0  # a start past the end would give an empty leg; play from the top instead
    src = gr.add_input("-ss", f"{in_s:.3f}", "-t", f"{leg.n / g.FPS + 0.5:.3f}", "-i", str(path))
    label = gr.chain([f"{src}:v"], g.clip_leg(leg.n, w, h))
    sound = ClipSound(leg, src) if leg.keep_audio and info.has_audio else None
    return _cutter(ctx, label, lambda ref, a, b: gr.chain([ref], g.frame_range(a, b))), sound


def _join(ctx: RenderContext, legs: list[Leg], cutters: list[Cutter]) -> str:
    """Cut the legs together: a transition on the overlapping frames only, a plain concat for the rest.

    Each leg is made in pieces: head (its part of the transition before it), body and tail; only
    heads and tails are blended. Photo and card pieces are separate chains from one converted
    still, not a split of the whole leg: a split feeds every output at once, so the transition's
    early request for a tail frame would make the whole body first and hold it in memory (GBs
    for zooms) while the encoder waited.
    """
    gr = ctx.graph
    overlaps = [leg.overlap for leg in legs[1:]] + [0]  # frames each leg shares with the next
    if any(leg.n - leg.overlap - after < 1 for leg, after in zip(legs, overlaps, strict=True)):
        return _join_whole(ctx, legs, cutters)  # windows overlap each other: blend the whole legs
    parts: list[str] = []
    tail: str | None = None
    for leg, cutter, after in zip(legs, cutters, overlaps, strict=True):
        ranges = [(0, leg.overlap)] if leg.overlap else []
        ranges.append((leg.overlap, leg.n - after))
        if after:
            ranges.append((leg.n - after, leg.n))
        cut = cutter(ranges)
        if leg.overlap:
            assert tail is not None
            parts.append(_transition(ctx, leg, tail, cut[0]))
            cut = cut[1:]
        parts.append(cut[0])
        tail = cut[1] if after else None
    joined = parts[0] if len(parts) == 1 else gr.chain(parts, [f"concat=n={len(parts)}:v=1:a=0"])
    return _finish(ctx, joined, sum(leg.n - leg.overlap for leg in legs))


def _transition(ctx: RenderContext, leg: Leg, tail: str, head: str) -> str:
    """The blended frames where ``leg`` comes in over the tail of the leg before it."""
    gr = ctx.graph
    if g.is_crossfade(leg.transition):
        return gr.chain(
            [tail, gr.chain([head], g.crossfade_head(leg.overlap))], g.crossfade_window(leg.overlap)
        )
    return gr.chain([tail, head], g.transition_window(leg.transition, leg.overlap))


def _join_whole(ctx: RenderContext, legs: list[Leg], cutters: list[Cutter]) -> str:
    """Chain whole legs with xfade (or a plain cut when they do not overlap): slower, always right."""
    labels = [cutter([(0, leg.n)])[0] for leg, cutter in zip(legs, cutters, strict=True)]
    acc, length = labels[0], legs[0].n
    for leg, label in zip(legs[1:], labels[1:], strict=True):
        if leg.overlap > 0:
            acc = ctx.graph.chain(
                [acc, label], [g.xfade(leg.transition, leg.overlap, length - leg.overlap), "format=yuv420p"]
            )
        else:
            acc = ctx.graph.chain([acc, label], ["concat=n=2:v=1:a=0"])
        length += leg.n - leg.overlap
    return _finish(ctx, acc, length)


def _finish(ctx: RenderContext, joined: str, length: int) -> str:
    """Hold the last frame when the legs end early, cut to the video's length, pts = frame index."""
    fix: list[str] = []
    if length < ctx.total:  # a draft whose segments end early: hold the last frame
        fix.append(f"tpad=stop_mode=clone:stop={ctx.total - length}")
    # concat leaves its own timebase; settb first so setpts=N counts frames of 1/FPS.
    return ctx.graph.chain([joined], [*fix, f"trim=end_frame={ctx.total}", f"settb=1/{g.FPS}", "setpts=N"])


def _overlay_source(
    ctx: RenderContext, placed: Placed, n: int, start: int, *, fade_in: float, fade_out: float
) -> str:
    src = ctx.graph.add_input("-framerate", str(g.FPS), "-i", str(placed.path))
    return ctx.graph.chain([f"{src}:v"], g.overlay_input(n, start, fade_in, fade_out))


def _overlay(ctx: RenderContext, base: str, placed: Placed, start: int, end: int, *, fade: float) -> str:
    n = min(end, ctx.total) - start
    if n < 1:
        return base
    fade = min(fade, n / g.FPS / 3)
    # Whatever shows at frame 0 is there from the start: the first frame is the video's thumbnail.
    top = _overlay_source(ctx, placed, n, start, fade_in=fade if start else 0.0, fade_out=fade)
    return ctx.graph.chain([base, top], [f"overlay=x={placed.x}:y={placed.y}:eof_action=pass:format=yuv420"])


def _texts(
    ctx: RenderContext, draft: dict[str, Any], logo_spans: list[tuple[int, int]]
) -> list[tuple[Placed, int, int]]:
    """Every text segment rendered to a PNG, with its frame span."""
    out: list[tuple[Placed, int, int]] = []
    for track in tracks(draft):
        if track.get("tt") != TRACK_TEXT:
            continue
        role = str(read(TextTrackMeta, track).get("role") or "title")
        for seg in segments(track):
            meta = read(TextSegmentMeta, seg)
            text = str(meta.get("text") or "").strip()
            start = g.frames(_num(seg.get("st"), 0.0))
            end = min(ctx.total, start + g.frames(_num(seg.get("d"), 0.0)))
            if not text or end <= start:
                continue
            position = str(meta.get("position") or ("bottom" if role == "caption" else "center"))
            # On an end card with a big logo the text sits under the logo instead of across it.
            under_logo = any(s <= start < e or s < end <= e for s, e in logo_spans) and position == "center"
            path = ctx.tmp / f"text-{len(out)}.png"
            placed = render_text(
                text, role, position, ctx.width, ctx.height, path, anchor_y=0.74 if under_logo else None
            )
            out.append((placed, start, end))
    return out


def _music(ctx: RenderContext, draft: dict[str, Any], probes: Probes) -> list[str]:
    """One label per music segment: trimmed or looped to length, faded, at the track volume."""
    labels: list[str] = []
    for track in tracks(draft):
        if track.get("tt") != TRACK_AUDIO:
            continue
        volume = min(2.0, max(0.0, _num(read(AudioTrackMeta, track).get("volume"), 0.8)))
        for index, seg in enumerate(segments(track)):
            meta = read(AudioSegmentMeta, seg)
            start = g.frames(_num(seg.get("st"), 0.0))
            n = min(ctx.total - start, g.frames(_num(seg.get("d"), ctx.total * 1000 / g.FPS)))
            if n < 1:
                continue
            dur = n / g.FPS
            media = MediaRef.of(meta)
            if media is not None:
                name, path = _media_file(ctx, media)
                if not _probe(probes, path, name).has_audio:
                    raise RenderError(
                        f"The music file {name} has no sound; use an MP3, WAV, M4A or AAC song."
                    )
                loop = ["-stream_loop", "-1"] if meta.get("loop", True) else []
                in_s = max(0.0, _num(meta.get("in_ms"), 0.0) / 1000.0)
                src = ctx.graph.add_input(*loop, "-ss", f"{in_s:.3f}", "-i", str(path))
            else:
                bed = write_music_bed(ctx.tmp / f"bed-{len(labels)}-{index}.wav", meta.get("mood"), dur + 0.5)
                src = ctx.graph.add_input("-i", str(bed))
            fade_in = min(dur / 3, max(0.0, _num(meta.get("fade_in_ms"), 1000.0) / 1000.0))
            fade_out = min(dur / 3, max(0.0, _num(meta.get("fade_out_ms"), 2000.0) / 1000.0))
            chain = [*_audio_format(), f"atrim=duration={dur:.6f}", "asetpts=PTS-STARTPTS"]
            if fade_in:
                chain.append(f"afade=t=in:d={fade_in:.3f}")
            if fade_out:
                chain.append(f"afade=t=out:st={dur - fade_out:.4f}:d={fade_out:.3f}")
            chain.append(f"volume={volume:.3f}")
            if start:
                chain.append(f"adelay={round(start * 1000 / g.FPS)}:all=1")
            labels.append(ctx.graph.audio_chain([f"{src}:a"], chain))
    return labels


def _audio_format() -> list[str]:
    return [f"aresample={AUDIO_RATE}", "aformat=sample_fmts=fltp:channel_layouts=stereo"]


def _kept_sound(ctx: RenderContext, sounds: list[ClipSound]) -> list[str]:
    """The sound of clips marked keep_audio, placed where the clip plays, with short fades against clicks."""
    labels: list[str] = []
    for sound in sounds:
        leg = sound.leg
        dur = leg.n / g.FPS
        edge = min(0.25, dur / 4)
        chain = [
            *_audio_format(),
            "asetpts=PTS-STARTPTS",
            f"atrim=duration={dur:.6f}",
            f"afade=t=in:d={edge:.3f}",
            f"afade=t=out:st={dur - edge:.4f}:d={edge:.3f}",
        ]
        if leg.start:
            chain.append(f"adelay={round(leg.start * 1000 / g.FPS)}:all=1")
        labels.append(ctx.graph.audio_chain([f"{sound.input}:a"], chain))
    return labels


def _mix(ctx: RenderContext, music: list[str], voices: list[str]) -> str | None:
    """Music ducked under the clips' own sound (sidechain compression), cut to the video's length."""
    if not music and not voices:
        return None
    gr = ctx.graph

    def merge(labels: list[str]) -> str:
        if len(labels) == 1:
            return labels[0]
        return gr.audio_chain(labels, [f"amix=inputs={len(labels)}:normalize=0:duration=longest"])

    if music and voices:
        bed, voice = merge(music), merge(voices)
        split_a, split_b = gr.audio_split(voice, 2)
        ducked = gr.audio_chain(
            [bed, split_a], ["sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400"]
        )
        mixed = gr.audio_chain([ducked, split_b], ["amix=inputs=2:normalize=0:duration=longest"])
    else:
        mixed = merge(music or voices)
    total_s = ctx.total / g.FPS
    return gr.audio_chain(
        [mixed], [f"apad=whole_dur={total_s:.6f}", f"atrim=end={total_s:.6f}", "alimiter=limit=0.97"]
    )


@dataclass(frozen=True)
class Command:
    """An ffmpeg run: its arguments (without the executable), and the photos to write into its
    standard input while it runs (None: the draft has no photos)."""

    args: list[str]
    stills: Stills | None


def build_command(draft: dict[str, Any], ctx: RenderContext, prepared: Prepared, out: Path) -> Command:
    """The whole ffmpeg command for a draft, built into ``ctx.graph``.

    It starts nothing (the caller that runs ffmpeg starts the threads and opens the pipe) and
    writes only into ``ctx.tmp``: the filter graphs, and a generated music bed.
    """
    legs = prepared.legs
    photos, stills = _photo_sources(ctx, legs)
    cutters, sounds = _video_legs(ctx, prepared, photos)
    base = _join(ctx, legs, cutters)
    grade = g.grade(read(DraftMeta, draft).get("grade"))
    if grade:
        base = ctx.graph.chain([base], [grade])
    if prepared.watermark is not None:
        # The corner mark steps aside (fading through the transition) when the end card shows the logo big.
        logo_card = next((leg for leg in legs if leg.kind == "card" and leg.logo), None)
        end = logo_card.start + logo_card.overlap if logo_card else ctx.total
        base = _overlay(ctx, base, prepared.watermark, 0, end, fade=0.6)
    for placed, start, end in prepared.texts:
        base = _overlay(ctx, base, placed, start, end, fade=0.45)

    audio = _mix(ctx, _music(ctx, draft, prepared.probes), _kept_sound(ctx, sounds))
    outputs = ["-map", f"[{base}]"]
    if audio:
        outputs += ["-map", f"[{audio}]", *AAC_ARGS, "-ar", str(AUDIO_RATE)]
    outputs += [
        *X264_ARGS,
        *("-pix_fmt", "yuv420p", "-r", str(g.FPS), "-frames:v", str(ctx.total)),
        *("-movflags", "+faststart", "-f", "mp4", str(out)),
    ]
    # One filter thread: libx264 keeps both cores busy, and slice threads in the filters (swscale
    # re-initialising per zoom frame, above all) then only add thread hand-offs: ~2 s CPU a render.
    head = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1", "-nostats"]
    head += ["-filter_complex_threads", "1"]
    return Command([*head, *ctx.graph.argv(ctx.tmp), *outputs], stills)


# ---------------------------------------------------------------- running ffmpeg


def _last_lines(lines: list[str] | deque[str], count: int = 3) -> str:
    """The last meaningful stderr lines, joined into one short message."""
    useful = [line.strip() for line in lines if line.strip() and not line.startswith("  ")]
    text = " / ".join(useful[-count:])
    return text if len(text) <= 400 else text[:397] + "..."


def _spawn(command: Command) -> tuple[subprocess.Popen[str], BinaryIO | None]:
    """Start ffmpeg; with stills, on a new pipe whose write end (returned) is then ours alone."""
    read_fd, write_fd = os.pipe() if command.stills is not None else (-1, -1)
    try:
        proc = subprocess.Popen(
            [ffmpeg_exe(), *command.args],
            stdin=read_fd if read_fd >= 0 else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            # Killed by the kernel if this thread or the whole process dies; run_ffmpeg reaps the
            # process before it returns, so the thread always outlives it (see die_with_parent).
            preexec_fn=die_with_parent(),
        )
    except BaseException:
        if write_fd >= 0:
            os.close(write_fd)
        raise
    finally:
        if read_fd >= 0:
            os.close(read_fd)  # ffmpeg holds it now; ours would keep a dead ffmpeg's pipe open
    return proc, os.fdopen(write_fd, "wb", closefd=True) if write_fd >= 0 else None


def run_ffmpeg(command: Command, total_s: float, progress: Callable[[float], None] | None) -> None:
    """Run ffmpeg, report progress from ``-progress pipe:1``, and never leave the process behind.

    The command's stills are written into a pipe on ffmpeg's standard input while it runs.
    Raises RenderError with ffmpeg's last error lines when it fails or stalls, or the photos'
    own RenderError (a broken photo) after stopping ffmpeg; any exception in the caller
    (KeyboardInterrupt, a failing progress callback) kills the process first.
    """
    stills = command.stills
    proc, pipe = _spawn(command)
    failures: list[BaseException] = []

    def write(stills: Stills, pipe: BinaryIO) -> None:
        try:
            with pipe:
                stills.write(pipe)
        except BrokenPipeError:
            pass  # ffmpeg stopped reading: it failed or was stopped, and says why itself
        except Exception as exc:  # any failure to make a photo stops the render
            failures.append(exc)
            proc.kill()

    writer: threading.Thread | None = None
    if stills is not None and pipe is not None:
        writer = threading.Thread(target=write, args=(stills, pipe), daemon=True)
    errors: deque[str] = deque(maxlen=40)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            errors.append(line.rstrip())

    def pump_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    readers = [threading.Thread(target=f, daemon=True) for f in (pump_stderr, pump_stdout)]
    try:
        # Inside the try: a thread that cannot start must not leave ffmpeg running.
        for thread in [*readers, writer]:
            if thread is not None:
                thread.start()
        while True:
            try:
                line = lines.get(timeout=STALL_TIMEOUT_S)
            except queue.Empty:
                raise RenderError(
                    f"ffmpeg stopped making progress for {STALL_TIMEOUT_S:.0f} s and was stopped; try the render again."
                ) from None
            if line is None:
                break
            key, _, value = line.strip().partition("=")
            if progress is not None and key == "out_time_us" and value.lstrip("-").isdigit() and total_s > 0:
                progress(min(1.0, max(0.0, int(value) / 1e6 / total_s)))
        code = proc.wait()
        for reader in readers:
            reader.join(timeout=5)
        if writer is not None:
            writer.join()  # a dead ffmpeg's pipe fails the writer at once
        if failures:
            raise failures[0]
        if code == -signal.SIGKILL:  # not by us: we stop ffmpeg only on the way out of an error
            raise RenderError(
                "ffmpeg was killed by the system, most likely for lack of memory (a 1080p render needs about "
                "0.5 GB plus 80 MB a photo); free some memory, set jobs.max_concurrent = 1, or use fewer photos."
            )
        if code != 0:
            if any("Unrecognized option" in line for line in errors):  # an ffmpeg older than 7
                raise RenderError(
                    f"The ffmpeg in use ({ffmpeg_exe()}) is too old to render (it needs ffmpeg {MIN_MAJOR} "
                    "or newer); run pip install -U 'imageio-ffmpeg>=0.6', or unset IMAGEIO_FFMPEG_EXE."
                )
            detail = _last_lines(errors) or f"exit status {code}"
            raise RenderError(f"ffmpeg could not render the video: {detail}")
        if progress is not None:
            progress(1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if writer is not None and writer.ident is not None:
            writer.join()
        elif pipe is not None:
            pipe.close()  # the writer never started: the write end is still ours
        for reader in readers:
            if reader.ident is not None:
                reader.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):  # now, not whenever a raised error is collected
            if stream is not None:
                stream.close()


def render_video(
    draft: dict[str, Any],
    resolve: Callable[[str], Path],
    out: Path,
    *,
    progress: Callable[[float], None] | None = None,
) -> None:
    """Render ``draft`` to an MP4 at ``out`` (H.264 High, yuv420p, AAC, 30 fps); blocking.

    ``resolve`` maps a media id from the draft to its file. The file at ``out`` appears only
    when the render succeeded (it is written aside and renamed). Everything the render writes
    meanwhile (the part file, text images, the music bed, the filter graphs) lives in ``out``'s
    folder under hidden names, so the owner of that folder can clear what a killed render left.
    """
    meta = read(DraftMeta, draft) if isinstance(draft, dict) else read(DraftMeta, {})
    total = g.frames(duration_ms(draft))
    if total < 1:
        raise RenderError("The draft is empty (zero length); describe the video again.")
    width, height = _even(meta.get("width"), 1920), _even(meta.get("height"), 1080)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent) as tmp:
        ctx = RenderContext(width, height, total, Path(tmp), resolve)
        try:
            command = build_command(draft, ctx, prepare(draft, ctx), part)
            run_ffmpeg(command, total / g.FPS, progress)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
