"""The ffmpeg filter-graph builder: inputs, labelled filter chains and the filters the renderer uses.

Everything here is pure string building (no files, no processes) so the graph can be
read and unit-checked. Video legs are normalised to the output size, SAR 1, yuv420p,
time base 1/FPS and ``pts = frame index`` before they meet an xfade: the time base makes
every offset an exact frame count instead of a rounded microsecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

# Colour grades built only from filters that work on yuv420p directly (eq, lutyuv, hue, vignette):
# an RGB round trip (colorbalance, curves) would cost more per frame than the whole Ken Burns pass.
GRADES: dict[str, str] = {
    "warm": "eq=saturation=1.08:contrast=1.03,lutyuv=u='clip(val-7,0,255)':v='clip(val+8,0,255)'",
    "cool": "eq=saturation=1.02:contrast=1.03,lutyuv=u='clip(val+8,0,255)':v='clip(val-6,0,255)'",
    "bw": "lutyuv=u=128:v=128,eq=contrast=1.12:gamma=0.96",
    "vibrant": "eq=saturation=1.32:contrast=1.06:gamma=0.98",
    # Lifted blacks, softened highlights, slightly muted teal cast and a vignette: a film look.
    "cinematic": (
        "lutyuv=y='16+(val-16)*0.93+6*sin(PI*(val-16)/219)':u='clip(val+3,0,255)':v='clip(val-2,0,255)',"
        "eq=saturation=0.88:contrast=1.06,vignette=angle=PI/5"
    ),
}


DEFAULT_CARD_COLORS = ("#1d2b64", "#f8cdda")


@dataclass
class Graph:
    """Accumulates ffmpeg inputs and filter chains; ``argv()`` gives the command-line part."""

    inputs: list[list[str]] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    _labels: int = 0

    def add_input(self, *args: str) -> int:
        """Register one ``-i`` input (with its options before ``-i``); returns its index."""
        self.inputs.append(list(args))
        return len(self.inputs) - 1

    def label(self, prefix: str) -> str:
        self._labels += 1
        return f"{prefix}{self._labels}"

    def chain(self, sources: list[str], filters: list[str], prefix: str = "v") -> str:
        """Add ``[a][b]f1,f2[out]`` and return the new output label."""
        out = self.label(prefix)
        ins = "".join(f"[{s}]" for s in sources)
        self.chains.append(f"{ins}{','.join(filters) or 'null'}[{out}]")
        return out

    def filter_complex(self) -> str:
        return ";\n".join(self.chains)

    def argv(self) -> list[str]:
        args: list[str] = []
        for spec in self.inputs:
            args += spec
        return [*args, "-filter_complex", self.filter_complex()]


def frames(ms: float) -> int:
    """Milliseconds → a whole number of output frames."""
    return max(0, round(ms * FPS / 1000.0))


def normalise_tail(n: int) -> list[str]:
    """The common end of every leg: yuv420p, SAR 1, time base 1/FPS, pts = frame index, exactly n frames."""
    return ["format=yuv420p", "setsar=1", f"settb=1/{FPS}", "setpts=N", f"trim=end_frame={n}"]


# The frame index inside a leg, from the timestamp: scale counts ``n`` from 1 and crop from 0, so
# expressions that must agree across the two filters use the (identical) pts instead.
_INDEX = f"round(t*{FPS})"


def _looped(n: int, pix_fmt: str) -> list[str]:
    """One decoded still repeated n times, timestamps = frame index (the frame is referenced, not copied)."""
    return [f"format={pix_fmt}", "setsar=1", f"loop=loop={n - 1}:size=1", f"settb=1/{FPS}", "setpts=N"]


def still_leg(n: int) -> list[str]:
    """A photo without motion: converted once, then the same frame referenced n times (no per-frame work)."""
    return [*_looped(n, "yuv420p"), *normalise_tail(n)]


def pan_leg(n: int, width: int, height: int, travel: int, step: int, leftward: bool) -> list[str]:
    """A horizontal pan by a whole number of pixels per frame over a pre-sized (width+travel) image.

    Whole-pixel steps at a constant rate are perfectly uniform motion, and a crop is free.
    The crop runs in yuv444p so odd offsets keep chroma aligned; conversion to 4:2:0 follows.
    """
    x = f"{travel}-{step}*{_INDEX}" if leftward else f"{step}*{_INDEX}"
    return [
        *_looped(n, "yuv444p"),
        f"crop={width}:{height}:x='{x}':y=0:exact=1",
        *normalise_tail(n),
    ]


def zoom_leg(n: int, width: int, height: int, zoom_in: bool) -> list[str]:
    """A centred zoom: every frame the picture is resampled to (W+2a)x(H+2b) and the centre cropped.

    The horizontal margin ``a`` grows by exactly one pixel per frame (uniform speed, no
    zoompan-style rounding of the crop window); ``b`` follows the aspect ratio. The source
    was pre-sized to the largest frame so each frame is a mild downscale, never an upscale.
    """
    a = _INDEX if zoom_in else f"({n - 1}-{_INDEX})"
    b = f"round({a}*{height}/{width})"
    return [
        *_looped(n, "yuv444p"),
        f"scale=w='{width}+2*{a}':h='{height}+2*{b}':eval=frame:flags=bilinear",
        # The offsets repeat a and b: crop keeps the in_w/in_h of its first frame, so those cannot be used.
        f"crop={width}:{height}:x='{a}':y='{b}':exact=1",
        *normalise_tail(n),
    ]


def card_leg(n: int, width: int, height: int, colors: list[str]) -> tuple[str, list[str]]:
    """A moving two-colour gradient: drawn at quarter size (it is smooth) and scaled up, so it is cheap.

    Returns the source filter and the chain after it.
    """
    c0, c1 = [*colors[:2], *DEFAULT_CARD_COLORS[len(colors[:2]) :]]
    small_w, small_h = max(16, width // 4 // 2 * 2), max(16, height // 4 // 2 * 2)
    source = (
        f"gradients=s={small_w}x{small_h}:c0={c0}:c1={c1}:n=2:type=linear"
        f":x0=0:y0=0:x1={small_w}:y1={small_h}:speed=0.008:seed=7:r={FPS}:d={(n + 1) / FPS:.4f}"
    )
    return source, [f"scale={width}:{height}:flags=bicubic", *normalise_tail(n)]


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
    filters = ["format=yuva420p", f"loop=loop={n - 1}:size=1", f"settb=1/{FPS}", f"setpts=N+{start}"]
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
