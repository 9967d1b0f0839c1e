"""What the director says, in the message's language: English, or Chinese for a Chinese message.

Replies are put together from these phrases (the daemon shows them to users in job.log and
result.json), so both languages say the same things. A phrase missing in a language falls
back to English. The names of moods, grades and transitions are in ``vocabulary.py``. The
timeline summary after a reply stays in English: it is the API's format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nemowatch.local.vocabulary import EN, ZH

__all__ = ["EN", "ZH", "Note", "Phrase", "count", "join", "say", "seconds_text"]

# Counted nouns: English adds an "s"; Chinese puts a measure word between number and noun.
_ZH_COUNTED = {
    "photo": "张照片",
    "clip": "段视频",
    "caption": "条字幕",
    "animated title card": "张动画标题卡",
}

_PHRASES: dict[str, dict[str, str]] = {
    # -- a new video --
    "made": {EN: "Made a {size} from {source}{features}.", ZH: "已制作{size}，素材为{source}{features}。"},
    "size": {EN: "{seconds}-second {aspect} video", ZH: "一段{seconds}秒的{aspect}视频"},
    "size_height": {EN: " in {height}p", ZH: "（{height}p）"},
    "with": {EN: " with {items}", ZH: "，包含{items}"},
    "transitions": {EN: "{name} transitions", ZH: "{name}转场"},
    "ken_burns": {EN: "gentle Ken Burns motion", ZH: "轻柔的 Ken Burns 推拉效果"},
    "your_music": {EN: "your music “{name}”", ZH: "你的音乐“{name}”"},
    "music_bed": {EN: "{article} {mood} music bed", ZH: "{mood}风格的背景音乐"},
    "clip_sound": {EN: "the clips' own sound", ZH: "视频片段的原声"},
    "clip_sound_under": {EN: "the clips' own sound under it", ZH: "压在音乐下的视频片段原声"},
    "look": {EN: "a {grade} look", ZH: "{grade}的画面风格"},
    "title": {EN: "the title “{title}”", ZH: "标题“{title}”"},
    "logo": {EN: "your logo as a watermark and end card", ZH: "你的标志（作为水印和片尾卡）"},
    "end_card": {EN: "an end card saying “{text}”", ZH: "片尾卡“{text}”"},
    "card_lines": {EN: "the lines {lines}", ZH: "文字{lines}"},
    "quoted": {EN: "“{text}”", ZH: "“{text}”"},
    # -- an edit --
    "length": {EN: "Changed the length to {seconds} seconds.", ZH: "时长改为{seconds}秒。"},
    "shape": {EN: "Switched to {aspect} ({width}x{height}).", ZH: "已改为{aspect}（{width}x{height}）。"},
    "transitions_now": {EN: "Switched to {name} transitions.", ZH: "已改用{name}转场。"},
    "transitions_off": {
        EN: "Removed the transitions: the shots now cut straight to each other.",
        ZH: "已去掉转场：镜头之间直接切换。",
    },
    "look_now": {EN: "Applied a {grade} look.", ZH: "已应用{grade}的画面风格。"},
    "look_off": {EN: "Removed the colour grade.", ZH: "已去掉调色。"},
    "music_off": {EN: "Removed the music.", ZH: "已去掉音乐。"},
    "music_added": {EN: "Added {music}.", ZH: "已添加{music}。"},
    "music_changed": {EN: "Changed the music to {music}.", ZH: "音乐已换成{music}。"},
    "volume": {EN: "Set the music volume to {percent}%.", ZH: "音乐音量已设为{percent}%。"},
    "clip_sound_on": {EN: "Kept the clips' own sound.", ZH: "已保留视频片段的原声。"},
    "clip_sound_off": {EN: "Muted the clips' own sound.", ZH: "已将视频片段静音。"},
    "title_now": {EN: "Changed the title to “{title}”.", ZH: "标题已改为“{title}”。"},
    "title_off": {EN: "Removed the title.", ZH: "已去掉标题。"},
    "captions_added": {EN: "Added {captions}.", ZH: "已添加{captions}。"},
    "captions_off": {EN: "Removed the captions.", ZH: "已去掉字幕。"},
    "end_card_now": {EN: "Changed the end card to “{text}”.", ZH: "片尾卡已改为“{text}”。"},
    "pace_fast": {EN: "Made the pace faster.", ZH: "节奏已加快。"},
    "pace_slow": {EN: "Made the pace slower.", ZH: "节奏已放慢。"},
    "pace_normal": {EN: "Made the pace normal.", ZH: "节奏已恢复正常。"},
    "logo_off": {EN: "Removed the logo and end card.", ZH: "已去掉标志和片尾卡。"},
    "rebuilt": {EN: "Rebuilt the video from the current files.", ZH: "已用当前的文件重新生成视频。"},
    "unchanged": {
        EN: "That is how the video already is, so nothing changed.",
        ZH: "视频已经是这样了，没有改动。",
    },
    "ready": {EN: "Nothing to change: the video is ready to export.", ZH: "没有需要修改的：视频可以导出了。"},
    "no_change_found": {
        EN: "I couldn't find a change to make in that message. {help}",
        ZH: "这条消息里没有找到要修改的地方。{help}",
    },
    "help": {
        EN: "I can change the length (“make it 15 seconds”, “shorter”), the shape (“switch to vertical”, "
        "“make it square”), the music (“remove the music”, “make the music calmer”), the title (“change the "
        "title to 'Summer Sale'”), the transitions (“use slide transitions”, “no transitions”), the look "
        "(“black and white”, “warm tones”), captions (“add captions”, “remove the captions”) and the pace "
        "(“faster pace”).",
        ZH: "我可以修改时长（“改成15秒”“短一点”）、画幅（“改成竖屏”“改成方形”）、音乐（“去掉音乐”“音乐舒缓一点”）、"
        "标题（“把标题改成‘夏季特卖’”）、转场（“用滑动转场”“不要转场”）、画面风格（“黑白”“暖色调”）、"
        "字幕（“加字幕”“去掉字幕”）和节奏（“节奏快一点”）。",
    },
    "nothing_to_make": {
        EN: "I didn't receive any photos or clips, and the message doesn't say what the video should be about. "
        "Add photos or clips to the job, or describe the video (for example “A 20-second video about a new "
        "running shoe, upbeat music, landscape format”).",
        ZH: "没有收到照片或视频，消息里也没有说明视频要讲什么。请在任务里加入照片或视频，"
        "或者描述想要的视频（例如“一段20秒的新款跑鞋视频，配欢快的音乐，横屏”）。",
    },
    # -- notes: what could not be done as asked --
    "no_music_volume": {
        EN: "There is no music to change the volume of; say “add music” first.",
        ZH: "现在没有音乐，无法调整音量；请先说“加音乐”。",
    },
    "first_of": {
        EN: "Used the first {keep} of {total} {noun} so each stays on screen long enough.",
        ZH: "只用了{total}个{noun}中的前{keep}个，让每个镜头都停留足够久。",
    },
    "media_photos": {EN: "photos", ZH: "照片"},
    "media_clips": {EN: "clips", ZH: "视频片段"},
    "media_both": {EN: "photos and clips", ZH: "照片和视频片段"},
    "clips_fill": {
        EN: "The clips only fill {seconds} seconds, so the video is that long.",
        ZH: "视频片段只够{seconds}秒，所以视频就是这个长度。",
    },
    "no_captions": {
        EN: "No captions: the file names are camera names and there was no description to take them from; "
        "paste a sentence per photo after “captions:” to add them.",
        ZH: "没有加字幕：文件名是相机自动生成的，也没有可用的描述；在“字幕：”后面为每张照片写一句话即可添加。",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    """The phrase ``key`` in ``lang`` (English when it has none), filled with ``values``; a
    ``Phrase`` among the values is said in ``lang`` too."""
    phrases = _PHRASES[key]
    said = {name: say(lang, v.key) if isinstance(v, Phrase) else v for name, v in values.items()}
    return phrases.get(lang, phrases[EN]).format(**said)


@dataclass(frozen=True)
class Phrase:
    """A value that is itself a phrase (``"media_photos"``), said in the language of the sentence it is in."""

    key: str


@dataclass(frozen=True)
class Note:
    """Something the director could not do as asked, as a code: its phrase key and values.

    The plan and the timeline return notes; only the reply words them, in the message's language.
    """

    key: str
    values: Mapping[str, object] = field(default_factory=dict)

    def said(self, lang: str) -> str:
        """The note as a sentence in ``lang``."""
        return say(lang, self.key, **self.values)


def seconds_text(ms: int) -> str:
    """A length in seconds as a reply writes it: ``"12"``, ``"12.5"``."""
    secs = ms / 1000
    return str(int(secs)) if secs == int(secs) else f"{secs:.1f}"


def count(lang: str, n: int, noun: str) -> str:
    """ "3 photos" / "3张照片"."""
    if lang == ZH and noun in _ZH_COUNTED:
        return f"{n}{_ZH_COUNTED[noun]}"
    return f"{n} {noun}" + ("" if n == 1 else "s")


def join(lang: str, parts: list[str]) -> str:
    """ "a, b and c" / "a、b和c"."""
    if len(parts) <= 1:
        return "".join(parts)
    if lang == ZH:
        return "、".join(parts[:-1]) + "和" + parts[-1]
    return ", ".join(parts[:-1]) + " and " + parts[-1]
