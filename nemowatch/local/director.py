"""The local backend's director: a prompt and the session's media → a draft, and follow-up edits.

Deterministic on purpose (no model): the same prompt and files always give the same video, and
tests can pin every decision. Three layers, each handing the next a value: ``plan.py`` (the
settings a message asks for, or an edit changes), ``timeline.py`` (the draft built from them)
and ``reply.py`` (what was done, in the message's language). What could not be done as asked
travels as ``wording.Note`` codes that only the reply words.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from nemowatch.local import wording as W
from nemowatch.local.intent import Intent, parse, prettify, unquote_whole
from nemowatch.local.media import MediaItem
from nemowatch.local.plan import apply, plan_from_intent, plan_of
from nemowatch.local.reply import edit_reply, generation_reply
from nemowatch.local.timeline import build

GENERATION_COST = 100
EDIT_COST = 50
GENERIC_HINTS = {
    "",
    "project",
    "untitled",
    "job",
    "video",
    "new folder",
    "inbox",
    "prompt",
    "test",
    "my video",
}


@dataclass
class Direction:
    """What one message did: the new draft (None: unchanged), the reply, and its credit cost."""

    draft: dict[str, Any] | None
    reply: str
    cost: int


def direct(text: str, media: list[MediaItem], draft: dict[str, Any] | None, *, title_hint: str) -> Direction:
    """Turn one message into a new draft (or none), a plain-words reply and its cost."""
    text = unquote_whole(text or "")
    intent = parse(text)
    if draft is None:
        return _generate(intent, media, title_hint)
    return _edit(intent, media, draft, title_hint)


# ---------------------------------------------------------------- generation


def _generate(intent: Intent, media: list[MediaItem], title_hint: str) -> Direction:
    """A first message: plan → timeline → reply (or a reply only, when there is nothing to make)."""
    visuals = [m for m in media if m.kind in ("image", "video")]
    hint = prettify(title_hint) if title_hint.strip().lower() not in GENERIC_HINTS else ""
    if not visuals and not _has_content(intent, hint):
        return Direction(draft=None, reply=W.say(intent.language, "nothing_to_make"), cost=0)
    plan = plan_from_intent(intent, text_mode=not visuals, hint=hint)
    timeline = build(plan, media)
    reply = generation_reply(plan, timeline, intent.language)
    return Direction(draft=timeline.draft, reply=reply, cost=GENERATION_COST)


def _has_content(intent: Intent, hint: str) -> bool:
    """Whether a media-less message describes something to make title cards about."""
    if intent.subject or intent.lines or intent.title:
        return True
    return bool(hint) and not (intent.export and not intent.asks_for_anything())


# ---------------------------------------------------------------- edits


def _edit(intent: Intent, media: list[MediaItem], draft: dict[str, Any], title_hint: str) -> Direction:
    """A follow-up message: the stored plan changed as asked → a new timeline → what changed."""
    lang = intent.language  # replies follow the message, the video keeps its own language
    if not intent.asks_for_anything():
        if intent.export:
            return Direction(None, W.say(lang, "ready"), 0)
        return Direction(None, W.say(lang, "no_change_found", help=W.say(lang, "help")), 0)
    old = plan_of(draft, title_hint)
    new, notes = apply(intent, copy.deepcopy(old), draft)
    timeline = build(new, media)
    if _same_timeline(timeline.draft, draft):
        return Direction(None, W.say(lang, "unchanged"), 0)
    return Direction(timeline.draft, edit_reply(old, new, notes, timeline, draft, lang), EDIT_COST)


def _same_timeline(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Drafts equal apart from the stored plan."""
    strip = [copy.deepcopy(a), copy.deepcopy(b)]
    for d in strip:
        if isinstance(d.get("m"), dict):
            d["m"].pop("plan", None)
    return strip[0] == strip[1]
