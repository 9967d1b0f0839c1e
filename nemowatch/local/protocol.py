"""The wire format shared by every endpoint: the envelope, error answers, JSON bodies, the SSE response."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from nemowatch.api.formats import over_limit
from nemowatch.local.agent import StreamDropped


class ApiError(Exception):
    """An error answer: envelope ``code`` (None for HTTP-only errors), HTTP status, one sentence."""

    def __init__(self, code: int | None, status: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def ok(data: Any, msg: str = "success") -> JSONResponse:
    """The success envelope."""
    return JSONResponse({"code": 0, "data": data, "msg": msg})


def error_response(exc: ApiError) -> JSONResponse:
    """The error envelope (or the bare HTTP error, for the HTTP-only cases)."""
    if exc.code is None:
        return JSONResponse({"detail": exc.message, "msg": exc.message}, status_code=exc.status)
    return JSONResponse({"code": exc.code, "data": None, "msg": exc.message}, status_code=exc.status)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the only binds that need no access token)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EventStream:
    """A ``text/event-stream`` response fed by an async iterator of frames.

    Unlike StreamingResponse, it can end *without* completing the response
    (:class:`StreamDropped`), which a client sees as a dropped connection.
    """

    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        self.frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            async with contextlib.aclosing(self.frames):  # type: ignore[type-var]
                async for frame in self.frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
        except (StreamDropped, OSError):
            return  # cut on purpose, or the client went away: the run itself carries on
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def json_body(request: Request, max_bytes: int | None = None) -> dict[str, Any]:
    """The JSON object body, or HTTP 422; a body over ``max_bytes`` is refused (422) without being kept."""
    raw = await request.body() if max_bytes is None else await _body_within(request, max_bytes)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(None, 422, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(None, 422, "the request body must be a JSON object")
    return body


async def _body_within(request: Request, max_bytes: int) -> bytes:
    """The body when it is at most ``max_bytes``. A longer one is still read to its end, so the
    refusal reaches the client rather than a reset connection, but none of it is kept."""
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received <= max_bytes:
            chunks.append(chunk)
        else:
            chunks.clear()
    if received > max_bytes:
        raise ApiError(None, 422, f"the request body is too large: {over_limit(received, max_bytes)}")
    return b"".join(chunks)
