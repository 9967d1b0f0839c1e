"""The local NemoVideo-compatible backend: the cloud's endpoints, bodies and codes, rendered with ffmpeg.

A client cannot tell it from the cloud (docs/api.md): the same paths, the
``{"code", "data", "msg"}`` envelope, the same error codes, an ADK event stream
on ``/run_sse``. What it adds is local-only: admin endpoints under
``/api/local/`` and signed ``/files/renders/<id>.mp4`` links.

Error answers. Envelope codes go with an HTTP status that says the same thing:
1001 → 401, 1002 → 404, 2001 → 403, 4001 → 415, 4002 → 413. Errors the API
documents as HTTP-only (400 missing ``X-Client-Id``, 402 export blocked, 404
unknown session on ``/run_sse``, 422 malformed body) carry no ``code``, just
``{"detail", "msg"}``, so a client falls back on the status, as the contract says.

Attribution headers (``X-Skill-Source/-Version/-Platform``) are required on export
only (``POST /api/render/proxy/lambda`` → HTTP 402 without them), like the cloud;
other calls tolerate their absence.

Auth. Every call but ``/api/auth/anonymous-token`` needs a bearer token: an
anonymous ``nmv_usr_…`` token this server issued and that has not expired, or the
configured access token. When an access token is set, it is the only token
accepted and anonymous tokens are not issued; a non-loopback bind requires one.
Sessions are not split by user: a local backend has one owner.

The parts: ``settings`` (LocalSettings), ``protocol`` (envelope, errors, SSE response),
``backend`` (state, auth, credits), ``endpoints``, ``messages`` (``/run_sse``),
``exports`` (renders), ``runner``, ``uploads``, ``store``, ``agent``. This module wires
them into the app and runs it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import uvicorn
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nemowatch.config import Config
from nemowatch.errors import UserError
from nemowatch.local import endpoints, exports, messages
from nemowatch.local.backend import Backend
from nemowatch.local.protocol import ApiError, error_response, is_loopback
from nemowatch.local.settings import LocalSettings

__all__ = ["LocalSettings", "RunningServer", "create_app", "serve", "start_server"]


def create_app(settings: LocalSettings) -> Starlette:
    """The Starlette app; its state lives under ``settings.state_dir / "local-backend"``."""
    backend = Backend(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backend.startup()
        yield
        await backend.shutdown()

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    routes = [
        Route("/", endpoints.index),
        Route("/api/auth/anonymous-token", endpoints.anonymous_token, methods=["POST"]),
        Route("/api/tasks/{user}/with-session/{app}", endpoints.create_session, methods=["POST"]),
        Route("/api/auth/claim-token", endpoints.claim_token, methods=["POST"]),
        Route("/workspace/claim", endpoints.claim_page),
        Route("/run_sse", messages.run_sse, methods=["POST"]),
        Route("/api/upload-video/{app}/{user}/{session_id}", endpoints.upload, methods=["POST"]),
        Route("/api/credits/balance/simple", endpoints.credits_balance),
        Route("/api/state/{app}/{user}/{session_id}/latest", endpoints.session_state),
        Route("/api/render/proxy/lambda", exports.submit_render, methods=["POST"]),
        Route("/api/render/proxy/lambda/{render_id}", exports.render_status),
        Route("/api/render/proxy/{render_id}/download", exports.render_download),
        Route("/files/renders/{name}", exports.signed_file),
        Route("/api/local/credits", endpoints.admin_credits, methods=["POST"]),
        Route("/api/local/sessions", endpoints.admin_sessions),
        Route("/api/local/testing", endpoints.admin_testing, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={ApiError: api_error})
    app.state.backend = backend
    return app


def check_exposure(settings: LocalSettings) -> None:
    """Refuse to listen beyond this machine without an access token."""
    if not is_loopback(settings.host) and not settings.access_token:
        raise UserError(
            f"the local backend will not listen on {settings.host} without an access token",
            "set local.access_token in the config, or keep local.host = 127.0.0.1",
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket bound now, so the real port is known and a busy port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"the local backend cannot listen on {host}:{port} ({exc.strerror})",
            "pick another port with --port (or local.port), or stop what is using it",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_for(sock: socket.socket, host: str) -> str:
    """The URL a client on this machine uses (a wildcard bind is reached through loopback)."""
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising the signal after a graceful stop (the CLI must exit 0 on SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _uvicorn(settings: LocalSettings) -> _Server:
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        log_level="warning",
        access_log=False,  # our own log lines say what matters, without query strings
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    return _Server(config)


class RunningServer:
    """A backend serving from a daemon thread with its own event loop (for the daemon and tests)."""

    def __init__(self, server: _Server, thread: threading.Thread, url: str) -> None:
        self._server, self._thread, self.url = server, thread, url

    def stop(self) -> None:
        """Stop serving and wait for the thread (open streams get a few seconds to finish)."""
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(settings: LocalSettings) -> RunningServer:
    """Serve in the background; returns once the server accepts connections (port 0: any free port)."""
    check_exposure(settings)
    sock = bind(settings.host, settings.port)
    server = _uvicorn(settings)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="nemowatch-local", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise UserError("the local backend did not start", "see the log above for the reason")
        time.sleep(0.01)
    return RunningServer(server, thread, url_for(sock, settings.host))


def serve(cfg: Config, port: int | None = None) -> int:
    """``nemowatch serve``: run the backend in the foreground until SIGINT/SIGTERM; returns the exit status."""
    from nemowatch.logs import setup_logging

    setup_logging(None)
    settings = LocalSettings.from_config(cfg, port)
    check_exposure(settings)
    sock = bind(settings.host, settings.port)
    url = url_for(sock, settings.host)
    logger.info("nemowatch local backend on {} (state: {})", url, settings.root)
    hint = f"point a client at it: NEMO_API_URL={url}"
    if settings.access_token:
        hint += " and NEMO_TOKEN=<local.access_token>"
    logger.info(hint)
    _uvicorn(settings).run(sockets=[sock])
    logger.info("nemowatch local backend stopped")
    return 0
