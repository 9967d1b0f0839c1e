"""The API's envelope and error codes turned into typed exceptions, each with a message and a hint.

The contract (docs/api.md, "The envelope"): an error may come as a non-2xx HTTP
status, as HTTP 200 with a non-zero ``code``, or both, and a body may be missing
or not JSON (a proxy's 502 page). The envelope ``code`` decides when there is
one; otherwise the HTTP status does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nemowatch.api.formats import ACCEPTED_LIST, MAX_UPLOAD_BYTES
from nemowatch.errors import UserError
from nemowatch.logs import mask

# Envelope codes of the contract; HTTP statuses share the number space below 1000.
CODE_TOKEN = 1001
CODE_SESSION = 1002
CODE_CREDITS = 2001
CODE_FILE_TYPE = 4001
CODE_FILE_SIZE = 4002
# Codes that refuse a request before any work is done. Inside an SSE stream (HTTP 200 already sent)
# they mean exactly what they mean in an envelope (docs/api.md): re-authenticate, replay the lost
# session, wait for credits, wait out the rate limit. Other in-stream errors may follow real work.
REFUSED_BEFORE_WORK = frozenset({CODE_TOKEN, 401, CODE_SESSION, CODE_CREDITS, 429})


class NemoError(UserError):
    """Any failure reported by (or on the way to) a NemoVideo backend."""

    code = "api_error"

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        code: str | None = None,
        http_status: int | None = None,
        api_code: int | None = None,
    ) -> None:
        super().__init__(message, hint, code=code)
        self.http_status = http_status
        # The envelope code (1001, 2001, …) when the backend sent one; ``code`` stays a stable name.
        self.api_code = api_code


class TokenRejected(NemoError):
    """A user-supplied token (or a fresh anonymous one) was refused: a person must fix it."""

    code = "token_rejected"


class TokenExpired(NemoError):
    """Code 1001 with an anonymous token: internal, the client fetches a new token and retries once."""

    code = "token_expired"


class SessionNotFound(NemoError):
    """Code 1002 / HTTP 404 on a session: the session must be created again."""

    code = "session_not_found"


class OutOfCredits(NemoError):
    """Code 2001: not a job failure, the daemon waits for credits; ``link`` registers or tops up."""

    code = "out_of_credits"

    def __init__(self, message: str, hint: str = "", *, link: str = "", **kwargs: Any) -> None:
        super().__init__(message, hint, **kwargs)
        self.link = link


class UnsupportedFile(NemoError):
    """Code 4001: the backend does not take this file type."""

    code = "unsupported_file"


class FileTooLarge(NemoError):
    """Code 4002: the file is over the 500 MB limit."""

    code = "file_too_large"


class MissingClientId(NemoError):
    """HTTP 400 on the anonymous-token call: the X-Client-Id header was missing or refused."""

    code = "missing_client_id"


class ExportBlocked(NemoError):
    """HTTP 402: the plan does not allow export (this is NOT about credits)."""

    code = "export_blocked"


class RateLimited(NemoError):
    """HTTP 429: too many requests; ``retry_after`` is the server's hint in seconds, if any."""

    code = "rate_limited"

    def __init__(
        self, message: str, hint: str = "", *, retry_after: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, hint, **kwargs)
        self.retry_after = retry_after


class ServerError(NemoError):
    """HTTP 5xx (or an envelope code in that range): usually temporary."""

    code = "server_error"


class BadRequest(NemoError):
    """HTTP 422 or another 4xx: the backend refused what nemowatch sent."""

    code = "bad_request"


class BackendUnreachable(NemoError):
    """Connection errors or timeouts that outlasted the retries."""

    code = "backend_unreachable"


class StreamFailed(NemoError):
    """An error reported inside an SSE run (see ``MessageResult.raise_for_error``)."""

    code = "stream_failed"


class RenderFailed(NemoError):
    """The backend reported the export as failed."""

    code = "render_failed"


@dataclass(frozen=True)
class Envelope:
    """One parsed response: HTTP status, envelope ``code`` (None when the body has none), ``data``, ``msg``."""

    status: int
    code: int | None
    data: Any
    msg: str
    body: Any = None

    @property
    def error(self) -> int | None:
        """The number that decides: a non-zero envelope code, else a non-2xx HTTP status, else None."""
        if self.code is not None:
            return self.code or None
        return self.status if not 200 <= self.status < 300 else None

    @property
    def ok(self) -> bool:
        return self.error is None


def as_code(value: Any) -> int | None:
    """Envelope codes arrive as numbers or numeric strings; anything else means "no code"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def parse_envelope(status: int, content: bytes) -> Envelope:
    """Parse a response body that may be an envelope, a bare JSON object, empty, or an HTML page."""
    try:
        body = json.loads(content) if content.strip() else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        snippet = content[:200].decode("utf-8", "replace").strip() if body is None else ""
        return Envelope(status, None, body, snippet if not 200 <= status < 300 else "", body)
    code = as_code(body.get("code")) if "code" in body else None
    msg = body.get("msg") or body.get("message") or ""
    if not isinstance(msg, str):
        msg = json.dumps(msg)[:200]
    # A body without an envelope (the render proxy's status object) is its own data.
    data = body.get("data") if code is not None else body
    return Envelope(status, code, data, msg, body)


@dataclass(frozen=True)
class ErrorContext:
    """What the client was doing, so the message can say it and the hint can be specific."""

    what: str
    web_url: str = ""
    anonymous: bool = True
    bind_id: str | None = None
    file_name: str | None = None
    token_call: bool = False
    session_scoped: bool = False
    retry_after: float | None = None


def registration_link(web_url: str, bind_id: str | None) -> str:
    """The web app's sign-up link that binds an anonymous account's work to the new account."""
    base = web_url.rstrip("/")
    return f"{base}/register?bind={bind_id}" if bind_id else f"{base}/register"


def _detail(env: Envelope) -> str:
    """The server's own words, masked and on one line, to append to a message."""
    words = " ".join(mask(env.msg).split())[:200]
    return f" ({words})" if words else ""


def error_for(env: Envelope, ctx: ErrorContext) -> NemoError:
    """The typed exception for an unsuccessful response (``env.ok`` must be False)."""
    number = env.error or 0
    extra: dict[str, Any] = {"http_status": env.status, "api_code": env.code}
    detail = _detail(env)
    web = ctx.web_url.rstrip("/")
    if number in (CODE_TOKEN, 401):
        return TokenExpired(f"the backend rejected the token while {ctx.what}{detail}", **extra)
    if number == CODE_SESSION or (number == 404 and ctx.session_scoped):
        return SessionNotFound(
            f"the backend no longer knows this session (it expired or was deleted) while {ctx.what}",
            "start the job again in a new session; its files and prompt are sent again",
            **extra,
        )
    if number == CODE_CREDITS:
        if ctx.anonymous:
            link = registration_link(web, ctx.bind_id)
            return OutOfCredits(
                "the free anonymous account is out of credits",
                f"register at {link} to get more; the job waits until credits are available",
                link=link,
                **extra,
            )
        return OutOfCredits(
            "the NemoVideo account is out of credits",
            f"top up credits in your account at {web}; the job waits until credits are available",
            link=web,
            **extra,
        )
    if number in (CODE_FILE_TYPE, 415):
        name = ctx.file_name or "the file"
        said = " ".join(mask(env.msg).split())
        if ctx.file_name and said.startswith(f"{ctx.file_name} "):
            # The backend read the file and says what is wrong with it and what to do ("x.mp4 is
            # cut short: …; copy it again from the original"): its sentence, not a type refusal.
            message, _, hint = said.rpartition("; ")
            return UnsupportedFile(
                message or hint, hint if message else f"use one of: {ACCEPTED_LIST}", **extra
            )
        return UnsupportedFile(
            f"the backend does not accept {name} (unsupported file type){detail}",
            f"use one of: {ACCEPTED_LIST}",
            **extra,
        )
    if number in (CODE_FILE_SIZE, 413):
        name = ctx.file_name or "the file"
        limit = MAX_UPLOAD_BYTES // 1_000_000
        return FileTooLarge(
            f"{name} is too large for the backend (the limit is {limit} MB)",
            f"compress or trim it below {limit} MB",
            **extra,
        )
    if number == 400 and ctx.token_call:
        return MissingClientId(
            "the backend refused the client id (X-Client-Id) when asked for an anonymous token",
            "set NEMO_CLIENT_ID to a UUID, or delete ~/.config/nemovideo/client_id to get a new one",
            **extra,
        )
    if number == 402:
        return ExportBlocked(
            "the export was blocked by the account's plan (this is not about credits)",
            f"register or upgrade to unlock export at {web}",
            **extra,
        )
    if number == 429:
        if ctx.token_call:
            hint = "anonymous tokens are limited to one per client every 7 days; set NEMO_TOKEN to your own token or wait"
        else:
            hint = "wait a few minutes and try again"
        return RateLimited(
            f"the backend is rate-limiting requests while {ctx.what}",
            hint,
            retry_after=ctx.retry_after,
            **extra,
        )
    if 500 <= number < 600:
        return ServerError(
            f"the backend failed with error {number} while {ctx.what}{detail}",
            "this is usually temporary; try again in a few minutes",
            **extra,
        )
    if 400 <= number < 500:
        return BadRequest(
            f"the backend refused the request (error {number}) while {ctx.what}{detail}",
            "check for a nemowatch update: the API may have changed",
            **extra,
        )
    return NemoError(
        f"the backend answered with error {number} while {ctx.what}{detail}",
        "try again later; if it keeps happening, check for a nemowatch update",
        **extra,
    )


def stream_error(code: int | None, message: str, ctx: ErrorContext) -> NemoError | None:
    """The typed error for a code reported inside an SSE run, when the code refused the message before
    any work (``REFUSED_BEFORE_WORK``); None for anything else, which the caller must verify by reading
    the session state (the run may have changed it)."""
    if code is None or code not in REFUSED_BEFORE_WORK:
        return None
    return error_for(Envelope(200, code, None, message), ctx)
