"""Shared pieces of the API client tests: settings, a mocked cloud's answers, SSE streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from nemowatch.api import ClientSettings

BASE = "https://api.nemo.test"
WEB = "https://web.nemo.test"
CDN = "https://cdn.elsewhere.test"
USER_TOKEN = "user-secret-token-42"
TOKEN_PATH = "/api/auth/anonymous-token"


def make_settings(tmp_path: Path, **changes: Any) -> ClientSettings:
    """Settings with tiny waits so retries and timeouts run in milliseconds; a user token by default."""
    values: dict[str, Any] = {
        "base_url": BASE,
        "web_url": WEB,
        "state_dir": tmp_path / "state",
        "user_token": USER_TOKEN,
        "client_id_file": tmp_path / "home" / ".config" / "nemovideo" / "client_id",
        "retry_base_s": 0.001,
        "retry_cap_s": 0.005,
        "retry_attempts": 3,
        "rate_limit_wait_s": 0.01,
        "sse_timeout_s": 10,
        "sse_idle_timeout_s": 5,
        "still_working_every_s": 60,
    }
    values.update(changes)
    return ClientSettings(**values)


def ok(data: Any = None, status: int = 200, **headers: str) -> httpx.Response:
    """A successful envelope."""
    return httpx.Response(
        status, json={"code": 0, "data": data if data is not None else {}, "msg": "ok"}, headers=headers
    )


def fail(code: int, status: int = 200, msg: str = "error", **headers: str) -> httpx.Response:
    """An error envelope (HTTP 200 with a non-zero code, or both)."""
    return httpx.Response(status, json={"code": code, "data": None, "msg": msg}, headers=headers)


def token_answer(token: str, **extra: Any) -> httpx.Response:
    return ok({"token": token, "credits": 100, **extra})


def frame(payload: Any) -> bytes:
    """One SSE data frame carrying a JSON event."""
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def text_event(
    text: str, *, partial: bool = False, event_id: str = "ev1", thought: bool = False
) -> dict[str, Any]:
    """An ADK model event with one text part."""
    part: dict[str, Any] = {"text": text}
    if thought:
        part["thought"] = True
    return {
        "content": {"role": "model", "parts": [part]},
        "author": "nemo_agent",
        "partial": partial,
        "id": event_id,
        "invocationId": "inv1",
        "actions": {"stateDelta": {}, "artifactDelta": {}},
    }


class ChunkStream(httpx.AsyncByteStream):
    """A response body given piece by piece: bytes are sent, numbers are pauses, exceptions are raised."""

    def __init__(self, items: Sequence[bytes | float | BaseException], repeat_tail: bool = False) -> None:
        self.items = list(items)
        self.repeat_tail = repeat_tail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for item in self.items:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, int | float):
                await asyncio.sleep(item)
            else:
                yield item
        while self.repeat_tail:  # a server that only ever sends heartbeats
            await asyncio.sleep(0.01)
            yield self.items[-1] if isinstance(self.items[-1], bytes) else b": ping\n\n"


def sse(*items: bytes | float | BaseException, forever: bool = False) -> httpx.Response:
    """A text/event-stream response."""
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=ChunkStream(items, repeat_tail=forever)
    )
