"""Exports: submit a render, poll it, and download the MP4 (through the API or a signed link)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

from loguru import logger
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from nemowatch.api.draft import is_ready_for_export, json_object
from nemowatch.local.backend import Backend, backend_of
from nemowatch.local.protocol import ApiError, json_body, ok
from nemowatch.local.store import RenderRecord

# Signed download links live as long as the cloud's CDN links do (24-48 h).
LINK_TTL_S = 48 * 3600


RENDER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,120}$")


ATTRIBUTION = ("x-skill-source", "x-skill-version", "x-skill-platform")


def sign(backend: Backend, render_id: str, expires: int) -> str:
    """The download link's signature: only this server can make one, and it names one render."""
    message = f"{render_id}:{expires}".encode()
    return hmac.new(backend.store.secret, message, hashlib.sha256).hexdigest()


def render_data(backend: Backend, request: Request, render: RenderRecord) -> dict[str, Any]:
    """A render as the status call reports it; completed ones carry an absolute signed download URL."""
    output: dict[str, Any] | None = None
    if render.status == "completed":
        expires = int(time.time() + LINK_TTL_S)
        base = str(request.base_url).rstrip("/")
        url = f"{base}/files/renders/{render.id}.mp4?exp={expires}&sig={sign(backend, render.id, expires)}"
        output = {"url": url, "format": "mp4", "size": _size(backend.store.render_file(render.id))}
    return {
        "id": render.id,
        "sessionId": render.session_id,
        "status": render.status,
        "progress": reported_progress(render.progress),
        "output": output,
        "error": render.error,
    }


def reported_progress(percent: float) -> float:
    """Progress in percent (0..100) as a client reads it.

    Clients accept both the 0..1 and the 0..100 scale and take values up to 1 as fractions,
    so the first percent is reported as 0 rather than as "1 = done".
    """
    return round(percent, 1) if percent > 1 else 0.0


def _size(path: Path) -> int:
    with contextlib.suppress(OSError):
        return path.stat().st_size
    return 0


async def submit_render(request: Request) -> Response:
    """Start an export in the background; a repeated id returns the existing render, never a second one."""
    backend = backend_of(request)
    backend.user(request)
    if not all(request.headers.get(name, "").strip() for name in ATTRIBUTION):
        raise ApiError(
            None,
            402,
            "export blocked: the X-Skill-Source, X-Skill-Version and X-Skill-Platform headers are missing",
        )
    body = await json_body(request)
    render_id, session_id, draft = body.get("id"), body.get("sessionId"), body.get("draft")
    if not isinstance(render_id, str) or not RENDER_ID.match(render_id):
        raise ApiError(None, 422, "the render needs an id of letters, digits, '_', '-' or '.' (at most 120)")
    existing = backend.store.renders.get(render_id)
    if existing is not None:
        return ok(render_data(backend, request, existing), msg="render already submitted")
    rec = backend.session(str(session_id or ""))
    if not isinstance(draft, dict) or not is_ready_for_export(draft):
        raise ApiError(None, 422, "the draft has no track with segments; ask for a video first")
    output = json_object(body, "output")
    now = time.time()
    render = RenderRecord(
        id=render_id, session_id=rec.session_id, draft=draft, output=output, created_at=now, updated_at=now
    )
    backend.store.save_render(render)
    rec.renders.append(render_id)
    backend.store.save_session(rec)
    backend.runner.submit(render)
    logger.info("local backend: render {} submitted for {}", render_id, rec.session_id)
    return ok(render_data(backend, request, render), msg="render submitted")


def _render(backend: Backend, render_id: str) -> RenderRecord:
    """The render, or HTTP 404."""
    render = backend.store.renders.get(render_id)
    if render is None:
        raise ApiError(None, 404, f"render {render_id} was not found; submit the export again")
    return render


async def render_status(request: Request) -> Response:
    """One poll of a render: status, progress, ``output.url`` once completed, ``error`` once failed."""
    backend = backend_of(request)
    backend.user(request)
    return ok(render_data(backend, request, _render(backend, request.path_params["render_id"])))


def _video(backend: Backend, render: RenderRecord) -> FileResponse:
    """The finished MP4, streamed from disk (HTTP 409 while it is not finished)."""
    path = backend.store.render_file(render.id)
    if render.status != "completed" or not path.is_file():
        raise ApiError(None, 409, f"render {render.id} is {render.status}, not completed; poll until it is")
    return FileResponse(path, media_type="video/mp4", filename=f"{render.id}.mp4")


async def render_download(request: Request) -> Response:
    """The MP4 through the API (bearer token required): the fallback when ``output.url`` fails."""
    backend = backend_of(request)
    backend.user(request)
    return _video(backend, _render(backend, request.path_params["render_id"]))


async def signed_file(request: Request) -> Response:
    """The MP4 behind ``output.url``: no Authorization, the signature in the query is the permission."""
    backend = backend_of(request)
    name = request.path_params["name"]
    render_id = name.removesuffix(".mp4")
    try:
        expires = int(request.query_params.get("exp", ""))
    except ValueError:
        expires = 0
    given = request.query_params.get("sig", "")
    if not hmac.compare_digest(given.encode(), sign(backend, render_id, expires).encode()):
        raise ApiError(None, 403, "this download link is not valid; poll the render again for a fresh link")
    if expires < time.time():
        raise ApiError(None, 403, "this download link has expired; poll the render again for a fresh link")
    return _video(backend, _render(backend, render_id))
