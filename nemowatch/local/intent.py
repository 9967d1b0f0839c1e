"""Read what a prompt asks for (English and Chinese), deterministically: no model, only patterns."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TypeVar

from nemowatch.local.vocabulary import ASPECTS, DEFAULT_TRANSITION, GRADES, MOODS, RESOLUTIONS, TRANSITIONS

_T = TypeVar("_T")

_ONES = {
    "zero": 0, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_WORD_NUM = (
    r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?"
    r"|zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|an?)"
)
_NUM = rf"(?:\d+(?:\.\d+)?|{_WORD_NUM})"
_SEC = r"(?:seconds?|secs?|s)\b"
_MIN = r"(?:minutes?|mins?)\b"
_EN_DURATION = re.compile(
    rf"(?<![\w.])(?P<m>{_NUM})[\s-]*{_MIN}(?:[\s-]*(?:and[\s-]+)?(?:(?P<ms>{_NUM})[\s-]*{_SEC}|(?P<half>a half)))?"
    rf"|(?<![\w.])(?P<s>{_NUM})[\s-]*{_SEC}"
    r"|(?P<halfmin>half[\s-](?:a[\s-])?minute)"
)
_FROM_TO = re.compile(
    rf"from\s+(?:{_NUM})[\s-]*(?:(?P<unit>{_SEC}|{_MIN})\s*)?to\s+(?P<to>{_NUM})(?![\w.:])[\s-]*(?P<unit2>{_SEC}|{_MIN})?"
)
# The daemon turns job.toml overrides into "Aspect 9:16. Duration 20 seconds.": these win over the prose.
_EXPLICIT_DURATION = re.compile(
    rf"\b(?:duration|length)(?:_s)?(?:\s*(?:[:=]|of|is|to|should be))?\s*(?P<n>\d+(?:\.\d+)?)(?![\d:x])[\s-]*(?P<unit>{_SEC}|{_MIN})?"
)
_EXPLICIT_ASPECT = re.compile(
    r"\baspect(?:[\s_-]ratio)?(?:\s*(?:[:=]|of|is|to|should be))?\s*[\"']?(?P<a>"
    + "|".join(re.escape(aspect.name) for aspect in ASPECTS)
    + r")\b"
)
# Matched at the end of a duration ("3 seconds each").
_PER_SHOT = re.compile(r"\s*(?:each|apiece|per\s+(?:photo|image|picture|slide|shot|clip))\b")
# Searched in the few characters before a duration ("each photo for about 3 seconds").
_PER_SHOT_BEFORE = re.compile(
    r"\b(?:each|every|per)\s+(?:photo|image|picture|slide|shot|clip)s?\s+(?:(?:for|lasts?|of|at)\s*)?(?:(?:about|around|roughly)\s*)?$"
)
# How far before a duration _PER_SHOT_BEFORE looks: its longest wording ("every picture lasts
# roughly ") with room for extra spaces. Searching the whole text before each duration made a
# prompt of many durations quadratic.
_PER_SHOT_BEFORE_CHARS = 80
_ZH_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
# Each alternative starts only at the first character of its run: a start inside a run of digits
# or numerals can only match where the run's start already would have (the unit comes after the
# whole run), and trying every start made a long run of digits quadratic.
_ZH_NUM = r"(?:(?<!\d)\d+(?:\.\d+)?|(?<![零一二两三四五六七八九十百])[零一二两三四五六七八九十百]+)"
_ZH_DURATION = re.compile(
    rf"(?P<m>{_ZH_NUM})\s*分(?:钟)?\s*(?:(?P<ms>{_ZH_NUM})\s*秒|(?P<half>半))?|(?P<s>{_ZH_NUM})\s*秒|(?P<halfmin>半分钟)"
)

# Each list: (pattern, value), from the vocabulary. Aspect mentions are collected with positions;
# the last one wins, so "switch from landscape to 9:16" means 9:16 and "YouTube Shorts" means vertical.
_ASPECT_WORDS = [(aspect.words, aspect.name) for aspect in ASPECTS]
_HEIGHT_WORDS = [(resolution.words, resolution.height) for resolution in RESOLUTIONS]
_TRANSITION_KINDS = [(transition.words, transition.name) for transition in TRANSITIONS]
_GRADE_WORDS = [(grade.words, grade.name) for grade in GRADES]
_MOODS = [(mood.words, mood.name) for mood in MOODS]
_TRANSITION_NONE = re.compile(
    r"\bno transitions?\b|\bwithout (?:any )?transitions?\b|\b(?:hard|straight|jump|simple) cuts?\b|\bjust cuts\b"
    r"|\bremove (?:the |all )?transitions?\b|无转场|不要转场|没有转场|去掉转场|硬切"
)
_TRANSITION_ANY = re.compile(r"\btransitions?\b|\btransitioning\b|转场|过渡")
_GRADE_OFF = re.compile(
    r"\b(?:no|remove (?:the )?|without (?:the |a )?|drop (?:the )?)(?:colou?r )?(?:filter|grade|grading|look|effect)s?\b"
    r"|\bremove (?:the )?(?:black[\s-]and[\s-]white|b&w|b/w|monochrome|warm|cool|vibrant|cinematic)\b"
    r"|\b(?:original|natural|normal|full) colou?rs?\b|\bback (?:in|to) colou?r\b|\bin colou?r\b|去掉滤镜|原色|不要滤镜"
)
_MUSIC_OFF = re.compile(
    r"\bno (?:background |back-ground )?(?:music|bgm|soundtrack|audio|sound)\b|\bwithout (?:any |the )?(?:music|bgm|soundtrack)\b"
    r"|\bsilent\b|\bmuted?\b(?! (?:the )?clips?)|\b(?:remove|drop|delete|kill|lose|cut|take out|turn off) (?:the )?(?:background )?(?:music|bgm|soundtrack)\b"
    r"|\bmusic off\b|无音乐|不要音乐|没有音乐|去掉音乐|删除音乐|删掉音乐|静音|不要配乐|去掉配乐|不要背景音乐|去掉背景音乐"
)
_MUSIC_ON = re.compile(
    r"\bmusic(?:al)?\b|\bsoundtrack\b|\bbgm\b|\bbackground (?:track|audio)\b|\bsongs?\b|\btunes?\b|\bbeats?\b"
    r"|背景音乐|配乐|音乐|\bbgm"
)
_LOUDER = re.compile(
    r"\blouder\b|\bturn (?:up|it up)\b|\bturn the music up\b|\b(?:raise|increase|boost) the (?:music|volume)\b|大声"
)
_QUIETER = re.compile(
    r"\bquieter\b|\bturn (?:down|it down)\b|\bturn the music down\b|\b(?:lower|decrease|reduce) the (?:music|volume)\b|小声|音量小"
)
_CAPTIONS_OFF = re.compile(
    r"\bno (?:text(?: overlays?)?|captions?|subtitles?)\b|\bwithout (?:any )?(?:text(?: overlays?)?|captions?|subtitles?)\b"
    r"|\b(?:remove|drop|delete|hide|lose|take out) (?:the |all )?(?:text overlays?|captions?|subtitles?)\b"
    r"|去掉字幕|删除字幕|删掉字幕|不要字幕|无字幕|去掉文字|不要文字"
)
_CAPTIONS_ON = re.compile(
    r"\bcaptions?\b|\bcaptioned\b|\bsubtitles?\b|\btext overlays?\b|\boverlay text\b|\bon-?screen text\b|\btext on (?:each|every|the)\b"
    r"|\blower thirds?\b|字幕|文字说明|文案"
)
_TITLE_OFF = re.compile(
    r"\b(?:no|remove (?:the )?|without (?:a |the )?|drop (?:the )?|delete (?:the )?)title\b|去掉标题|不要标题|删除标题"
)
_TITLE_AFTER = re.compile(
    r"(?:\btitle(?:d| it| should be| is)?(?:\s*(?:to|as))?(?:\s*[:：])?\s+|\bcalled\s+|\bnamed\s+|\bheadline\s*[:：]\s*"
    r"|\bchange the title to\s+|标题(?:改成|改为|是|为)?(?:\s*[:：])?\s*|题为|题目(?:\s*[:：])?\s*)"
    r"(?P<t>[^,.;!?\n，。；！？]{1,60})",
    re.IGNORECASE,
)
# What ends a title phrase ("Summer Sale with music" → "Summer Sale"); from a run's first space only.
_TITLE_END = re.compile(r"(?<!\s)\s+(?:with|and|in|for|using)\s+")
_QUOTES = re.compile(
    r"\"(?P<a>[^\"\n]{1,120})\"|“(?P<b>[^”\n]{1,120})”|「(?P<c>[^」\n]{1,120})」|『(?P<d>[^』\n]{1,120})』|《(?P<e>[^》\n]{1,120})》"
    r"|‘(?P<f>[^’\n]{1,120})’|(?:(?<=^)|(?<=[\s:(（]))'(?P<g>[^'\n]{1,120}?)'(?=[\s.,;:!?)）]|$)"
)
# A web address is bounded like a real one (labels of at most 63 characters, a short path): it
# becomes the end card's text, and every description line is compared with that text.
_CTA = re.compile(
    r"\b(?:shop now|buy now|order (?:now|today|online)|book (?:now|today|a table)|sign up(?: today| now)?|learn more"
    r"|link in (?:the |my |our )?bio|get yours(?: today| now)?|visit (?:us at )?[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}(?:/\S{0,100})?"
    r"|call (?:us )?(?:now|today)|follow us(?: on \w+)?|subscribe(?: now| today)?|download (?:it )?now|try it (?:free|now|today)"
    r"|swipe up|reserve (?:now|today|your \w+)|available now|in stores now)"
    r"|立即购买|马上购买|点击链接|关注我们|立即下单|马上下单|立即预订",
    re.IGNORECASE,
)
_PROMO = re.compile(
    r"\bpromo(?:tional|ting|te|s)?\b|\badvert(?:isement|ising)?\b|\bads?\b|\bcommercial\b|\bmarketing\b|\bsales?\b"
    r"|\bproducts?\b|\blaunch(?:ing)?\b|\bbrand(?:ed|ing)?\b|\bshop\b|\bstore\b|宣传|推广|广告|促销|产品|带货"
)
_FAST = re.compile(
    r"\bfaster\b|\bfast[\s-]?paced\b|\bquick(?:er)? (?:cuts|pace|pacing)\b|\bspeed (?:it )?up\b|\bsnappier\b|\bpick up the pace\b"
    r"|节奏快|快节奏|加快|快一点"
)
_SLOW = re.compile(
    r"\bslower\b|\bslow[\s-]?paced\b|\bslow (?:it )?down\b|\bmore time on each\b|\bcalmer pace\b|节奏慢|慢节奏|放慢|慢一点"
)
_SHORTER = re.compile(r"\bshorter\b|\btrim it\b|\bcut it down\b|\bless long\b|缩短|短一点|短一些|短点")
_LONGER = re.compile(r"\blonger\b|\blengthen\b|\bextend it\b|加长|延长|长一点|长一些|长点")
_LOGO_OFF = re.compile(
    r"\b(?:no |remove (?:the )?|without (?:the |a |any )?|drop (?:the )?|hide (?:the )?)(?:logo|watermark|end card)s?\b|去掉水印|去掉标志|不要水印|去掉logo|不要logo"
)
_LOGO_ON = re.compile(r"\blogos?\b|\bwatermark\b|\bbrand(?:ing)? (?:mark|file)\b|水印|标志|商标")
_CLIP_AUDIO_OFF = re.compile(
    r"\bsilent\b|\bno (?:audio|sound)\b|\bmute (?:the |all )?(?:clips?|videos?|original (?:audio|sound))\b"
    r"|\bwithout (?:the )?(?:original|clip|clips'?|video) (?:audio|sound)\b|\b(?:remove|drop) (?:the )?(?:original|clip|clips'?) (?:audio|sound)\b"
    r"|静音|去掉原声|不要原声"
)
_CLIP_AUDIO_ON = re.compile(
    r"\bkeep (?:the )?(?:original|clip|clips'?) (?:audio|sound)\b|\bunmute\b|保留原声"
)
_EXPORT = re.compile(r"\bexport\b|\bdownload\b|\brender\b|\bsend me the video\b|导出|下载|渲染")
_SUBJECT = re.compile(
    r"\b(?:about|promoting|promote|advertising|advertise|showcasing|showcase|featuring|introducing|presenting|celebrating"
    r"|announcing|explaining|(?:promo|video|ad|advert|commercial|reel|teaser|trailer)s?\s+(?:for|of))\s+(?:(?:a|an|the|our|my|your|this|these|some)\s+)?(?P<s>[^,.;:!?\n\[\]—–]{2,60})",
    re.IGNORECASE,
)
_ZH_SUBJECT = re.compile(
    r"关于(?P<s>[^，。；！？,.;!?]{1,20}?)的|(?:宣传|推广|介绍)(?P<t>[^，。；！？,.;!?的]{1,20})"
)
# Words that end a subject phrase ("a coffee shop in vertical format" → "coffee shop").
_SUBJECT_STOP = re.compile(
    r"(?<!\s)\s+(?:with|in|using|for|and|that|which|set to|on|at|as|from|into|no|without|plus)\b.*$|(?<!\s)\s+\d.*$",
    re.IGNORECASE,
)
_DESCRIPTION = re.compile(
    r"(?:description|script|text|copy|details|about it|story|points|notes|captions|字幕|文案|描述|介绍)\s*[:：]\s*(?P<d>.+)$",
    re.IGNORECASE | re.DOTALL,
)
# Placeholders left in a pasted template ("[your product]", "<name>") are masked by
# _without_placeholders, which does what re.sub(r"\[[^\]]*\]|<[^>]*>", " ", text) did in one pass.
_OPENER = re.compile(r"[\[<]")
_CLOSER = {"[": "]", "<": ">"}
# " - " between two phrases of a sentence. The run of spaces is matched from its first character
# only (a start inside it fails the same way): from every start, a long run was quadratic.
_DASH_BREAK = re.compile(r"(?<!\s)\s+[—–-]\s+")
# Spec vocabulary: a clause made only of these words asks for a setting, it describes no content.
_SPEC_WORDS = re.compile(
    r"\b(?:a|an|the|my|our|your|these|this|those|it|me|please|and|with|in|into|to|of|as|for|at|from|some|any|no|without|nice"
    r"|generate|create|make|turn|combine|build|produce|render|export|output|give|put|add|use|want|need|i|we|can|you"
    r"|video|videos|clip|clips|mp4|movie|film|reel|slideshow|slide\s?show|montage|explainer|promo|promotional|short"
    r"|photos?|images?|pictures?|files?|logo|format|formats|aspect|ratio|resolution|quality|hd|full|voice-?over|narration"
    r"|vertical|horizontal|portrait|landscape|square|widescreen|tiktok|reels?|shorts|stories|youtube|instagram|post"
    r"|music|background|soundtrack|bgm|track|upbeat|energetic|calm|relaxing|soft|gentle|lo-?fi|chill|cinematic|epic"
    r"|dramatic|fun|happy|warm|cool|cold|tones?|colou?rs?|colou?rful|vibrant|punchy|black|white|b&w|monochrome|look|style"
    r"|transitions?|crossfades?|fades?|slides?|wipes?|zoom|dissolves?|cuts?|text|overlays?|captions?|subtitles?|titles?"
    r"|seconds?|secs?|s|minutes?|mins?|long|length|duration|p|\d+(?:\.\d+)?(?:p|s)?|\d+\s*[:x]\s*\d+|"
    + _WORD_NUM
    + r")\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])\s*|\n+")


@dataclass
class Intent:
    """What one message asks for; None means the message says nothing about that setting."""

    duration_s: float | None = None
    duration_scale: float | None = None  # "shorter" / "longer", relative to the current length
    shot_s: float | None = None  # "3 seconds each"
    aspect: str | None = None
    height: int | None = None
    transition_set: bool = False
    transition: str | None = None
    grade_set: bool = False
    grade: str | None = None
    music: bool | None = None
    mood: str | None = None
    volume_step: float = 0.0
    captions: bool | None = None
    title: str | None = None
    title_off: bool = False
    end_text: str | None = None
    pace: str | None = None  # "fast" | "slow"
    logo: bool | None = None
    clip_audio: bool | None = None  # False: mute the clips' own sound
    promo: bool = False
    export: bool = False
    subject: str | None = None
    lines: list[str] = field(default_factory=list)  # pasted description / content sentences
    language: str = "en"  # "zh" when the message is written in Chinese

    def asks_for_anything(self) -> bool:
        """True when the message names at least one setting this director can change."""
        return any(
            (
                self.duration_s is not None,
                self.duration_scale is not None,
                self.shot_s is not None,
                self.aspect is not None,
                self.height is not None,
                self.transition_set,
                self.grade_set,
                self.music is not None,
                self.mood is not None,
                self.volume_step != 0.0,
                self.captions is not None,
                self.title is not None,
                self.title_off,
                self.end_text is not None,
                self.pace is not None,
                self.logo is False,
                self.clip_audio is not None,
            )
        )


def parse(text: str) -> Intent:
    """Parse one message; quoted text is read as a title and masked before keyword matching."""
    text = text.replace("\ufeff", "").strip()
    quoted = _quoted(text)
    # Keywords inside a quoted title ("No Music Festival") must not be read as settings.
    masked = _QUOTES.sub(" ", text) if quoted else text
    low = masked.lower()
    intent = Intent()
    _read_duration(low, intent)
    explicit_aspect = _EXPLICIT_ASPECT.search(low)
    intent.aspect = explicit_aspect.group("a") if explicit_aspect else _last_match(low, _ASPECT_WORDS)
    intent.height = _last_match(low, _HEIGHT_WORDS)
    _read_transition(low, intent)
    _read_grade(low, intent)
    _read_music(low, intent)
    if _CAPTIONS_OFF.search(low):
        intent.captions = False
    elif _CAPTIONS_ON.search(low):
        intent.captions = True
    _read_title(text, low, quoted, intent)
    cta = _CTA.search(masked)
    if len(quoted) > 1:
        intent.end_text = quoted[1]
    elif cta:
        intent.end_text = _sentence_case(cta.group(0))
    intent.pace = "fast" if _FAST.search(low) else "slow" if _SLOW.search(low) else None
    if _SHORTER.search(low):
        intent.duration_scale = 2 / 3
    elif _LONGER.search(low):
        intent.duration_scale = 1.5
    intent.logo = False if _LOGO_OFF.search(low) else True if _LOGO_ON.search(low) else None
    if _CLIP_AUDIO_OFF.search(low):
        intent.clip_audio = False
    elif _CLIP_AUDIO_ON.search(low):
        intent.clip_audio = True
    intent.promo = bool(_PROMO.search(low)) or intent.end_text is not None
    intent.export = bool(_EXPORT.search(low))
    intent.subject = _subject(masked)
    intent.lines = content_lines(masked)
    intent.language = _language(masked)
    return intent


def _language(text: str) -> str:
    """ "zh" when Chinese characters outnumber Latin words, else "en"."""
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    latin = len(re.findall(r"[A-Za-z]+", text))
    return "zh" if han and han >= 2 * latin else "en"


def _quoted(text: str) -> list[str]:
    """Quoted strings, unless the quotes wrap the whole prompt (a pasted example, not a title)."""
    found = [next(g for g in m.groups() if g is not None).strip() for m in _QUOTES.finditer(text)]
    found = [q for q in found if q]
    if len(found) == 1 and len(found[0]) >= 0.6 * len(text.strip(" \"'“”「」")) and len(found[0].split()) > 6:
        return []
    return found


def unquote_whole(text: str) -> str:
    """The prompt without quotes that wrap all of it (people paste examples with their quotes)."""
    stripped = text.strip()
    for left, right in (('"', '"'), ("“", "”"), ("'", "'"), ("「", "」")):
        if len(stripped) > 2 and stripped.startswith(left) and stripped.endswith(right):
            inner = stripped[1:-1]
            if left not in inner and right not in inner:
                return inner
    return text


def _read_duration(low: str, intent: Intent) -> None:
    """An explicit "Duration N seconds." (job.toml) wins; else "from A to B" → B, else the first length.

    "N seconds each" / "each photo for N seconds" sets the per-shot length instead.
    """
    explicit = _EXPLICIT_DURATION.search(low)
    if explicit:
        value = _number(explicit.group("n"))
        if value is not None:
            unit = explicit.group("unit") or "s"
            intent.duration_s = value * (60 if unit.startswith("min") else 1)
            return
    from_to = _FROM_TO.search(low)
    if from_to:
        unit = from_to.group("unit2") or from_to.group("unit") or "s"
        value = _number(from_to.group("to"))
        if value is not None:
            intent.duration_s = value * (60 if unit.startswith("min") else 1)
            return
    for match in _EN_DURATION.finditer(low):
        seconds = _en_seconds(match)
        if seconds is None:
            continue
        # Matched in place, not on slices: a copy of the rest of the text per duration was quadratic.
        before = max(0, match.start() - _PER_SHOT_BEFORE_CHARS)
        if _PER_SHOT.match(low, match.end()) or _PER_SHOT_BEFORE.search(low, before, match.start()):
            intent.shot_s = intent.shot_s or seconds
            continue
        intent.duration_s = seconds
        return
    for match in _ZH_DURATION.finditer(low):
        seconds = _zh_seconds(match)
        if seconds is not None:
            intent.duration_s = seconds
            return


def _en_seconds(match: re.Match[str]) -> float | None:
    if match.group("halfmin"):
        return 30.0
    if match.group("m") is not None:
        minutes = _number(match.group("m"))
        if minutes is None:
            return None
        extra = 30.0 if match.group("half") else (_number(match.group("ms")) or 0.0)
        return minutes * 60 + extra
    if match.group("s") in ("a", "an"):
        return None  # "a second video" means another one, not one second
    return _number(match.group("s"))


def _zh_seconds(match: re.Match[str]) -> float | None:
    if match.group("halfmin"):
        return 30.0
    if match.group("m") is not None:
        minutes = _zh_number(match.group("m"))
        if minutes is None:
            return None
        extra = 30.0 if match.group("half") else (_zh_number(match.group("ms") or "") or 0.0)
        return minutes * 60 + extra
    return _zh_number(match.group("s"))


def _number(word: str | None) -> float | None:
    """``"30"``, ``"2.5"``, ``"thirty"``, ``"twenty-five"``, ``"a"`` → a number (None for none or too many digits)."""
    if not word:
        return None
    word = word.strip().lower()
    try:
        return _finite(float(word))
    except ValueError:
        pass
    parts = re.split(r"[\s-]+", word)
    total = 0
    for part in parts:
        if part in _TENS:
            total += _TENS[part]
        elif part in _ONES:
            total += _ONES[part]
        else:
            return None
    return float(total)


def _finite(value: float) -> float | None:
    """The value, or None for the infinity 400 digits parse to (it cannot become a length)."""
    return value if math.isfinite(value) else None


def _zh_number(text: str) -> float | None:
    """Arabic digits or Chinese numerals up to the hundreds (``"十五"`` → 15, ``"一百二十"`` → 120)."""
    if not text:
        return None
    try:
        return _finite(float(text))
    except ValueError:
        pass
    total = 0
    current = 0
    for char in text:
        if char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return float(total + current)


def _last_match(low: str, table: list[tuple[str, _T]]) -> _T | None:
    """The value of the pattern whose last match sits furthest right in the text."""
    best: tuple[int, _T] | None = None
    for pattern, value in table:
        for match in re.finditer(pattern, low):
            if best is None or match.start() >= best[0]:
                best = (match.start(), value)
    return best[1] if best else None


def _read_transition(low: str, intent: Intent) -> None:
    if _TRANSITION_NONE.search(low):
        intent.transition_set, intent.transition = True, None
        return
    for pattern, name in _TRANSITION_KINDS:
        if re.search(pattern, low):
            intent.transition_set, intent.transition = True, name
            return
    if _TRANSITION_ANY.search(low):
        intent.transition_set, intent.transition = True, DEFAULT_TRANSITION


def _read_grade(low: str, intent: Intent) -> None:
    if _GRADE_OFF.search(low):
        intent.grade_set, intent.grade = True, None
        return
    for pattern, name in _GRADE_WORDS:
        if re.search(pattern, low):
            intent.grade_set, intent.grade = True, name
            return


def _read_music(low: str, intent: Intent) -> None:
    if _MUSIC_OFF.search(low):
        intent.music = False
        return
    for pattern, mood in _MOODS:
        if re.search(pattern, low):
            intent.mood = mood
            break
    if _MUSIC_ON.search(low):
        intent.music = True
    if _LOUDER.search(low):
        intent.volume_step = 0.15
    elif _QUIETER.search(low):
        intent.volume_step = -0.15


def _read_title(text: str, low: str, quoted: list[str], intent: Intent) -> None:
    if _TITLE_OFF.search(low):
        intent.title_off = True
        return
    if quoted:
        intent.title = quoted[0]
        return
    match = _TITLE_AFTER.search(text)
    if match:
        title = _TITLE_END.split(match.group("t").strip(), maxsplit=1)[0].strip(" '\"")
        if title and not re.fullmatch(r"(?:cards?|text|screen|card|slide|overlay)s?", title, re.IGNORECASE):
            intent.title = title


def _subject(text: str) -> str | None:
    """What the video is about ("promoting a coffee shop, vertical" → "Coffee Shop")."""
    match = _SUBJECT.search(_without_placeholders(text))
    if match:
        subject = _SUBJECT_STOP.sub("", match.group("s")).strip(" -'\"")
        words = subject.split()
        if words and not all(_SPEC_WORDS.fullmatch(w) for w in words):
            return title_case(" ".join(words[:6]))
    zh = _ZH_SUBJECT.search(text)
    if zh:
        return (zh.group("s") or zh.group("t") or "").strip() or None
    return None


def _without_placeholders(text: str) -> str:
    """The text with each ``[...]`` and ``<...>`` replaced by a space, left to right.

    The regex tried every ``[`` with no ``]`` after it against the whole rest of the text
    (quadratic); here such an opener is skipped at once, and each closer is found by one scan
    of the text that is then masked.
    """
    last = {opener: text.rfind(closer) for opener, closer in _CLOSER.items()}
    pieces: list[str] = []
    done = 0
    for found in _OPENER.finditer(text):
        at, opener = found.start(), found.group()
        if at < done or at > last[opener]:
            continue  # inside the placeholder just masked, or nothing can close it
        pieces += [text[done:at], " "]
        done = text.index(_CLOSER[opener], at + 1) + 1
    pieces.append(text[done:])
    return "".join(pieces)


def content_lines(text: str) -> list[str]:
    """Sentences that describe content rather than ask for settings (a pasted description)."""
    text = _without_placeholders(text)
    described = _DESCRIPTION.search(text)
    body = described.group("d") if described else text
    lines: list[str] = []
    for sentence in _SENTENCES.split(body):
        for part in _DASH_BREAK.split(sentence):
            part = part.strip(" \t-–—•*\"'“”")
            if part and not _is_instruction(part, described=described is not None):
                lines.append(_short_line(part))
    return [line for line in lines if line]


def _is_instruction(sentence: str, *, described: bool) -> bool:
    """A sentence made of setting words, or (outside a pasted description) a request for a video."""
    words = re.findall(r"[\w&'-]+", sentence)
    content = [w for w in words if not _SPEC_WORDS.fullmatch(w)]
    if re.search(r"[\u4e00-\u9fff]", sentence):
        if re.search(r"视频|秒|分钟|音乐|字幕|转场|竖屏|横屏|生成|制作|做一个|剪辑|标题|黑白|格式", sentence):
            return not described or not content
        return False
    if described:
        return not content
    if len(content) < 2:
        return True
    # Outside a pasted description, a sentence that names the video or starts with a verb is a request.
    return bool(
        re.match(
            r"^(?:please\s+)?(?:make|create|generate|turn|combine|build|produce|render|export|add|use|put|give"
            r"|making|creating|generating|turning|combining|building|producing|set|switch|change|remove|keep"
            r"|i want|i need|i'd like|we want|we need|can you|could you)\b",
            sentence,
            re.IGNORECASE,
        )
        or re.search(
            r"\b(?:videos?|slideshows?|reels?|clips?|montage|mp4|movie|title[ds]?|called|captions?|music|transitions?)\b",
            sentence,
            re.IGNORECASE,
        )
    )


def _short_line(sentence: str, limit: int = 48) -> str:
    """A card- or caption-sized line: whole when short, else cut at a word boundary with an ellipsis."""
    sentence = re.sub(r"\s+", " ", sentence).strip().rstrip(".。;；")
    if len(sentence) <= limit:
        return sentence
    cut = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:-— ")
    return (cut or sentence[:limit]) + "…"


_SMALL_WORDS = {
    "a",
    "an",
    "the",
    "and",
    "or",
    "of",
    "at",
    "in",
    "on",
    "to",
    "for",
    "with",
    "by",
    "from",
    "vs",
}


def title_case(text: str) -> str:
    """Title case that keeps small words small and leaves words with inner capitals (iPhone, USA) alone."""
    words = text.split()
    out = []
    for index, word in enumerate(words):
        if any(c.isupper() for c in word[1:]) or not word[:1].isalpha():
            out.append(word)
        elif index > 0 and word.lower() in _SMALL_WORDS:
            out.append(word.lower())
        else:
            out.append(word[:1].upper() + word[1:].lower() if word.islower() else word[:1].upper() + word[1:])
    return " ".join(out)


def prettify(name: str) -> str:
    """A job or file name made readable: ``"summer-sale_2026"`` → ``"Summer Sale 2026"``."""
    stem = re.sub(r"\.[A-Za-z0-9]{2,4}$", "", name.strip())
    stem = re.sub(r"[_\-.+]+", " ", stem)
    return title_case(re.sub(r"\s+", " ", stem).strip())


def _sentence_case(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]
