"""The values NemoClient returns: plain frozen dataclasses, parsed tolerantly from the API's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nemowatch.api.draft import json_object

RENDER_PENDING = "pending"
RENDER_PROCESSING = "processing"
RENDER_COMPLETED = "completed"
RENDER_FAILED = "failed"

# Other spellings a backend may use for the four documented states.
_STATUS_ALIASES = {
    "queued": RENDER_PENDING,
    "waiting": RENDER_PENDING,
    "submitted": RENDER_PENDING,
    "running": RENDER_PROCESSING,
    "rendering": RENDER_PROCESSING,
    "in_progress": RENDER_PROCESSING,
    "done": RENDER_COMPLETED,
    "success": RENDER_COMPLETED,
    "succeeded": RENDER_COMPLETED,
    "complete": RENDER_COMPLETED,
    "finished": RENDER_COMPLETED,
    "error": RENDER_FAILED,
    "failure": RENDER_FAILED,
    "cancelled": RENDER_FAILED,
    "canceled": RENDER_FAILED,
}


@dataclass(frozen=True)
class Session:
    """A backend task and its agent session."""

    task_id: str
    session_id: str


@dataclass(frozen=True)
class SessionState:
    """``data.state`` of a session; ``raw`` is the whole ``data`` object for anything else."""

    draft: dict[str, Any] | None
    video_infos: Any = None
    canvas_config: Any = None
    generated_media: Any = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_data(cls, data: Any) -> SessionState:
        data = data if isinstance(data, dict) else {}
        state = json_object(data, "state")
        draft = state.get("draft")
        return cls(
            draft=draft if isinstance(draft, dict) else None,
            video_infos=state.get("video_infos"),
            canvas_config=state.get("canvas_config"),
            generated_media=state.get("generated_media"),
            raw=data,
        )


def _number(value: Any) -> int:
    """Credits as a whole number; missing or malformed counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


@dataclass(frozen=True)
class Credits:
    """The balance: ``available`` to spend, ``frozen`` reserved by work in progress, ``total``."""

    available: int
    frozen: int
    total: int

    @classmethod
    def from_data(cls, data: Any) -> Credits:
        data = data if isinstance(data, dict) else {}
        return cls(_number(data.get("available")), _number(data.get("frozen")), _number(data.get("total")))


def _progress(value: Any) -> float | None:
    """Progress as a fraction 0–1; values above 1 are taken as percentages."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    fraction = value / 100 if value > 1 else float(value)
    return max(0.0, min(1.0, fraction))


@dataclass(frozen=True)
class RenderStatus:
    """One poll of an export: ``status`` is pending, processing, completed or failed."""

    id: str
    status: str
    progress: float | None = None
    url: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in (RENDER_COMPLETED, RENDER_FAILED)

    @classmethod
    def from_data(cls, render_id: str, data: Any) -> RenderStatus:
        data = data if isinstance(data, dict) else {}
        # The status may sit at the top level (documented) or inside an envelope's data.
        if "status" not in data and isinstance(data.get("data"), dict):
            data = data["data"]
        raw = str(data.get("status") or RENDER_PENDING).strip().lower()
        status = _STATUS_ALIASES.get(raw, raw)
        if status not in (RENDER_PENDING, RENDER_PROCESSING, RENDER_COMPLETED, RENDER_FAILED):
            status = RENDER_PROCESSING
        output = json_object(data, "output")
        url = output.get("url") or data.get("url")
        error = data.get("error") or data.get("message") or output.get("error")
        if isinstance(error, dict):
            error = error.get("message") or str(error)
        return cls(
            id=render_id,
            status=status,
            progress=_progress(data.get("progress")),
            url=url if isinstance(url, str) and url else None,
            error=str(error) if error and status == RENDER_FAILED else None,
        )
