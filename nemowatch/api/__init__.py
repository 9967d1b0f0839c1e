"""Speaking NemoVideo: knows nothing about folders. The public API of the client is re-exported here."""

from __future__ import annotations

from nemowatch.api.auth import TokenInfo
from nemowatch.api.client import NemoClient, new_render_id
from nemowatch.api.errors import (
    BackendUnreachable,
    BadRequest,
    ExportBlocked,
    FileTooLarge,
    MissingClientId,
    NemoError,
    OutOfCredits,
    RateLimited,
    RenderFailed,
    ServerError,
    SessionNotFound,
    StreamFailed,
    TokenExpired,
    TokenRejected,
    UnsupportedFile,
)
from nemowatch.api.events import (
    Event,
    Heartbeat,
    MessageResult,
    StreamError,
    TextReply,
    ToolCall,
    ToolResult,
)
from nemowatch.api.models import Credits, RenderStatus, Session, SessionState
from nemowatch.api.settings import ClientSettings

__all__ = [
    "BackendUnreachable",
    "BadRequest",
    "ClientSettings",
    "Credits",
    "Event",
    "ExportBlocked",
    "FileTooLarge",
    "Heartbeat",
    "MessageResult",
    "MissingClientId",
    "NemoClient",
    "NemoError",
    "OutOfCredits",
    "RateLimited",
    "RenderFailed",
    "RenderStatus",
    "ServerError",
    "Session",
    "SessionNotFound",
    "SessionState",
    "StreamError",
    "StreamFailed",
    "TextReply",
    "TokenExpired",
    "TokenInfo",
    "TokenRejected",
    "ToolCall",
    "ToolResult",
    "UnsupportedFile",
    "new_render_id",
]
