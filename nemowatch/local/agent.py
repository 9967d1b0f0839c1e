"""One message's run, told as a Google ADK event stream (what ``/run_sse`` sends).

The run is an asyncio task of its own, not part of the HTTP response: like the
cloud, the backend finishes a message it accepted even when the client hangs up,
so a client that lost the stream can read the session state and find the edit.
The stream only reports the run: tool calls and results while it works, then the
reply as partial text chunks and one final event with the whole text, all with
the same event id (ADK's streaming shape, see docs/api.md). While a step takes
long, the stream sends heartbeats so the client can tell "slow" from "gone".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

AUTHOR = "nemo_agent"
# Event stream terminator on the queue between the run and the stream.
_END = object()


class StreamDropped(Exception):
    """Raised by the stream to cut the connection without finishing the response (a testing aid)."""


def _event(
    parts: list[dict[str, Any]], *, role: str = "model", partial: bool = False, **extra: Any
) -> dict[str, Any]:
    """One ADK event with the keys a real ADK server sends (actions, ids, timestamp)."""
    return {
        "content": {"role": role, "parts": parts},
        "author": AUTHOR,
        "partial": partial,
        "id": extra.pop("id", None) or str(uuid.uuid4()),
        "invocationId": extra.pop("invocation_id"),
        "timestamp": time.time(),
        "actions": {"stateDelta": {}, "artifactDelta": {}, "requestedAuthConfigs": {}},
        **extra,
    }


def sse(data: dict[str, Any]) -> bytes:
    """One ``data:`` frame."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def text_chunks(text: str, pieces: int = 3) -> list[str]:
    """The reply cut into a few word-aligned chunks, as a streaming model would emit it."""
    words = text.split(" ")
    size = max(1, -(-len(words) // pieces))
    return [
        " ".join(words[i : i + size]) + (" " if i + size < len(words) else "")
        for i in range(0, len(words), size)
    ]


@dataclass
class Outcome:
    """What a step of the run produced for the stream: a summary for the tool result."""

    response: dict[str, Any]


class MessageRun:
    """Carries out one accepted message and queues its ADK events for whoever is streaming them."""

    def __init__(self, *, step_delay_s: float, silent: bool, drop_after_first_call: bool) -> None:
        self.invocation_id = f"e-{uuid.uuid4()}"
        self.step_delay_s = step_delay_s
        self.silent = silent
        self.drop_after_first_call = drop_after_first_call
        self._queue: asyncio.Queue[object] = asyncio.Queue()

    def _put(self, frame: bytes) -> None:
        self._queue.put_nowait(frame)

    def _tool(self, name: str, args: dict[str, Any]) -> str:
        """Announce a tool call: ADK streaming sends it twice (partial, then final) with one call id."""
        call_id = f"adk-{uuid.uuid4()}"
        part = {"functionCall": {"id": call_id, "name": name, "args": args}}
        self._put(sse(_event([part], partial=True, invocation_id=self.invocation_id)))
        self._put(sse(_event([part], invocation_id=self.invocation_id)))
        return call_id

    def _tool_result(self, call_id: str, name: str, response: dict[str, Any]) -> None:
        part = {"functionResponse": {"id": call_id, "name": name, "response": response}}
        self._put(sse(_event([part], role="user", invocation_id=self.invocation_id)))

    def _reply(self, text: str) -> None:
        event_id = str(uuid.uuid4())
        chunks = text_chunks(text)
        for index, chunk in enumerate(chunks):
            last = {"finishReason": "STOP"} if index == len(chunks) - 1 else {}
            part = {"text": chunk}
            self._put(
                sse(_event([part], partial=True, id=event_id, invocation_id=self.invocation_id, **last))
            )
        final = _event([{"text": text}], id=event_id, invocation_id=self.invocation_id, finishReason="STOP")
        self._put(sse(final))

    def fail(self, message: str) -> None:
        """Report a failure inside the run the way ADK does once HTTP 200 is sent: an error frame."""
        self._put(sse({"error": message, "error_details": {"invocationId": self.invocation_id}}))
        self._queue.put_nowait(_END)

    async def carry_out(
        self,
        steps: list[tuple[str, dict[str, Any], Callable[[], Awaitable[Outcome]]]],
        reply: str,
    ) -> None:
        """Run each tool step (call → work → result), then send the reply; always ends the stream."""
        try:
            for name, args, work in steps:
                call_id = self._tool(name, args)
                if self.step_delay_s > 0:
                    await asyncio.sleep(self.step_delay_s)
                outcome = await work()
                self._tool_result(call_id, name, outcome.response)
            if not self.silent and reply:
                self._reply(reply)
        finally:
            self._queue.put_nowait(_END)

    async def stream(self, heartbeat_s: float) -> AsyncIterator[bytes]:
        """The frames, as they are produced, with heartbeats whenever the run is quiet for ``heartbeat_s``."""
        beats = 0
        calls_seen = 0
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=heartbeat_s)
            except TimeoutError:
                # Both heartbeat forms the API documents, alternately: clients must accept either.
                beats += 1
                yield b"event: heartbeat\ndata: {}\n\n" if beats % 2 else b": ping\n\n"
                continue
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item
            if self.drop_after_first_call and b'"functionCall"' in item:
                calls_seen += 1
                if calls_seen == 2:  # the partial and the final copy of the first call went out
                    raise StreamDropped()


async def drain(task: asyncio.Task[None]) -> None:
    """Wait for a run, swallowing its cancellation (used at shutdown)."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
