"""The local backend's vocabulary: every mood, grade, transition, aspect and resolution, defined once.

Each entry carries all that the other modules need to know about it: the words a prompt uses
for it (``intent``), its name in a reply per language (``reply``, through ``label``), the card
colours it gives (``timeline``), the ffmpeg filters of a grade (``render`` via ``graph.grade``) and
the frame size of an aspect at a height (``timeline``, ``reply``). The music bed of a mood is ``music.STYLES``, keyed by these
names (a test checks that every mood has one). Adding a mood, a grade or a transition is a change
to this file only (plus a music style for a mood).

Tuple order matters where a prompt is searched: the first entry whose words match wins (moods,
grades, transitions); for aspects and resolutions the mention furthest right wins, and of two at
the same place the later entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nemowatch.api import formats

EN, ZH = "en", "zh"

# Card gradients: pairs of colours a title or end card cycles through.
Palette = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Term:
    """One named setting: its name in a draft, the prompt words that ask for it, its reply names."""

    name: str
    words: str  # a regular expression over the lowercased prompt (English and Chinese)
    labels: Mapping[str, str]  # language → the name a reply uses


@dataclass(frozen=True)
class Mood(Term):
    """A music mood: also the audio track's name and the cards' colours when no grade is set."""

    track_name: str
    palette: Palette


@dataclass(frozen=True)
class Grade(Term):
    """A colour grade: the ffmpeg filters that make it and the cards' colours (a grade wins over a mood)."""

    filters: str  # filters that work on yuv420p directly (see graph.grade)
    palette: Palette


@dataclass(frozen=True)
class Aspect:
    """An aspect ratio: the words that ask for it and its ratio (width, height)."""

    name: str
    words: str
    ratio: tuple[int, int]

    def size(self, height: int) -> tuple[int, int]:
        """The frame size at a resolution tier: the short side is ``height`` (1080 → 1920x1080)."""
        wide, tall = self.ratio
        if wide >= tall:
            return height * wide // tall, height
        return height, height * tall // wide


@dataclass(frozen=True)
class Resolution:
    """A resolution tier (the frame's short side) and the words that ask for it."""

    height: int
    words: str


_CINEMATIC_PALETTE: Palette = (("#0f2027", "#2c5364"), ("#232526", "#414345"), ("#141e30", "#243b55"))

MOODS: tuple[Mood, ...] = (
    Mood("lofi", r"\blo-?fi\b|\bchill(?:ed|out|y)?\b|低保真", {EN: "lo-fi", ZH: "Lo-fi"}, "Lo-fi",
         (("#41295a", "#2f0743"), ("#3a1c71", "#d76d77"), ("#373b44", "#4286f4"))),
    Mood("calm", r"\bcalm(?:er|ing)?\b|\brelax(?:ing|ed)?\b|\bsoft(?:er)?\b|\bgentle\b|\bpeaceful\b|\bsoothing\b"
         r"|\bmellow\b|\bambient\b|舒缓|轻柔|安静|平静|放松", {EN: "calm", ZH: "舒缓"}, "Calm",
         (("#1d2b64", "#f8cdda"), ("#355c7d", "#6c5b7b"), ("#2c3e50", "#4ca1af"))),
    Mood("cinematic", r"\bcinematic\b|\bepic\b|\bdramatic\b|\borchestral\b|史诗|电影感|大气",
         {EN: "cinematic", ZH: "电影感"}, "Cinematic", _CINEMATIC_PALETTE),
    Mood("upbeat", r"\bupbeat\b|\benergetic\b|\bfun\b|\bhappy\b|\blively\b|\bexciting\b|\bpop\b|欢快|活力|动感|轻快",
         {EN: "upbeat", ZH: "欢快"}, "Upbeat",
         (("#ff512f", "#dd2476"), ("#fc466b", "#3f5efb"), ("#f7971e", "#ff5858"))),
)  # fmt: skip
DEFAULT_MOOD = "upbeat"

GRADES: tuple[Grade, ...] = (
    Grade("bw", r"\bblack[\s-](?:and|&|n)[\s-]white\b|\bb\s?&\s?w\b|\bb/w\b|\bmonochrome\b|\bgr[ae]yscale\b|黑白",
          {EN: "black-and-white", ZH: "黑白"}, "lutyuv=u=128:v=128,eq=contrast=1.12:gamma=0.96",
          (("#000000", "#434343"), ("#232526", "#414345"), ("#3a3a3a", "#0f0f0f"))),
    Grade("warm", r"\bwarm(?:er)?(?:\s+(?:tones?|colou?rs?|look|grade|light))?\b|暖色|暖调|温暖",
          {EN: "warm", ZH: "暖色调"},
          "eq=saturation=1.08:contrast=1.03,lutyuv=u='clip(val-7,0,255)':v='clip(val+8,0,255)'",
          (("#f12711", "#f5af19"), ("#b24592", "#f15f79"), ("#c94b4b", "#4b134f"))),
    Grade("cool", r"\bcool(?:er)?\s+(?:tones?|colou?rs?|look|grade)\b|\bcold (?:tones?|look)\b|冷色|冷调",
          {EN: "cool", ZH: "冷色调"},
          "eq=saturation=1.02:contrast=1.03,lutyuv=u='clip(val+8,0,255)':v='clip(val-6,0,255)'",
          (("#2193b0", "#6dd5ed"), ("#1e3c72", "#2a5298"), ("#0f2027", "#2c5364"))),
    Grade("vibrant", r"\bvibrant\b|\bcolou?rful\b|\bpunchy\b|\bsaturated\b|\bvivid\b|鲜艳|鲜明|明亮",
          {EN: "vibrant", ZH: "鲜艳"}, "eq=saturation=1.32:contrast=1.06:gamma=0.98",
          (("#ee0979", "#ff6a00"), ("#8e2de2", "#4a00e0"), ("#00b09b", "#96c93d"))),
    # Lifted blacks, softened highlights, slightly muted teal cast and a vignette: a film look.
    Grade("cinematic", r"\bcinematic\b|\bfilm(?:ic|[\s-]like|\s+look|\s+grain)\b|\blike a (?:movie|film)\b|电影感|电影风",
          {EN: "cinematic", ZH: "电影感"},
          "lutyuv=y='16+(val-16)*0.93+6*sin(PI*(val-16)/219)':u='clip(val+3,0,255)':v='clip(val-2,0,255)',"
          "eq=saturation=0.88:contrast=1.06,vignette=angle=PI/5",
          _CINEMATIC_PALETTE),
)  # fmt: skip

# Names are ffmpeg xfade transitions (graph.XFADE_TRANSITIONS); "fade" is also what a bare
# "transitions" asks for.
TRANSITIONS: tuple[Term, ...] = (
    Term("fadeblack", r"\b(?:fade|dip)s?(?:\s+(?:to|through|into))\s+black\b|黑场", {EN: "fade-to-black", ZH: "黑场"}),
    Term("slideleft", r"\bslid(?:e|ing)\b|滑动|推移", {EN: "slide", ZH: "滑动"}),
    Term("wipeleft", r"\bwipes?\b|擦除", {EN: "wipe", ZH: "擦除"}),
    Term(
        "zoomin",
        # "transition ... zoom" in one clause; the span after a "transition" stops at the next one
        # (which is then tried itself), so clauses of many "transition"s stay linear.
        r"\bzoom(?:[\s-]in)?\s+transitions?\b|\btransitions?\b(?:(?!\btransitions?\b)[^.,;])*\bzoom|\buse (?:a )?zoom\b|缩放转场",
        {EN: "zoom", ZH: "缩放"},
    ),
    Term("dissolve", r"\bdissolves?\b|溶解", {EN: "dissolve", ZH: "溶解"}),
    Term("fade", r"\bcross-?fades?\b|\bcross-?fading\b|\bfades?\b(?!\s+(?:in|out|to|through))|淡入淡出|渐变",
         {EN: "crossfade", ZH: "淡入淡出"}),
)  # fmt: skip
DEFAULT_TRANSITION = "fade"

# A later entry wins a tie at the same place: "16:9" last, the default.
ASPECTS: tuple[Aspect, ...] = (
    Aspect("9:16", r"\b9\s*[:x×/]\s*16\b|\bvertical(?:ly)?\b|\bportrait\b|\breels?\b|\btik\s?toks?\b|\bshorts\b"
           r"|\bstor(?:y|ies)\b|竖屏|竖版|竖向|竖幅|抖音|快手", (9, 16)),
    Aspect("1:1", r"\b1\s*[:x×/]\s*1\b|\bsquare\b|\b(?:instagram|ig|insta|feed) posts?\b|正方形|方形|方屏", (1, 1)),
    Aspect("16:9", r"\b16\s*[:x×/]\s*9\b|\blandscape\b|\bhorizontal(?:ly)?\b|\bwide\s?screen\b|\byoutube\b"
           r"|横屏|横版|横向|横幅", (16, 9)),
)  # fmt: skip
DEFAULT_ASPECT = "16:9"
assert {aspect.name for aspect in ASPECTS} == set(formats.ASPECTS), "the shapes a job may ask for"

# 360 and 180 are preview tiers: quick drafts to check a cut before the full render (and small,
# fast test renders). 1080 last: of "720p or 1080p" at one place, the later entry wins.
RESOLUTIONS: tuple[Resolution, ...] = (
    Resolution(720, r"\b720p?\b|\bhd ready\b|\b1280\s*x\s*720\b|\b720\s*x\s*1280\b"),
    Resolution(360, r"\b360p\b|\b640\s*x\s*360\b|\b360\s*x\s*640\b"),
    Resolution(180, r"\b180p\b|\b320\s*x\s*180\b|\b180\s*x\s*320\b"),
    Resolution(1080, r"\b1080p?\b|\bfull[\s-]?hd\b|\bfhd\b|\b1920\s*x\s*1080\b|\b1080\s*x\s*1920\b|\b4k\b|\b2160p\b"
               r"|\b1440p\b"),
)  # fmt: skip
DEFAULT_HEIGHT = 1080

MOOD = {mood.name: mood for mood in MOODS}
GRADE = {grade.name: grade for grade in GRADES}
TRANSITION = {transition.name: transition for transition in TRANSITIONS}
ASPECT = {aspect.name: aspect for aspect in ASPECTS}
# Built tallest first: plan.plan_of breaks a tie between two tiers by this set's iteration order,
# which for these ints follows the order they were added in (and did before this module existed).
HEIGHTS = frozenset(sorted((resolution.height for resolution in RESOLUTIONS), reverse=True))
# Every frame size a draft can have, by (aspect, height).
SIZES = {(aspect.name, height): aspect.size(height) for aspect in ASPECTS for height in sorted(HEIGHTS)}


def aspect_of(width: int, height: int) -> str:
    """The aspect a frame of this size is closest to: the one of the same shape (tall, square, wide)."""

    def shape(wide: int, tall: int) -> int:
        return (wide > tall) - (wide < tall)

    return next(aspect.name for aspect in ASPECTS if shape(*aspect.ratio) == shape(width, height))


def palette(grade: str | None, mood: str) -> Palette:
    """The card colours: the grade's when there is one (it is what the user asked to see), else the mood's."""
    if grade:
        return GRADE[grade].palette if grade in GRADE else MOOD[DEFAULT_MOOD].palette
    return MOOD.get(mood, MOOD[DEFAULT_MOOD]).palette


def label(terms: Mapping[str, Term], lang: str, name: str) -> str:
    """A mood, grade or transition's name in ``lang`` (English, then the name itself, when unknown)."""
    term = terms.get(name)
    if term is None:
        return name
    return term.labels.get(lang) or term.labels[EN]
