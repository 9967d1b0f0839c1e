"""Tokens, sessions, uploads, state and credits endpoints, plus the local-only admin and project page."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import secrets
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response

from nemowatch import __version__
from nemowatch.api.draft import timeline_summary
from nemowatch.errors import UserError
from nemowatch.local.backend import backend_of
from nemowatch.local.exports import render_data
from nemowatch.local.protocol import ApiError, is_loopback, json_body, ok
from nemowatch.local.store import SessionRecord, StoredMedia, new_id
from nemowatch.local.uploads import UploadRejected, copy_file_url, receive_multipart

CLAIM_TTL_S = 7 * 86400


def iso(epoch: float) -> str:
    """An epoch time as ISO 8601 UTC (``…Z``), the way APIs usually write expiries."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


async def anonymous_token(request: Request) -> Response:
    """Issue an anonymous token for a client id (HTTP 400 without ``X-Client-Id``)."""
    backend = backend_of(request)
    client_id = request.headers.get("x-client-id", "").strip()
    if not client_id:
        raise ApiError(None, 400, "the X-Client-Id header is missing; send a client id (a UUID)")
    if backend.settings.access_token:
        raise ApiError(
            None,
            403,
            "this backend issues no anonymous tokens; set NEMO_TOKEN to its access token (local.access_token)",
        )
    token = f"nmv_usr_{secrets.token_urlsafe(24)}"
    user = "anon_" + hashlib.sha256(client_id.encode()).hexdigest()[:16]
    ttl = backend.settings.token_ttl_s
    expires_at = backend.store.add_token(token, user, ttl)
    data = {
        "token": token,
        "credits": backend.credits()["available"],
        "expires_in": int(ttl),
        "expires_at": iso(expires_at),
        "scopes": ["read", "write", "upload"],
        "user_id": user,
    }
    return ok(data)


async def create_session(request: Request) -> Response:
    """Create a task with its agent session; ``task_name`` becomes the director's default title."""
    backend = backend_of(request)
    user = backend.user(request)
    body = await json_body(request) if await request.body() else {}
    task_name = str(body.get("task_name") or "project")[:200]
    language = str(body.get("language") or "en")[:20]
    rec = SessionRecord(
        session_id=new_id("ses_"),
        task_id=new_id("task_"),
        task_name=task_name,
        language=language,
        user=user,
        created_at=time.time(),
    )
    backend.store.save_session(rec)
    logger.info("local backend: session {} created for {!r}", rec.session_id, task_name)
    return ok({"task_id": rec.task_id, "session_id": rec.session_id})


async def claim_token(request: Request) -> Response:
    """A claim token for the browser link (the bearer token never goes into a URL)."""
    backend = backend_of(request)
    backend.user(request)
    body = await json_body(request)
    rec = backend.session(str(body.get("session_id", "")))
    claim = f"clm_{secrets.token_urlsafe(24)}"
    backend.store.add_claim(claim, rec.session_id, CLAIM_TTL_S)
    return ok({"claim_token": claim, "expires_in": CLAIM_TTL_S})


async def claim_page(request: Request) -> Response:
    """The project link's page (``$WEB/workspace/claim?ct=…`` when the web URL is this server)."""
    backend = backend_of(request)
    session_id = backend.store.claim_session(request.query_params.get("ct", ""))
    rec = backend.store.sessions.get(session_id or "")
    if rec is None:
        body = "<p>This project link is unknown or has expired.</p>"
        return HTMLResponse(page("Project link", body), status_code=404)
    esc = html.escape
    items = "".join(f"<li>{esc(m['name'])} ({esc(m['kind'])})</li>" for m in rec.media) or "<li>none</li>"
    renders = []
    for rid in rec.renders:
        render = backend.store.renders.get(rid)
        if render is None:
            continue
        data = render_data(backend, request, render)
        if data["output"]:
            renders.append(f'<li><a href="{esc(data["output"]["url"])}">{esc(rid)}.mp4</a></li>')
        else:
            renders.append(f"<li>{esc(rid)}: {esc(render.status)}</li>")
    replies = "".join(f"<li>{esc(reply)}</li>" for reply in rec.replies) or "<li>none yet</li>"
    body = (
        f"<p>{esc(timeline_summary(rec.draft))}</p><h2>Media</h2><ul>{items}</ul>"
        f"<h2>Videos</h2><ul>{''.join(renders) or '<li>none yet</li>'}</ul><h2>Replies</h2><ul>{replies}</ul>"
    )
    return HTMLResponse(page(rec.task_name, body))


def page(title: str, body: str) -> str:
    """A minimal HTML page (the local backend has no web app, only this read-only view)."""
    head = f"<meta charset='utf-8'><title>{html.escape(title)} · nemowatch local</title>"
    return f"<!doctype html><html><head>{head}</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"


async def _drain(request: Request) -> None:
    """Read and drop the rest of a body, so an early refusal reaches the client instead of a reset."""
    with contextlib.suppress(Exception):
        async for _ in request.stream():
            pass


async def upload(request: Request) -> Response:
    """Receive media (multipart ``files``, or JSON ``file://`` URLs) and probe each file."""
    backend = backend_of(request)
    try:
        backend.user(request)
        rec = backend.session(request.path_params["session_id"])
    except ApiError:
        await _drain(request)
        raise
    folder = backend.store.upload_dir(rec.session_id)
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/"):
            length = request.headers.get("content-length", "")
            received = await receive_multipart(
                content_type,
                request.stream(),
                folder,
                content_length=int(length) if length.isdigit() else None,
            )
        else:
            body = await json_body(request)
            urls = body.get("urls")
            if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
                raise ApiError(None, 422, 'the body needs "urls": a list of file:// URLs')
            if not is_loopback(request.client.host if request.client else ""):
                raise ApiError(None, 403, "file:// URLs are accepted only from this machine; upload the file")
            received = []
            for url in urls:
                received.append(await asyncio.to_thread(copy_file_url, url, folder))
    except UploadRejected as exc:
        raise ApiError(exc.code if exc.code >= 1000 else None, exc.http_status, exc.message) from None
    except ClientDisconnect:
        # The client went away mid-upload: the partial files are already removed; nobody reads this.
        return Response(status_code=400)
    from nemowatch.local.media import probe

    stored: list[StoredMedia] = []
    for item in received:
        try:
            found = await asyncio.to_thread(probe, item.path, item.media_id, item.name)
        except Exception as exc:
            for other in received:
                other.path.unlink(missing_ok=True)
            # The prober's own sentence (a UserError) already names the file and the reason.
            reason = str(exc) if isinstance(exc, UserError) else f"{item.name} could not be read ({exc})"
            raise ApiError(4001, 415, reason.rstrip(".")) from None
        stored.append(
            StoredMedia(
                id=item.media_id,
                name=item.name,
                file=backend.store.relative(item.path),
                kind=found.kind,
                size=item.size,
                width=found.width,
                height=found.height,
                duration_s=found.duration_s,
                has_audio=found.has_audio,
                has_alpha=found.has_alpha,
            )
        )
    rec.media.extend(asdict(media) for media in stored)
    backend.store.save_session(rec)
    infos = [video_info(asdict(media)) for media in stored]
    names = ", ".join(media.name for media in stored)
    return ok({"files": infos, "count": len(infos)}, msg=f"uploaded {names}")


def video_info(media: dict[str, Any]) -> dict[str, Any]:
    """One upload as ``state.video_infos`` lists it."""
    return {
        "id": media["id"],
        "name": media["name"],
        "kind": media["kind"],
        "size": media["size"],
        "duration": media.get("duration_s", 0.0),
        "width": media.get("width", 0),
        "height": media.get("height", 0),
    }


async def credits_balance(request: Request) -> Response:
    """The balance: available, frozen (messages in progress), total."""
    backend = backend_of(request)
    backend.user(request)
    return ok(backend.credits())


def canvas_config(draft: dict[str, Any] | None) -> dict[str, Any]:
    """Width, height and aspect of the draft (1080p 16:9 until there is one)."""
    meta = draft.get("m") if isinstance(draft, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    width, height = int(meta.get("width") or 1920), int(meta.get("height") or 1080)
    return {"width": width, "height": height, "aspect": meta.get("aspect") or _aspect(width, height)}


def _aspect(width: int, height: int) -> str:
    from math import gcd

    divisor = gcd(width, height) or 1
    return f"{width // divisor}:{height // divisor}"


async def session_state(request: Request) -> Response:
    """The session's latest state: draft, uploads, canvas, generated media."""
    backend = backend_of(request)
    backend.user(request)
    rec = backend.session(request.path_params["session_id"])
    generated = [
        {"id": rid, "type": "render", "status": backend.store.renders[rid].status}
        for rid in rec.renders
        if rid in backend.store.renders
    ]
    state = {
        "draft": rec.draft or {},
        "video_infos": [video_info(media) for media in rec.media],
        "canvas_config": canvas_config(rec.draft),
        "generated_media": generated,
        "revision": rec.revision,
        "title": rec.task_name,
    }
    return ok({"session_id": rec.session_id, "state": state})


async def admin_credits(request: Request) -> Response:
    """Top up (``{"add": N}``) or set (``{"set": N}``, null for unlimited) the credit balance."""
    backend = backend_of(request)
    backend.require_admin(request)
    body = await json_body(request)
    if "set" in body:
        value = body["set"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ApiError(
                None, 422, '"set" must be a whole number of credits (0 or more) or null for unlimited'
            )
        backend.balance = value
    elif "add" in body:
        value = body["add"]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ApiError(None, 422, '"add" must be a whole number of credits')
        if backend.balance is not None:
            backend.balance = max(0, backend.balance + value)
    else:
        raise ApiError(None, 422, 'send {"add": N} or {"set": N}')
    backend.store.save_balance(backend.settings.credits, backend.balance)
    return ok(backend.credits())


async def admin_sessions(request: Request) -> Response:
    """Every session with what reached it: messages in order, uploads, renders (tests count these)."""
    backend = backend_of(request)
    backend.require_admin(request)
    sessions = []
    for rec in sorted(backend.store.sessions.values(), key=lambda r: r.created_at):
        renders = [backend.store.renders[rid] for rid in rec.renders if rid in backend.store.renders]
        sessions.append(
            {
                "session_id": rec.session_id,
                "task_id": rec.task_id,
                "task_name": rec.task_name,
                "language": rec.language,
                "messages": list(rec.messages),
                "refused": list(rec.refused),
                "replies": list(rec.replies),
                "uploads": [video_info(media) for media in rec.media],
                "renders": [
                    {
                        "id": r.id,
                        "status": r.status,
                        "progress": r.progress,
                        "error": r.error,
                        "attempts": r.attempts,
                    }
                    for r in renders
                ],
                "revision": rec.revision,
            }
        )
    return ok({"sessions": sessions})


async def admin_testing(request: Request) -> Response:
    """Testing aid: change the hooks of a running server (``fail_renders``, ``reply_silently``, ...)."""
    backend = backend_of(request)
    backend.require_admin(request)
    body = await json_body(request)
    for name, kind in (
        ("fail_renders", int),
        ("drop_streams", int),
        ("sse_delay_s", float),
        ("reply_silently", bool),
    ):
        if name in body:
            setattr(backend.hooks, name, kind(body[name]))
    return ok(asdict(backend.hooks))


async def index(request: Request) -> Response:
    """What answers here: lets ``nemowatch doctor`` and people recognise the backend."""
    return ok({"service": "nemowatch-local", "version": __version__})
