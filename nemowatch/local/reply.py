"""The director's third layer: what a plan and its timeline are, said in the message's language.

The only layer that words anything: the phrases are ``wording.py``'s, the names of moods, grades
and transitions ``vocabulary.py``'s, and the notes (``wording.Note``) of the plan and the timeline
are worded here, after the sentences about what was done. The timeline summary that ends every
reply stays in English: it is the API's format.
"""

from __future__ import annotations

from typing import Any

from nemowatch.api.draft import TRACK_AUDIO, TRACK_TEXT, duration_ms, segments, timeline_summary, tracks
from nemowatch.local import wording as W
from nemowatch.local.draftmeta import DraftMeta, read
from nemowatch.local.plan import Plan
from nemowatch.local.timeline import Timeline, display_name
from nemowatch.local.vocabulary import GRADE, MOOD, SIZES, TRANSITION, label
from nemowatch.local.wording import Note, seconds_text


def generation_reply(plan: Plan, timeline: Timeline, lang: str) -> str:
    """What was made, in plain words and the message's language, then the timeline summary."""
    draft = timeline.draft
    transition = read(DraftMeta, draft).get("transition")
    size = W.say(lang, "size", seconds=seconds_text(draft["d"]), aspect=plan.aspect)
    if plan.height != 1080:
        size += W.say(lang, "size_height", height=plan.height)
    if timeline.cards:
        source = W.count(lang, timeline.cards, "animated title card")
    else:
        source = W.join(
            lang,
            ([W.count(lang, timeline.clips, "clip")] if timeline.clips else [])
            + ([W.count(lang, timeline.photos, "photo")] if timeline.photos else []),
        )
    features: list[str] = []
    if transition:
        features.append(W.say(lang, "transitions", name=label(TRANSITION, lang, transition)))
    if timeline.photos:
        features.append(W.say(lang, "ken_burns"))
    music = _music_phrase(plan, timeline, lang)
    if music:
        features.append(music)
    if timeline.keep_audio:
        features.append(W.say(lang, "clip_sound_under" if music else "clip_sound"))
    if plan.grade:
        features.append(W.say(lang, "look", grade=label(GRADE, lang, plan.grade)))
    if plan.show_title and not timeline.cards:
        features.append(W.say(lang, "title", title=plan.title))
    if timeline.captions:
        features.append(W.count(lang, timeline.captions, "caption"))
    if timeline.logo is not None:
        features.append(W.say(lang, "logo"))
    elif plan.end_text and not timeline.cards:
        features.append(W.say(lang, "end_card", text=plan.end_text))
    if timeline.cards:
        card_texts = [s["m"]["text"] for t in tracks(draft) if t.get("tt") == TRACK_TEXT for s in segments(t)]
        quoted = [W.say(lang, "quoted", text=text) for text in card_texts]
        features.append(W.say(lang, "card_lines", lines=W.join(lang, quoted)))
    with_features = W.say(lang, "with", items=W.join(lang, features)) if features else ""
    reply = W.say(lang, "made", size=size, source=source, features=with_features)
    return _paragraph([reply], timeline.notes, lang) + "\n\n" + timeline_summary(draft)


def edit_reply(
    old: Plan, new: Plan, notes: list[Note], timeline: Timeline, old_draft: dict[str, Any], lang: str
) -> str:
    """What an edit changed, one sentence a setting, then the notes of the plan and the timeline,
    in the message's language, then the timeline summary."""
    changes = _changes(old, new, timeline, old_draft, lang) or [W.say(lang, "rebuilt")]
    return _paragraph(changes, [*notes, *timeline.notes], lang) + "\n\n" + timeline_summary(timeline.draft)


def _paragraph(sentences: list[str], notes: list[Note], lang: str) -> str:
    """Sentences, then the notes worded in ``lang``, as one paragraph (Chinese runs them together,
    English leaves a space)."""
    return ("" if lang == W.ZH else " ").join([*sentences, *(note.said(lang) for note in notes)])


def _music_phrase(plan: Plan, timeline: Timeline, lang: str) -> str | None:
    """The music the timeline has, as a reply names it (None: no music)."""
    audio = [t for t in tracks(timeline.draft) if t.get("tt") == TRACK_AUDIO]
    if not audio:
        return None
    if timeline.music_src is not None:
        return W.say(lang, "your_music", name=display_name(timeline.music_src.name))
    mood = label(MOOD, lang, plan.mood)
    return W.say(lang, "music_bed", article="an" if mood[:1] in "aeiou" else "a", mood=mood)


def _changes(old: Plan, new: Plan, timeline: Timeline, old_draft: dict[str, Any], lang: str) -> list[str]:
    """One plain sentence per setting that changed, in the message's language."""
    out: list[str] = []
    new_d, old_d = timeline.draft["d"], int(duration_ms(old_draft))
    if new_d != old_d:
        out.append(W.say(lang, "length", seconds=seconds_text(new_d)))
    if (new.aspect, new.height) != (old.aspect, old.height):
        width, height = SIZES[(new.aspect, new.height)]
        out.append(W.say(lang, "shape", aspect=new.aspect, width=width, height=height))
    if new.transition != old.transition:
        if new.transition:
            out.append(W.say(lang, "transitions_now", name=label(TRANSITION, lang, new.transition)))
        else:
            out.append(W.say(lang, "transitions_off"))
    if new.grade != old.grade:
        if new.grade:
            out.append(W.say(lang, "look_now", grade=label(GRADE, lang, new.grade)))
        else:
            out.append(W.say(lang, "look_off"))
    music = _music_phrase(new, timeline, lang)
    had_music = any(t.get("tt") == TRACK_AUDIO for t in tracks(old_draft))
    if not music and had_music:
        out.append(W.say(lang, "music_off"))
    elif music and not had_music:
        out.append(W.say(lang, "music_added", music=music))
    elif music and (new.mood != old.mood or new.music != old.music):
        out.append(W.say(lang, "music_changed", music=music))
    if new.volume != old.volume and music:
        out.append(W.say(lang, "volume", percent=round((new.volume or 0) * 100)))
    if new.clip_audio != old.clip_audio:
        out.append(W.say(lang, "clip_sound_on" if new.clip_audio else "clip_sound_off"))
    if (new.title, new.show_title) != (old.title, old.show_title):
        out.append(W.say(lang, "title_now", title=new.title) if new.show_title else W.say(lang, "title_off"))
    if new.captions != old.captions or (new.captions and new.lines != old.lines):
        if new.captions and timeline.captions:
            out.append(W.say(lang, "captions_added", captions=W.count(lang, timeline.captions, "caption")))
        elif not new.captions:
            out.append(W.say(lang, "captions_off"))
    if new.end_text != old.end_text and new.end_text:
        out.append(W.say(lang, "end_card_now", text=new.end_text))
    if new.pace != old.pace:
        out.append(W.say(lang, {"fast": "pace_fast", "slow": "pace_slow"}.get(new.pace, "pace_normal")))
    if new.logo != old.logo:
        out.append(W.say(lang, "logo_off"))
    return out
