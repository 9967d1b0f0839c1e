"""Background renders: a few at a time, real progress, and nothing left pending after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loguru import logger

from nemowatch.local.store import RENDER_ACTIVE, RenderRecord, Store

# A render interrupted this many times (server restarts mid-render) is reported failed
# instead of being started yet again: something about it keeps taking the server down.
MAX_ATTEMPTS = 3
# Progress is written to disk at most this often; the in-memory value is always current.
PERSIST_EVERY_S = 1.0


class RenderCancelled(Exception):
    """Raised from the progress callback to stop a render when the server shuts down."""


class RenderRunner:
    """Runs renders in worker threads, ``slots`` at a time, and records their progress in the store."""

    def __init__(self, store: Store, *, slots: int, take_failure: Callable[[], bool]) -> None:
        self.store = store
        self._slots = asyncio.Semaphore(max(1, slots))
        # Our own pool rather than the loop's default one: shutting down must not wait for an
        # ffmpeg that ignores cancellation (asyncio.run joins the default executor).
        self._pool = ThreadPoolExecutor(max_workers=max(1, slots), thread_name_prefix="render")
        self._take_failure = take_failure
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closing = threading.Event()
        self._persisted_at: dict[str, float] = {}

    async def start(self) -> None:
        """Resume every render a previous run left pending or processing (or fail it, if it keeps dying)."""
        # What renders of a killed server left behind: their attempts are over (any ffmpeg
        # of theirs died with that server: see ffmpeg.die_with_parent).
        removed = self.store.remove_leftovers()
        if removed:
            logger.info("local backend: removed {} file(s) left by interrupted renders", removed)
        for render in list(self.store.renders.values()):
            if render.status not in RENDER_ACTIVE:
                continue
            if render.attempts >= MAX_ATTEMPTS:
                self._finish(
                    render, "failed", f"the render was interrupted {render.attempts} times; export it again"
                )
                continue
            logger.info("local backend: resuming render {} after a restart", render.id)
            render.status, render.progress = "pending", 0.0
            self.store.save_render(render)
            self.submit(render)

    def submit(self, render: RenderRecord) -> None:
        """Start rendering in the background (at most once per render id)."""
        if render.id in self._tasks and not self._tasks[render.id].done():
            return
        self._tasks[render.id] = asyncio.create_task(self._run(render), name=f"render {render.id}")

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop: running renders are asked to stop and stay ``processing`` on disk, to be resumed later."""
        self._closing.set()
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, render: RenderRecord) -> None:
        async with self._slots:
            if self._closing.is_set():
                return
            render.status, render.progress, render.error = "processing", 0.0, None
            render.attempts += 1
            self.store.save_render(render)
            if self._take_failure():
                self._finish(render, "failed", "the render failed (simulated failure, a testing aid)")
                return
            # Only a whole file is renamed in place (see Store.attempt_file).
            part = self.store.attempt_file(render.id)
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._pool, self._render_blocking, render, part, loop)
            except asyncio.CancelledError:
                # Shutting down: leave the record "processing" so the next start resumes it.
                raise
            except RenderCancelled:
                return
            except Exception as exc:
                message = _failure_message(exc)
                logger.warning("local backend: render {} failed: {}", render.id, message)
                self._finish(render, "failed", message)
                return
            finally:
                with contextlib.suppress(OSError):
                    part.unlink(missing_ok=True)
            if self._closing.is_set():
                return
            self._finish(render, "completed", None)

    def _render_blocking(self, render: RenderRecord, part: Path, loop: asyncio.AbstractEventLoop) -> None:
        """The worker thread: one ffmpeg run; progress is handed back to the event loop."""
        from nemowatch.local.render import render_video

        def progress(fraction: float) -> None:
            if self._closing.is_set():
                raise RenderCancelled()
            percent = max(0.0, min(99.0, float(fraction) * 100.0))
            loop.call_soon_threadsafe(self._set_progress, render, percent)

        try:
            render_video(render.draft, self._resolver(render.session_id), part, progress=progress)
        finally:
            _release_memory()
        if self._closing.is_set():
            raise RenderCancelled()
        if not part.exists() or part.stat().st_size == 0:
            raise RuntimeError("the renderer produced no file")
        os.replace(part, self.store.render_file(render.id))

    def _resolver(self, session_id: str) -> Callable[[str], Path]:
        """Map a draft's media ids to the session's uploaded files."""
        from nemowatch.local.render import RenderError

        def resolve(media_id: str) -> Path:
            session = self.store.sessions.get(session_id)
            for media in session.media if session else []:
                if media.get("id") == media_id:
                    return self.store.media_path(media)
            raise RenderError(f"the draft uses media {media_id!r}, which was not uploaded to this session")

        return resolve

    def _set_progress(self, render: RenderRecord, percent: float) -> None:
        if render.status != "processing" or percent <= render.progress:
            return
        render.progress = round(percent, 1)
        now = time.monotonic()
        if now - self._persisted_at.get(render.id, 0.0) >= PERSIST_EVERY_S:
            self._persisted_at[render.id] = now
            self.store.save_render(render)

    def _finish(self, render: RenderRecord, status: str, error: str | None) -> None:
        render.status, render.error = status, error
        if status == "completed":
            render.progress = 100.0
        self.store.save_render(render)
        self._persisted_at.pop(render.id, None)
        logger.info("local backend: render {} {}", render.id, status)


def _release_memory() -> None:
    """Hand the photo buffers of a finished render back to the system.

    The daemon runs for months with the backend in-process; glibc keeps a worker thread's freed
    arena memory, so without a trim each render would leave tens of MB behind in RSS.
    """
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).malloc_trim(0)


def _failure_message(exc: Exception) -> str:
    """One line for the render's ``error``: the renderer's own words, or what crashed."""
    from nemowatch.local.render import RenderError

    if isinstance(exc, RenderError):
        return str(exc) or "the render failed"
    return f"the local renderer crashed ({type(exc).__name__}: {exc})"
