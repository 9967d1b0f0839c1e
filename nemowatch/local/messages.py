"""``POST /run_sse``: direct one message, charge it, and stream its run as ADK events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from starlette.requests import Request
from starlette.responses import Response

from nemowatch.api.draft import timeline_summary, tracks
from nemowatch.api.formats import MAX_MESSAGE_BYTES, message_bytes, over_limit
from nemowatch.local.agent import MessageRun, Outcome
from nemowatch.local.backend import Backend, backend_of
from nemowatch.local.protocol import ApiError, EventStream, json_body
from nemowatch.local.store import SessionRecord

# A run request is a message and a few ids; JSON may spell one byte of the message as six
# ("\u0001"), so this leaves room for any message within the limit and no more than needed.
MAX_RUN_BODY_BYTES = 8 * MAX_MESSAGE_BYTES


def _message_text(body: dict[str, Any]) -> tuple[str, str]:
    """(session id, text) from an ADK run request, or HTTP 422 (also for a message over the limit)."""
    session_id = body.get("session_id")
    message = body.get("new_message")
    parts = message.get("parts") if isinstance(message, dict) else None
    if not isinstance(session_id, str) or not session_id or not isinstance(parts, list):
        raise ApiError(None, 422, "the body needs session_id and new_message.parts (ADK run request)")
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    text = "\n".join(texts).strip()
    if not text:
        raise ApiError(None, 422, "new_message.parts holds no text")
    size = message_bytes(text)
    if size > MAX_MESSAGE_BYTES:
        # Refused before the director sees it: its work grows with the text.
        raise ApiError(
            None,
            422,
            f"the message is too long: {over_limit(size)}; shorten it or send it as several messages",
        )
    return session_id, text


def media_items(backend: Backend, rec: SessionRecord) -> list[Any]:
    """The session's uploads as the director's ``MediaItem``s."""
    from nemowatch.local.media import MediaItem

    items = []
    for media in rec.media:
        items.append(
            MediaItem(
                id=media["id"],
                name=media["name"],
                path=backend.store.media_path(media),
                kind=media["kind"],
                width=media.get("width", 0),
                height=media.get("height", 0),
                duration_s=media.get("duration_s", 0.0),
                has_audio=media.get("has_audio", False),
                has_alpha=media.get("has_alpha", False),
            )
        )
    return items


async def run_sse(request: Request) -> Response | EventStream:
    """Carry out one message and stream its ADK events (404 unknown session, 422 bad body, 2001 credits)."""
    backend = backend_of(request)
    backend.user(request)
    session_id, text = _message_text(await json_body(request, MAX_RUN_BODY_BYTES))
    rec = backend.store.sessions.get(session_id)
    if rec is None:
        raise ApiError(None, 404, "Session not found")
    # Messages of one session are carried out one after the other, like one agent conversation:
    # the lock is taken here and released by the run when its edit is applied (or abandoned).
    lock = backend.session_locks.setdefault(session_id, asyncio.Lock())
    await lock.acquire()
    try:
        run = await start_message(backend, rec, text, lock)
    except BaseException:
        lock.release()
        raise
    return EventStream(run.stream(backend.settings.heartbeat_s))


async def start_message(backend: Backend, rec: SessionRecord, text: str, lock: asyncio.Lock) -> MessageRun:
    """Ask the director, charge, and start the run in the background; the run releases ``lock``."""
    from nemowatch.local.director import direct

    media = media_items(backend, rec)
    try:
        # The director is pure and quick: it is asked first so the cost is known before anything
        # changes, and a message the balance cannot cover is refused untouched.
        direction = await asyncio.to_thread(direct, text, media, rec.draft, title_hint=rec.task_name)
    except Exception as exc:
        logger.exception("local backend: the director failed on a message")
        rec.messages.append(text)
        backend.store.save_session(rec)
        run = MessageRun(step_delay_s=0, silent=True, drop_after_first_call=False)
        run.fail(f"the local director failed: {type(exc).__name__}: {exc}")
        lock.release()
        return run
    cost = max(0, int(direction.cost))
    if not backend.freeze(cost):
        rec.refused.append({"text": text, "reason": "out of credits"})
        backend.store.save_session(rec)
        available = backend.credits()["available"]
        raise ApiError(
            2001, 403, f"out of credits: this message costs {cost} and {available} are available; top up"
        )
    rec.messages.append(text)
    backend.store.save_session(rec)
    logger.info("local backend: message {} accepted in {}", len(rec.messages), rec.session_id)
    hooks = backend.hooks
    run = MessageRun(
        step_delay_s=hooks.sse_delay_s / 2,
        silent=hooks.reply_silently,
        drop_after_first_call=hooks.take("drop_streams"),
    )
    applied = False

    async def analyze() -> Outcome:
        found = [{"name": m.name, "kind": m.kind, "duration_s": m.duration_s} for m in media]
        return Outcome({"media": found, "count": len(found)})

    async def build() -> Outcome:
        # The one place a message changes the session: applied whole, even if the client hung up.
        nonlocal applied
        applied = True
        if direction.draft is not None:
            rec.draft = direction.draft
            rec.revision += 1
        rec.replies.append(direction.reply)
        backend.store.save_session(rec)
        backend.settle(cost, spent=True)
        lock.release()
        return Outcome({"summary": timeline_summary(rec.draft), "tracks": len(tracks(rec.draft))})

    async def carry_out() -> None:
        try:
            steps: list[tuple[str, dict[str, Any], Callable[[], Awaitable[Outcome]]]] = [
                ("analyze_media", {"files": len(media)}, analyze),
                ("build_timeline", {"request": text[:500]}, build),
            ]
            await run.carry_out(steps, direction.reply)
        finally:
            if not applied:
                backend.settle(cost, spent=False)  # stopped before the edit (shutdown): no charge
                lock.release()

    task = asyncio.create_task(carry_out(), name=f"message {rec.session_id}")
    backend.runs.add(task)
    task.add_done_callback(backend.runs.discard)
    return run
