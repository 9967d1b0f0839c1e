"""NemoClient: one async method per NemoVideo endpoint, with the contract's retry and auth rules.

Retry rules, in one place (:meth:`NemoClient._attempts`):

- idempotent calls (GET state, credits, render status, downloads) retry connection
  errors, timeouts, 5xx and 429 with exponential backoff and jitter;
- everything else (create session, upload, claim, submit, ``/run_sse``) is retried
  only when the request never left the machine (no connection was made);
- code 1001 with an anonymous token: a new token (same client id) and one retry; with
  a user's token: :class:`TokenRejected`.

``/run_sse`` is never sent twice once it may have reached the server: a stream that
drops or times out returns ``completed=False`` and the caller reads the session state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import aconnect_sse
from loguru import logger

from nemowatch.api.auth import Authenticator, Token, TokenInfo, rejected_error, unreachable
from nemowatch.api.errors import (
    BackendUnreachable,
    Envelope,
    ErrorContext,
    FileTooLarge,
    NemoError,
    RateLimited,
    ServerError,
    TokenExpired,
    UnsupportedFile,
    error_for,
    parse_envelope,
    stream_error,
)
from nemowatch.api.events import Event, MessageResult, SSEDecoder, StreamAssembler
from nemowatch.api.formats import ACCEPTED_LIST, MAX_UPLOAD_BYTES, media_kind
from nemowatch.api.models import Credits, RenderStatus, Session, SessionState
from nemowatch.api.multipart import Progress, multipart_file
from nemowatch.api.retry import RetryPolicy, never_sent, retry_after_seconds
from nemowatch.api.settings import ClientSettings
from nemowatch.errors import UserError

T = TypeVar("T")

APP = "nemo_agent"
CONNECT_TIMEOUT_S = 10.0
# The backend may take a while to answer once a large upload's body is in.
UPLOAD_READ_TIMEOUT_S = 600.0
DOWNLOAD_CHUNK = 1024 * 1024

BodyFactory = Callable[[], AsyncIterator[bytes]]


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port: the only hosts the bearer token is ever sent to share the API's."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def new_render_id() -> str:
    """A fresh export id, ``render_<ms>_<rand>``: unique even for two submits in one millisecond."""
    return f"render_{int(time.time() * 1000)}_{secrets.token_hex(3)}"


def _submit_retryable(exc: NemoError) -> bool:
    """Failures where a second export under a new id may succeed (not plan, credits, token or session)."""
    return isinstance(exc, ServerError | BackendUnreachable | RateLimited) or type(exc) is NemoError


def _bind_id(data: Any) -> str | None:
    """The id a registration link binds to, when a response carries one."""
    if isinstance(data, dict):
        for key in ("bind_id", "user_id", "uid"):
            if isinstance(data.get(key), str | int) and str(data[key]):
                return str(data[key])
    return None


class NemoClient:
    """An async NemoVideo client; use ``async with NemoClient(settings) as client``."""

    def __init__(
        self, settings: ClientSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        self._origin = origin(settings.base_url)
        self._policy = RetryPolicy(
            settings.retry_base_s, settings.retry_cap_s, max(1, settings.retry_attempts)
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.request_timeout_s, connect=CONNECT_TIMEOUT_S),
        )
        # Attribution on every API request: without it exports fail with HTTP 402.
        self._skill_headers = {
            "X-Skill-Source": settings.skill_source,
            "X-Skill-Version": settings.skill_version,
            "X-Skill-Platform": settings.skill_platform,
        }
        self._auth = Authenticator(settings, self._http, self._skill_headers, self._policy)
        self._bind: str | None = None

    async def __aenter__(self) -> NemoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self._base + path

    def _headers(self, token: Token | None) -> dict[str, str]:
        headers = dict(self._skill_headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        return headers

    def _ctx(self, what: str, token: Token | None, **extra: Any) -> ErrorContext:
        anonymous = token.info.anonymous if token is not None else True
        return ErrorContext(
            what,
            self.settings.web_url,
            anonymous=anonymous,
            bind_id=self._bind or self._auth.client_id,
            **extra,
        )

    def _raise_for(self, response: httpx.Response, what: str, token: Token | None, **extra: Any) -> Envelope:
        """The envelope of a read response, or the typed error it carries."""
        env = parse_envelope(response.status_code, response.content)
        if env.ok:
            return env
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        ctx = self._ctx(what, token, retry_after=retry_after, **extra)
        raise error_for(env, ctx)

    async def _attempts(
        self,
        once: Callable[[Token | None], Awaitable[T]],
        *,
        idempotent: bool,
        authenticated: bool = True,
        host: str | None = None,
    ) -> T:
        """Run ``once`` under the retry rules of the module docstring."""
        token = await self._auth.current() if authenticated else None
        renewed = False
        attempt = 0
        while True:
            try:
                return await once(token)
            except TokenExpired:
                if token is None:
                    raise
                if renewed:
                    raise rejected_error(token) from None
                token = await self._auth.renew(token)
                renewed = True
                continue
            except (ServerError, RateLimited) as exc:
                if not idempotent or attempt + 1 >= self._policy.attempts:
                    raise
                delay = self._policy.delay(attempt, exc.retry_after if isinstance(exc, RateLimited) else None)
                logger.info("{}; retrying in {:.1f} s", exc.message, delay)
            except httpx.TransportError as exc:
                if not (idempotent or never_sent(exc)) or attempt + 1 >= self._policy.attempts:
                    raise unreachable(host or self._base, exc) from None
                delay = self._policy.delay(attempt)
                logger.info("backend not reachable ({}); retrying in {:.1f} s", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        idempotent: bool,
        json: Any = None,
        content: BodyFactory | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        **ctx: Any,
    ) -> Envelope:
        """One JSON endpoint: send, parse the envelope, raise typed errors, retry per the rules."""

        async def once(token: Token | None) -> Envelope:
            logger.debug("{} {}", method, path)
            response = await self._http.request(
                method,
                self._url(path),
                json=json,
                content=content() if content is not None else None,
                headers={**self._headers(token), **(headers or {})},
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            return self._raise_for(response, what, token, **ctx)

        return await self._attempts(once, idempotent=idempotent)

    # -- tokens -----------------------------------------------------------------------------

    async def token_info(self) -> TokenInfo:
        """Where the token comes from and when it expires (fetching one if needed)."""
        return (await self._auth.current()).info

    async def refresh_token(self) -> TokenInfo:
        """Anonymous: a new token now. A user's token: checked against the backend (credits call)."""
        token = await self._auth.refresh()
        if not token.info.anonymous:
            await self.credits()
        return token.info

    # -- sessions ---------------------------------------------------------------------------

    async def create_session(self, task_name: str = "project", language: str | None = None) -> Session:
        """A new task with its agent session."""
        body = {"task_name": task_name, "language": language or self.settings.language}
        env = await self._call(
            "POST",
            f"/api/tasks/me/with-session/{APP}",
            what="creating a session",
            idempotent=False,
            json=body,
        )
        data = env.data if isinstance(env.data, dict) else {}
        session_id = str(data.get("session_id") or "")
        if not session_id:
            raise NemoError(
                "the backend created a session but sent no session id",
                "check that api.base_url points at a NemoVideo backend",
            )
        self._bind = _bind_id(data) or self._bind
        logger.info("created session {}", session_id)
        return Session(task_id=str(data.get("task_id") or ""), session_id=session_id)

    async def project_link(self, task_id: str, session_id: str) -> str:
        """A browser link that opens the project in the web app (claim token, never the bearer token)."""
        env = await self._call(
            "POST",
            "/api/auth/claim-token",
            what="asking for the project link",
            idempotent=False,
            json={"task_id": task_id, "session_id": session_id},
        )
        data = env.data if isinstance(env.data, dict) else {}
        claim = data.get("claim_token")
        if not isinstance(claim, str) or not claim:
            raise NemoError("the backend sent no claim token for the project link", "try again later")
        return f"{self.settings.web_url.rstrip('/')}/workspace/claim?ct={quote(claim, safe='')}"

    async def get_state(self, session_id: str) -> SessionState:
        """The session's draft and media (compare before/after a message that returned no text)."""
        env = await self._call(
            "GET",
            f"/api/state/{APP}/me/{quote(session_id, safe='')}/latest",
            what="reading the session state",
            idempotent=True,
            session_scoped=True,
        )
        self._bind = _bind_id(env.data) or self._bind
        return SessionState.from_data(env.data)

    async def credits(self) -> Credits:
        """The credit balance."""
        env = await self._call(
            "GET", "/api/credits/balance/simple", what="reading the credits", idempotent=True
        )
        return Credits.from_data(env.data)

    # -- uploads ----------------------------------------------------------------------------

    async def upload_file(
        self, session_id: str, path: Path, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Upload one file as a streamed multipart body (field ``files``); checks type and size first."""
        name = path.name
        if media_kind(path) is None:
            raise UnsupportedFile(
                f"{name} is not a file type NemoVideo accepts", f"use one of: {ACCEPTED_LIST}"
            )
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise UserError(
                f"{name} cannot be read ({exc.strerror})", "put the file back into the job"
            ) from None
        limit = MAX_UPLOAD_BYTES // 1_000_000
        if size > MAX_UPLOAD_BYTES:
            raise FileTooLarge(
                f"{name} is {size / 1_000_000:.0f} MB, over the {limit} MB upload limit",
                f"compress or trim it below {limit} MB",
            )
        body = multipart_file(path, size)
        logger.info("uploading {} ({:.1f} MB)", name, size / 1_000_000)
        env = await self._call(
            "POST",
            f"/api/upload-video/{APP}/me/{quote(session_id, safe='')}",
            what=f"uploading {name}",
            idempotent=False,
            content=lambda: body.chunks(progress),
            headers=body.headers(),
            timeout=httpx.Timeout(
                self.settings.request_timeout_s, connect=CONNECT_TIMEOUT_S, read=UPLOAD_READ_TIMEOUT_S
            ),
            session_scoped=True,
            file_name=name,
        )
        return env.data if isinstance(env.data, dict) else {}

    async def upload_urls(self, session_id: str, urls: list[str]) -> dict[str, Any]:
        """Let the backend fetch media from URLs."""
        env = await self._call(
            "POST",
            f"/api/upload-video/{APP}/me/{quote(session_id, safe='')}",
            what="adding media by URL",
            idempotent=False,
            json={"urls": list(urls), "source_type": "url"},
            session_scoped=True,
        )
        return env.data if isinstance(env.data, dict) else {}

    # -- messages ---------------------------------------------------------------------------

    async def send_message(
        self, session_id: str, text: str, on_event: Callable[[Event], None] | None = None
    ) -> MessageResult:
        """Send one message and follow the agent's run to its end (see MessageResult).

        Raises before the stream starts only (SessionNotFound, BadRequest, TokenRejected,
        OutOfCredits, BackendUnreachable when no connection could be made).
        """
        body = {
            "app_name": APP,
            "user_id": "me",
            "session_id": session_id,
            "new_message": {"parts": [{"text": text}]},
        }
        limit = min(self.settings.sse_timeout_s, self.settings.sse_idle_timeout_s)
        timeout = httpx.Timeout(limit, connect=CONNECT_TIMEOUT_S)
        started = asyncio.get_running_loop().time()

        async def once(token: Token | None) -> MessageResult:
            try:
                async with aconnect_sse(
                    self._http,
                    "POST",
                    self._url("/run_sse"),
                    json=body,
                    headers=self._headers(token),
                    timeout=timeout,
                ) as source:
                    response = source.response
                    content_type = response.headers.get("content-type", "")
                    if not response.is_success or "json" in content_type:
                        # Rejected before the run started (404, 422, an envelope code): nothing ran.
                        await response.aread()
                        env = self._raise_for(response, "sending the message", token, session_scoped=True)
                        if not response.is_success:
                            raise error_for(
                                Envelope(response.status_code, None, None, env.msg),
                                self._ctx("sending the message", token, session_scoped=True),
                            )
                        return MessageResult("", True, None, 0, 0)
                    result = await self._read_stream(response, on_event, started)
                    # One error table for both forms: a refusal reported inside the stream is raised
                    # like the same code in an envelope (1001 is renewed and sent again by _attempts).
                    refused = stream_error(
                        result.error_code,
                        result.error or "",
                        self._ctx("sending the message", token, session_scoped=True),
                    )
                    if refused is not None:
                        raise refused
                    return result
            except httpx.TransportError as exc:
                if never_sent(exc):
                    raise
                logger.warning(
                    "the connection dropped after the message was sent ({}); it is not sent again",
                    type(exc).__name__,
                )
                return MessageResult("", False, None, 0, 0)

        return await self._attempts(once, idempotent=False)

    async def _read_stream(
        self, response: httpx.Response, on_event: Callable[[Event], None] | None, started: float
    ) -> MessageResult:
        """Follow the stream until it closes, drops, or a time limit ends it (``completed=False``)."""
        settings = self.settings
        loop = asyncio.get_running_loop()
        decoder, assembler = SSEDecoder(), StreamAssembler()
        deadline = started + settings.sse_timeout_s
        last_real = loop.time()  # heartbeats do not move this: only real events do
        next_note = started + settings.still_working_every_s
        chunks = response.aiter_text()
        pending: asyncio.Future[str] | None = None
        completed = False

        def deliver(frames: list[Any]) -> None:
            for frame in frames:
                for event in assembler.feed(frame):
                    if on_event is not None:
                        on_event(event)

        async def next_chunk() -> str:
            return await chunks.__anext__()

        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    logger.warning(
                        "no end of the reply after {:g} s; giving up on this stream", settings.sse_timeout_s
                    )
                    break
                if now - last_real >= settings.sse_idle_timeout_s:
                    logger.warning(
                        "only heartbeats for {:g} s; treating the message as timed out",
                        settings.sse_idle_timeout_s,
                    )
                    break
                if now >= next_note:
                    logger.info("still working on the message ({:.0f} s so far)", now - started)
                    next_note += settings.still_working_every_s
                    continue
                if pending is None:
                    pending = asyncio.ensure_future(next_chunk())
                wake = min(deadline, last_real + settings.sse_idle_timeout_s, next_note)
                done, _ = await asyncio.wait({pending}, timeout=max(0.0, wake - now))
                if not done:
                    continue
                task, pending = pending, None
                try:
                    chunk = task.result()
                except StopAsyncIteration:
                    deliver(decoder.close())
                    completed = True
                    break
                before = assembler.events
                deliver(decoder.feed(chunk))
                if assembler.events > before:
                    last_real = loop.time()
        except httpx.TransportError as exc:
            logger.warning(
                "the stream dropped after the message was sent ({}); it is not sent again", type(exc).__name__
            )
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
        result = MessageResult(
            assembler.text,
            completed,
            assembler.error,
            assembler.tool_calls,
            assembler.events,
            assembler.error_code,
        )
        logger.debug(
            "message stream ended: completed={}, {} events, {} tool calls, {} chars of text",
            completed,
            result.events,
            result.tool_calls,
            len(result.text),
        )
        return result

    # -- export -----------------------------------------------------------------------------

    async def submit_render(
        self,
        session_id: str,
        draft: dict[str, Any],
        *,
        before_submit: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> str:
        """Start an export; ``before_submit(id)`` runs before each send (so the id can be journaled).

        A failed submit is retried once under a NEW id (the contract's rule); returns the id used.
        """
        for attempt in range(2):
            render_id = new_render_id()
            if before_submit is not None:
                outcome = before_submit(render_id)
                if inspect.isawaitable(outcome):
                    await outcome
            body = {
                "id": render_id,
                "sessionId": session_id,  # camelCase here, the API's one exception
                "draft": draft,
                "output": {"format": "mp4", "quality": "high"},
            }
            try:
                await self._call(
                    "POST",
                    "/api/render/proxy/lambda",
                    what="starting the export",
                    idempotent=False,
                    json=body,
                    session_scoped=True,
                )
            except NemoError as exc:
                if attempt or not _submit_retryable(exc):
                    raise
                logger.warning("starting the export failed ({}); retrying once with a new render id", exc)
                await asyncio.sleep(self._policy.delay(0, getattr(exc, "retry_after", None)))
                continue
            logger.info("export {} started", render_id)
            return render_id
        raise AssertionError("unreachable: the loop returns or raises")

    async def render_status(self, render_id: str) -> RenderStatus:
        """One poll of an export."""
        env = await self._call(
            "GET",
            f"/api/render/proxy/lambda/{quote(render_id, safe='')}",
            what="checking the export",
            idempotent=True,
        )
        return RenderStatus.from_data(render_id, env.data)

    async def download_render(
        self, render_id: str, target: Path, *, url: str | None = None, progress: Progress | None = None
    ) -> Path:
        """Download the finished video to ``target``, atomically (``.<name>.part`` then rename).

        ``url`` (the render's ``output.url``) is tried first, without the bearer token
        unless it is on the API's own host; the API's download endpoint is the fallback.
        """
        part = target.with_name(f".{target.name}.part")
        sources = [url] if url else []
        sources.append(self._url(f"/api/render/proxy/{quote(render_id, safe='')}/download"))
        failure: NemoError | None = None
        for source in sources:
            try:
                await self._download(source, part, progress)
                os.replace(part, target)
            except NemoError as exc:
                failure = exc
                logger.warning("downloading the video from {} failed: {}", httpx.URL(source).host, exc)
                continue
            except OSError as exc:
                with contextlib.suppress(OSError):
                    part.unlink()
                # Chained: the daemon tells a passing disk fault (full, read-only) by the OSError.
                raise UserError(
                    f"cannot write the video to {target} ({exc.strerror})",
                    "check the free space and permissions of the outbox",
                ) from exc
            logger.info("downloaded the video to {}", target)
            return target
        assert failure is not None
        raise failure

    async def _download(self, source: str, part: Path, progress: Progress | None) -> None:
        """Stream ``source`` into ``part``; the file is removed again if anything goes wrong."""
        own_host = origin(source) == self._origin
        what = "downloading the video"

        async def once(token: Token | None) -> None:
            try:
                async with self._http.stream(
                    "GET", source, headers=self._headers(token) if own_host else {}, follow_redirects=True
                ) as response:
                    if not response.is_success or "json" in response.headers.get("content-type", ""):
                        await response.aread()
                        self._raise_for(response, what, token)
                        raise NemoError(
                            "the backend answered the download without a video", "try again later"
                        )
                    total = int(response.headers.get("Content-Length") or 0)
                    written = 0
                    with part.open("wb") as handle:
                        async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                            handle.write(chunk)
                            written += len(chunk)
                            if progress is not None:
                                progress(written, total)
                        handle.flush()
                        os.fsync(handle.fileno())
                    if written == 0:
                        raise NemoError("the downloaded video is empty", "try the download again later")
            except BaseException:
                with contextlib.suppress(OSError):
                    part.unlink()
                raise

        # The CDN link gets neither the token nor a token request: it is a different host.
        await self._attempts(once, idempotent=True, authenticated=own_host, host=source)
