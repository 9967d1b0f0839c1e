"""The Google-ADK event stream of ``/run_sse``, turned into typed events and one reply.

Two pure stages, no I/O, so every tolerance rule of docs/api.md is testable alone:

- :class:`SSEDecoder`: text chunks → frames. It is a small SSE reader of our own
  because httpx-sse drops comment lines (``: ping``), and comments are one of the
  three heartbeat forms; frames are httpx-sse's own ``ServerSentEvent``.
- :class:`StreamAssembler`: frames → :data:`Event` values, the reply text, the tool
  calls and the run's error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from httpx_sse import ServerSentEvent
from loguru import logger

from nemowatch.api.errors import StreamFailed, as_code


@dataclass(frozen=True)
class TextReply:
    """Reply text: a streamed chunk (``partial``) or a whole reply."""

    text: str
    partial: bool = False


@dataclass(frozen=True)
class ToolCall:
    """The agent started a tool (internal progress, not a reply); reported once per call id."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """A tool finished."""

    id: str
    name: str
    response: Any = None


@dataclass(frozen=True)
class Heartbeat:
    """The server is alive but has nothing to say."""


@dataclass(frozen=True)
class StreamError:
    """The run reported a failure after HTTP 200 was already sent."""

    message: str
    details: Any = None


Event = TextReply | ToolCall | ToolResult | Heartbeat | StreamError


@dataclass(frozen=True)
class MessageResult:
    """The outcome of one message.

    ``completed`` is False when the stream dropped or timed out after the request may
    have reached the server: the caller must read the session state, never resend.
    ``error`` holds a failure the run reported inside the stream (``completed`` stays
    True: the run ended); send_message does not raise for it — call :meth:`raise_for_error`.
    """

    text: str
    completed: bool
    error: str | None
    tool_calls: int
    events: int
    error_code: int | None = None  # the first envelope-style code an error event carried

    def raise_for_error(self) -> None:
        """Raise StreamFailed when the run reported an error."""
        if self.error:
            raise StreamFailed(
                f"the backend reported an error while working on the message: {self.error}",
                "read the job log; send the message again with `nemowatch retry` if the result is missing",
            )


@dataclass(frozen=True)
class Comment:
    """An SSE comment line (``: ping``), a heartbeat form httpx-sse hides."""

    text: str


Frame = ServerSentEvent | Comment


class SSEDecoder:
    """Incremental SSE parser: feed text as it arrives, get complete frames and comments."""

    def __init__(self) -> None:
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id = ""
        self._has_fields = False

    def feed(self, text: str) -> list[Frame]:
        """Frames completed by ``text`` (lines end with CRLF, CR or LF, as the SSE spec allows)."""
        buffer = self._buffer + text
        # A trailing CR may be the first half of a CRLF split across chunks: keep it for later.
        hold_cr = buffer.endswith("\r")
        if hold_cr:
            buffer = buffer[:-1]
        lines = buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._buffer = lines.pop() + ("\r" if hold_cr else "")
        frames: list[Frame] = []
        for line in lines:
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)
        return frames

    def close(self) -> list[Frame]:
        """At the end of the stream: an unterminated last frame is delivered rather than lost."""
        frames = self.feed("\n") if self._buffer.rstrip("\r") else []
        if self._has_fields:
            frames.append(self._dispatch())
        return frames

    def _line(self, line: str) -> Frame | None:
        if not line:
            return self._dispatch() if self._has_fields else None
        if line.startswith(":"):
            return Comment(line[1:].strip())
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        else:
            return None  # retry and unknown fields do not matter here
        self._has_fields = True
        return None

    def _dispatch(self) -> ServerSentEvent:
        frame = ServerSentEvent(event=self._event or "message", data="\n".join(self._data), id=self._id)
        self._event, self._data, self._has_fields = "", [], False
        return frame


def _error_text(value: Any) -> str:
    """An error value (string or object) as one readable line."""
    if isinstance(value, dict):
        message = value.get("message") or value.get("msg") or value.get("error")
        code = value.get("code") or value.get("status")
        text = str(message) if message else json.dumps(value)[:300]
        return f"{text} ({code})" if code and message else text
    return str(value)


class StreamAssembler:
    """Frames of one run → typed events, the reply, the tool calls and the error.

    Text rules (docs/api.md): ``"thought": true`` parts and the user's own turn are
    skipped; ``"partial": true`` chunks are shown as they come but the next
    non-partial text REPLACES them; a non-partial event repeating an earlier event
    id replaces that text. Separate non-partial replies (several agent turns) are
    joined by a blank line. Tool calls are de-duplicated by call id (ADK sends each
    twice). ``finishReason`` is not used to end a reply: ADK puts it on the last
    chunk too, before the final event.
    """

    def __init__(self) -> None:
        self._finals: list[str] = []
        self._final_index: dict[str, int] = {}
        self._chunks: list[str] = []
        self._calls: set[str] = set()
        self._results: set[str] = set()
        self._errors: list[str] = []
        self.error_code: int | None = None
        self.events = 0  # JSON events received (heartbeats not counted)

    @property
    def text(self) -> str:
        """The reply so far: every final text, plus chunks not yet replaced by one."""
        parts = [*self._finals]
        if self._chunks:
            parts.append("".join(self._chunks))
        return "\n\n".join(part.strip() for part in parts if part.strip())

    @property
    def tool_calls(self) -> int:
        return len(self._calls)

    @property
    def error(self) -> str | None:
        return "; ".join(self._errors) if self._errors else None

    def feed(self, frame: Frame) -> list[Event]:
        """The events one frame carries (a heartbeat for each of the three heartbeat forms)."""
        if isinstance(frame, Comment):
            return [Heartbeat()]
        if frame.event == "heartbeat" or not frame.data.strip():
            return [Heartbeat()]
        try:
            payload = json.loads(frame.data)
        except ValueError:
            if frame.event == "error":
                return [self._error(frame.data.strip(), None)]
            logger.warning("ignored a stream frame that is not JSON: {!r}", frame.data[:200])
            return []
        if not isinstance(payload, dict):
            logger.debug("ignored a stream frame that is not an object: {!r}", frame.data[:200])
            return []
        self.events += 1
        events = self._event(payload)
        if frame.event == "error" and not any(isinstance(event, StreamError) for event in events):
            # An `event: error` frame in a shape we do not know is still an error, not a reply.
            events.append(self._error(_error_text(payload), payload))
        return events

    def _error(self, message: str, details: Any, code: Any = None) -> StreamError:
        self._errors.append(message)
        if self.error_code is None:
            self.error_code = as_code(code)
        return StreamError(message, details)

    def _event(self, payload: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        if payload.get("error"):
            details = payload.get("error_details") or payload.get("errorDetails")
            error = payload["error"]
            code = error.get("code") if isinstance(error, dict) else None
            out.append(self._error(_error_text(error), details, code))
        code = payload.get("errorCode") or payload.get("error_code")
        message = payload.get("errorMessage") or payload.get("error_message")
        if code or message:
            text = f"{message} ({code})" if code and message else str(message or code)
            out.append(self._error(text, {"errorCode": code, "errorMessage": message}, code))
        content = payload.get("content")
        if not isinstance(content, dict):
            return out
        parts = content.get("parts")
        if not isinstance(parts, list):
            return out
        from_user = content.get("role") == "user"
        texts: list[str] = []
        for part in parts:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str) and not part.get("thought") and not from_user:
                texts.append(part["text"])
            if isinstance(part.get("functionCall"), dict):
                out.extend(self._call(part["functionCall"]))
            if isinstance(part.get("functionResponse"), dict):
                out.extend(self._result(part["functionResponse"]))
        if texts:
            out.append(self._text("".join(texts), bool(payload.get("partial")), payload.get("id")))
        return out

    def _text(self, text: str, partial: bool, event_id: Any) -> TextReply:
        if partial:
            self._chunks.append(text)
            return TextReply(text, partial=True)
        self._chunks.clear()
        key = event_id if isinstance(event_id, str) and event_id else None
        if key is not None and key in self._final_index:
            self._finals[self._final_index[key]] = text
        else:
            if key is not None:
                self._final_index[key] = len(self._finals)
            self._finals.append(text)
        return TextReply(text, partial=False)

    @staticmethod
    def _key(call: dict[str, Any]) -> str:
        """The call id, or (without one) the name and arguments, which is what identifies a call."""
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id:
            return call_id
        return f"{call.get('name')}:{json.dumps(call.get('args'), sort_keys=True, default=str)}"

    def _call(self, call: dict[str, Any]) -> list[Event]:
        key = self._key(call)
        if key in self._calls:
            return []
        self._calls.add(key)
        found = call.get("args")
        args: dict[str, Any] = found if isinstance(found, dict) else {}
        return [ToolCall(str(call.get("id") or ""), str(call.get("name") or ""), args)]

    def _result(self, result: dict[str, Any]) -> list[Event]:
        key = self._key({"id": result.get("id"), "name": result.get("name"), "args": result.get("response")})
        if key in self._results:
            return []
        self._results.add(key)
        return [
            ToolResult(str(result.get("id") or ""), str(result.get("name") or ""), result.get("response"))
        ]
