"""The ffmpeg filter-graph builder: inputs, labelled filter chains and the filters the renderer uses.

Everything here is pure string building (no files, no processes) so the graph can be
read and unit-checked. Video legs are normalised to the output size, SAR 1, yuv420p,
time base 1/FPS and ``pts = frame index`` before they meet an xfade: the time base makes
every offset an exact frame count instead of a rounded microsecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nemowatch.local.vocabulary import GRADE

FPS = 30

# The xfade transitions ffmpeg knows; anything else in a draft falls back to "fade".
XFADE_TRANSITIONS = frozenset(
    [
        "fade",
        "wipeleft",
        "wiperight",
        "wipeup",
        "wipedown",
        "slideleft",
        "slideright",
        "slideup",
        "slidedown",
        "circlecrop",
        "rectcrop",
        "distance",
        "fadeblack",
        "fadewhite",
        "radial",
        "smoothleft",
        "smoothright",
        "smoothup",
        "smoothdown",
        "circleopen",
        "circleclose",
        "vertopen",
        "vertclose",
        "horzopen",
        "horzclose",
        "dissolve",
        "pixelize",
        "diagtl",
        "diagtr",
        "diagbl",
        "diagbr",
        "hlslice",
        "hrslice",
        "vuslice",
        "vdslice",
        "hblur",
        "fadegrays",
        "wipetl",
        "wipetr",
        "wipebl",
        "wipebr",
        "squeezeh",
        "squeezev",
        "zoomin",
        "fadefast",
        "fadeslow",
        "hlwind",
        "hrwind",
        "vuwind",
        "vdwind",
        "coverleft",
        "coverright",
        "coverup",
        "coverdown",
        "revealleft",
        "revealright",
        "revealup",
        "revealdown",
    ]
)

DEFAULT_CARD_COLORS = ("#1d2b64", "#f8cdda")


@dataclass
class Graph:
    """Accumulates ffmpeg inputs and filter chains; ``argv()`` gives the command-line part.

    Picture and sound chains are kept apart and become two filter graphs (see ``argv``).
    """

    inputs: list[list[str]] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)  # the pictures
    audio: list[str] = field(default_factory=list)  # the sound
    _labels: int = 0

    def add_input(self, *args: str) -> int:
        """Register one ``-i`` input (with its options before ``-i``); returns its index."""
        self.inputs.append(list(args))
        return len(self.inputs) - 1

    def label(self, prefix: str) -> str:
        self._labels += 1
        return f"{prefix}{self._labels}"

    def chain(self, sources: list[str], filters: list[str], prefix: str = "v") -> str:
        """Add ``[a][b]f1,f2[out]`` to the picture graph and return the new output label."""
        return self._add(self.chains, sources, filters, prefix)

    def audio_chain(self, sources: list[str], filters: list[str]) -> str:
        """Add ``[a][b]f1,f2[out]`` to the sound graph and return the new output label."""
        return self._add(self.audio, sources, filters, "a")

    def split(self, source: str, count: int, prefix: str = "s") -> list[str]:
        """Add ``[source]split=count[o1][o2]...`` and return the output labels."""
        return self._fan(self.chains, source, f"split={count}", count, prefix)

    def audio_split(self, source: str, count: int) -> list[str]:
        """Add ``[source]asplit=count[o1][o2]...`` to the sound graph and return the output labels."""
        return self._fan(self.audio, source, f"asplit={count}", count, "a")

    def _fan(self, chains: list[str], source: str, spec: str, count: int, prefix: str) -> list[str]:
        outs = [self.label(prefix) for _ in range(count)]
        chains.append(f"[{source}]{spec}{''.join(f'[{o}]' for o in outs)}")
        return outs

    def _add(self, chains: list[str], sources: list[str], filters: list[str], prefix: str) -> str:
        out = self.label(prefix)
        ins = "".join(f"[{s}]" for s in sources)
        chains.append(f"{ins}{','.join(filters) or 'null'}[{out}]")
        return out

    def argv(self, folder: Path) -> list[str]:
        """The inputs, then the graphs, each written to a file in ``folder`` and read from there.

        Files, not arguments: a long graph (many zoom legs) would pass the kernel's 128 KiB limit
        on one command-line argument. Two graphs, not one: in one graph the sound's steady demand
        kept ffmpeg waiting on the photos' pipe until every photo was in before it encoded a
        picture (the reference job: no frame with 4 of 5 photos written; 97 with 2 of 5 once the
        sound had its own graph), and each graph runs in its own thread.
        """
        args = [arg for spec in self.inputs for arg in spec]
        for name, chains in (("video.txt", self.chains), ("audio.txt", self.audio)):
            if chains:
                script = folder / name
                script.write_text(";\n".join(chains), encoding="utf-8")
                args += ["-/filter_complex", str(script)]
        return args


def grade(name: object) -> str | None:
    """The filters of a colour grade named in a draft (None: no grade, or one this version lacks).

    Only filters that work on yuv420p directly (eq, lutyuv, hue, vignette): an RGB round trip
    (colorbalance, curves) would cost more per frame than the whole Ken Burns pass.
    """
    found = GRADE.get(name) if isinstance(name, str) else None
    return found.filters if found is not None else None


def frames(ms: float) -> int:
    """Milliseconds → a whole number of output frames."""
    return max(0, round(ms * FPS / 1000.0))


def normalise_tail(n: int) -> list[str]:
    """The common end of every leg: yuv420p, SAR 1, time base 1/FPS, pts = frame index, exactly n frames."""
    return ["format=yuv420p", "setsar=1", f"settb=1/{FPS}", "setpts=N", f"trim=end_frame={n}"]


# The frame index inside a leg, from the timestamp: scale counts ``n`` from 1 and crop from 0, so
# expressions that must agree across the two filters use the (identical) pts instead.
_INDEX = f"round(t*{FPS})"


def held(n: int, start: int = 0) -> list[str]:
    """One decoded still repeated n times (referenced, not copied), pts = frame index from ``start``.

    tpad clones the frame when the next filter asks for one. Each piece of a leg holds its own
    copy of the still this way (see render._join for why legs are made in pieces).
    """
    return [f"tpad=stop_mode=clone:stop={n - 1}", f"settb=1/{FPS}", f"setpts=N+{start}"]


def still_source() -> list[str]:
    """A photo converted once to the output's pixel format, before it is split into pieces."""
    return ["format=yuv420p", "setsar=1"]


def still_piece(n: int) -> list[str]:
    """n frames of a photo without motion: the same converted frame referenced n times."""
    return [*held(n), *normalise_tail(n)]


def pan_piece(
    n: int, start: int, width: int, height: int, travel: int, step: int, leftward: bool
) -> list[str]:
    """Frames [start, start+n) of a horizontal pan by whole pixels per frame, cropped from the still.

    Whole-pixel steps at a constant rate are perfectly uniform motion, and a crop is free (it only
    moves the plane pointers). 4:2:0 chroma can only be cropped at even x, so the still is prepared
    as two copies stacked with PAN_GAP rows between: the lower one shifted left by one pixel. An
    odd position is the lower copy cropped at the even x below it; chroma stays aligned on every frame.
    """
    pos = f"({travel}-{step}*{_INDEX})" if leftward else f"({step}*{_INDEX})"
    return [
        *held(n, start),
        f"crop={width}:{height}:x='{pos}-mod({pos},2)':y='{height + PAN_GAP}*mod({pos},2)':exact=1",
        *normalise_tail(n),
    ]


# Rows between the two copies of a pan still, so 4:2:0 chroma subsampling never mixes them.
PAN_GAP = 16


# Zoom canvases: copies of the still stretched vertically by 0, 1/M, 2/M ... of 2 px (see zoom_branch),
# stacked in one picture with a gap of ZOOM_GAP rows between them (a crop picks one per frame).
ZOOM_CANVASES = 4
ZOOM_GAP = 16
# The scaled canvas is cropped at offsets of either parity; one branch per (x odd?, y odd?).
ZOOM_PARITIES = ((0, 0), (1, 0), (0, 1), (1, 1))
# swscale's own 4:2:0 chroma siting (centre of each 2x2 block) in 1/256 luma pixel, as every other leg gets.
CHROMA_CENTRE = 128


def zoom_canvas_size(n: int, width: int, height: int) -> tuple[int, int]:
    """The pre-sized still for a zoom of n frames: the widest frame, and at least as tall in proportion."""
    a = n - 1
    return width + 2 * a, height + 2 * -(-a * height // width)


def zoom_stretch(index: int, height: int) -> float:
    """Vertical stretch of zoom canvas ``index``: 1 + index/M of the 2 px step of an even frame height."""
    return 1.0 + index * 2.0 / (height * ZOOM_CANVASES)


def zoom_source() -> list[str]:
    """The canvas stack converted once to 4:2:0 with centre-sited chroma, like the other legs."""
    return [f"scale=out_h_chr_pos={CHROMA_CENTRE}:out_v_chr_pos={CHROMA_CENTRE}", *still_source()]


def _zoom_geometry(n: int, width: int, height: int, canvas: tuple[int, int], zoom_in: bool) -> dict[str, str]:
    """Per-frame expressions of a centred zoom: margin a, scaled height h, crop y, canvas index m.

    The horizontal margin ``a`` grows by exactly one pixel per frame (uniform speed, no
    zoompan-style rounding). The exact height for the same zoom, (W+2a)*Hc/Wc, is rarely a whole
    number of pixels, let alone one with a whole-pixel margin (Hs - H even); rounding it moved
    the top and bottom rows in steps of 0 and ~1 px. So Hs is the even-margin height just below
    the exact one and the rest of the vertical scale (a factor in [1, 1+2/Hs)) comes from the
    canvas that Pillow pre-stretched by the nearest multiple of 1/M of it: vertical error at
    most 1/(2M) px.
    """
    cw, ch = canvas
    a = _INDEX if zoom_in else f"({n - 1}-{_INDEX})"
    exact = f"(({width}+2*{a})*{ch}/{cw})"
    low = f"({height}+2*floor(({exact}-{height})/2))"
    pick = f"round(({exact}/{low}-1)*{height * ZOOM_CANVASES / 2})"  # 0..M (M: the next even height)
    h = f"({low}+2*gte({pick},{ZOOM_CANVASES}))"
    return {"a": a, "h": h, "y": f"(({h}-{height})/2)", "m": f"mod({pick},{ZOOM_CANVASES})"}


def zoom_pick(n: int, width: int, height: int, canvas: tuple[int, int], zoom_in: bool) -> list[str]:
    """Crop the canvas each frame needs out of the stack (a fixed-size crop: free, no copy)."""
    cw, ch = canvas
    m = _zoom_geometry(n, width, height, canvas, zoom_in)["m"]
    return [f"crop={cw}:{ch}:x=0:y='{m}*{ch + ZOOM_GAP}'"]


def zoom_branch(
    n: int, width: int, height: int, canvas: tuple[int, int], zoom_in: bool, parity: tuple[int, int]
) -> list[str]:
    """One branch of a centred zoom: the frames whose crop offsets have ``parity``.

    Every frame the picked canvas is resampled to (W+2a)x(Hs) and the centre cropped. The work is
    done in 4:2:0 (half the samples of 4:4:4 and no conversion afterwards). A crop at an odd
    offset would misplace the half-resolution chroma by one luma pixel, so the branch for an odd
    x (or y) offset has swscale site its chroma one luma pixel further right (down): after the
    crop every chroma sample sits where the other legs' do.
    """
    geo = _zoom_geometry(n, width, height, canvas, zoom_in)
    a, y = geo["a"], geo["y"]
    odd_x, odd_y = parity
    chroma = (
        f"in_h_chr_pos={CHROMA_CENTRE}:in_v_chr_pos={CHROMA_CENTRE}"
        f":out_h_chr_pos={CHROMA_CENTRE + 256 * odd_x}:out_v_chr_pos={CHROMA_CENTRE + 256 * odd_y}"
    )
    return [
        f"select='eq(mod({a},2),{odd_x})*eq(mod({y},2),{odd_y})'",
        f"scale=w='{width}+2*{a}':h='{geo['h']}':eval=frame:flags=bilinear:{chroma}",
        # The offsets repeat a and Hs: crop keeps the in_w/in_h of its first frame, so those cannot be used.
        f"crop={width}:{height}:x='{a}':y='{y}':exact=1",
    ]


def zoom_merge(n: int) -> list[str]:
    """The zoom branches back in frame order.

    interleave holds a branch's frames until every other branch has one (or ended); x parity
    alternates every frame and y parity every two or so, so that is a queue of a few frames.
    """
    # select and interleave drop the frame rate that the transitions need; fps on pts = N restores it.
    return [
        f"interleave=nb_inputs={len(ZOOM_PARITIES)}",
        f"settb=1/{FPS}",
        "setpts=N",
        f"fps={FPS}",
        *normalise_tail(n),
    ]


def card_source(n: int, width: int, height: int, colors: list[str]) -> list[str]:
    """A moving two-colour gradient drawn at 1/8 size (it is smooth; card_piece scales it up).

    A linear two-colour ramp survives a bilinear 8x upscale unchanged (bilinear is exact on a
    linear ramp), at about two thirds of the cost of a quarter-size drawing with a bicubic upscale.
    It is converted to yuv420p while still small, so the upscale is the only full-size pass.
    """
    c0, c1 = [*colors[:2], *DEFAULT_CARD_COLORS[len(colors[:2]) :]]
    small_w, small_h = max(16, width // 8 // 2 * 2), max(16, height // 8 // 2 * 2)
    gradient = (
        f"gradients=s={small_w}x{small_h}:c0={c0}:c1={c1}:n=2:type=linear"
        f":x0=0:y0=0:x1={small_w}:y1={small_h}:speed=0.008:seed=7:r={FPS}:d={(n + 1) / FPS:.4f}"
    )
    return [gradient, "format=yuv420p", f"settb=1/{FPS}", "setpts=N"]


def card_piece(start: int, end: int, width: int, height: int) -> list[str]:
    """Frames [start, end) of a card, scaled up to the frame."""
    return [*frame_range(start, end), f"scale={width}:{height}:flags=bilinear", *normalise_tail(end - start)]


def clip_leg(n: int, width: int, height: int) -> list[str]:
    """A video clip cover-fitted to the frame, at FPS, held on its last frame if it is too short."""
    return [
        "setpts=PTS-STARTPTS",
        f"fps={FPS}",
        f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic",
        f"crop={width}:{height}",
        f"tpad=stop_mode=clone:stop={n}",
        *normalise_tail(n),
    ]


def overlay_input(n: int, start: int, fade_in: float, fade_out: float) -> list[str]:
    """An overlay still shown for n frames from frame ``start``, with alpha fades (seconds)."""
    filters = ["format=yuva420p", *held(n, start)]
    t0, t1 = start / FPS, (start + n) / FPS
    if fade_in > 0:
        filters.append(f"fade=t=in:st={t0:.4f}:d={fade_in:.3f}:alpha=1")
    if fade_out > 0:
        filters.append(f"fade=t=out:st={t1 - fade_out:.4f}:d={fade_out:.3f}:alpha=1")
    return filters


def xfade(transition: str, overlap: int, offset: int) -> str:
    """An xfade of ``overlap`` frames starting at output frame ``offset``."""
    name = transition if transition in XFADE_TRANSITIONS else "fade"
    return f"xfade=transition={name}:duration={overlap / FPS:.6f}:offset={offset / FPS:.6f}"


def frame_range(start: int, end: int) -> list[str]:
    """Frames [start, end) of a leg, renumbered from 0 (for cutting a leg into head, body and tail)."""
    return [f"trim=start_frame={start}:end_frame={end}", "setpts=PTS-STARTPTS"]


def transition_window(transition: str, overlap: int) -> list[str]:
    """The overlap of two legs only: xfade works in 4:4:4 only, so it never sees the other frames.

    Both inputs are the ``overlap`` frames of the transition; the result goes back to yuv420p so it
    concatenates with the untouched 4:2:0 bodies of the legs.
    """
    return [xfade(transition, overlap, 0), "format=yuv420p", f"trim=end_frame={overlap}"]


def is_crossfade(transition: str) -> bool:
    """Whether a transition is the plain crossfade (also what unknown names become)."""
    return transition == "fade" or transition not in XFADE_TRANSITIONS


def crossfade_head(overlap: int) -> list[str]:
    """The incoming leg's part of a crossfade, its alpha rising 0, 1/n, 2/n ... (xfade's fade schedule).

    A crossfade is the incoming picture laid over the outgoing one at that opacity. Done as an
    alpha overlay it stays in 4:2:0 and costs about a third of an xfade, which converts both
    inputs to 4:4:4 and the result back.
    """
    return ["format=yuva420p", f"fade=t=in:st=0:d={overlap / FPS:.6f}:alpha=1"]


def crossfade_window(overlap: int) -> list[str]:
    """[outgoing][incoming with crossfade_head] → the blended ``overlap`` frames in yuv420p."""
    return ["overlay=format=yuv420:eof_action=pass", "format=yuv420p", f"trim=end_frame={overlap}"]
