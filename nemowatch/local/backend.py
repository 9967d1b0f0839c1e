"""The local backend's live state: the store, auth, the credit balance, renders and running messages."""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass

from loguru import logger
from starlette.requests import Request

from nemowatch.local.agent import drain
from nemowatch.local.protocol import ApiError, is_loopback
from nemowatch.local.runner import RenderRunner
from nemowatch.local.settings import UNLIMITED_CREDITS, LocalSettings
from nemowatch.local.store import SessionRecord, Store

# How often sessions and renders past local.keep_days are looked for (also once at start-up).
PRUNE_INTERVAL_S = 3600.0


@dataclass
class Hooks:
    """The live values of the testing aids (counters run down as they are used)."""

    fail_renders: int
    sse_delay_s: float
    reply_silently: bool
    drop_streams: int

    def take(self, name: str) -> bool:
        """Use up one unit of a counter; True when there was one."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False


class Backend:
    """The app's state: settings, store, credits, renders and the messages being carried out."""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.store = Store(settings.root)
        self.hooks = Hooks(
            settings.fail_renders, settings.sse_delay_s, settings.reply_silently, settings.drop_streams
        )
        self.balance = self.store.load_balance(settings.credits)
        self.frozen = 0
        self.runner = RenderRunner(
            self.store, slots=settings.render_slots, take_failure=lambda: self.hooks.take("fail_renders")
        )
        self.runs: set[asyncio.Task[None]] = set()
        self.session_locks: dict[str, asyncio.Lock] = {}
        self.pruner: asyncio.Task[None] | None = None

    # -- auth --------------------------------------------------------------------------------------

    def user(self, request: Request) -> str:
        """The caller's user id, or 1001 when the bearer token is missing, unknown or expired."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        access = self.settings.access_token
        if token and access and hmac.compare_digest(token.encode(), access.encode()):
            return "owner"
        if token and not access:
            user = self.store.token_user(token)
            if user is not None:
                return user
        raise ApiError(1001, 401, "the token is missing, unknown or expired; request a new token")

    def require_admin(self, request: Request) -> None:
        """Admin calls come from this machine or carry the access token."""
        client = request.client.host if request.client else ""
        if is_loopback(client):
            return
        if self.settings.access_token and self.user(request) == "owner":
            return
        raise ApiError(None, 403, "admin endpoints answer only loopback callers or the access token")

    def session(self, session_id: str) -> SessionRecord:
        """The session, or 1002."""
        found = self.store.sessions.get(session_id)
        if found is None:
            raise ApiError(1002, 404, f"session {session_id} was not found; create a new session")
        return found

    # -- credits -----------------------------------------------------------------------------------

    def credits(self) -> dict[str, int]:
        """The balance as the API reports it (unlimited: a large number)."""
        if self.balance is None:
            return {"available": UNLIMITED_CREDITS, "frozen": self.frozen, "total": UNLIMITED_CREDITS}
        return {"available": self.balance - self.frozen, "frozen": self.frozen, "total": self.balance}

    def freeze(self, cost: int) -> bool:
        """Reserve ``cost`` for a message in progress; False when the balance cannot cover it."""
        if self.balance is not None and self.balance - self.frozen < cost:
            return False
        self.frozen += cost
        return True

    def settle(self, cost: int, spent: bool) -> None:
        """Release a reservation, spending it when the work was done."""
        self.frozen = max(0, self.frozen - cost)
        if spent and self.balance is not None and cost:
            self.balance -= cost
            self.store.save_balance(self.settings.credits, self.balance)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Resume the renders a previous run left unfinished; prune old sessions now and hourly."""
        await self.runner.start()
        logger.info("local backend: state in {}", self.settings.root)
        if self.settings.keep_days:
            self.prune()  # before the first request: what a long stop left behind goes at once
            self.pruner = asyncio.create_task(
                self._prune_every(PRUNE_INTERVAL_S), name="local backend pruning"
            )

    async def shutdown(self) -> None:
        """Stop running messages (unapplied ones are not charged) and renders (resumed next start)."""
        if self.pruner is not None:
            self.pruner.cancel()
            await drain(self.pruner)
        for task in list(self.runs):
            task.cancel()
        for task in list(self.runs):
            await drain(task)
        await self.runner.close()

    def prune(self) -> None:
        """Drop the sessions and renders unused for ``keep_days`` (see ``Store.prune``)."""
        if not self.settings.keep_days:
            return
        busy = {session_id for session_id, lock in self.session_locks.items() if lock.locked()}
        sessions, renders = self.store.prune(time.time() - self.settings.keep_days * 86400, busy)
        for session_id in set(self.session_locks) - set(self.store.sessions):
            del self.session_locks[session_id]
        if sessions or renders:
            logger.info(
                "local backend: removed {} session(s) and {} render(s) unused for {:g} days",
                sessions,
                renders,
                self.settings.keep_days,
            )

    async def _prune_every(self, interval_s: float) -> None:
        """``prune`` every ``interval_s`` seconds until cancelled at shutdown."""
        while True:
            await asyncio.sleep(interval_s)
            self.prune()


def backend_of(request: Request) -> Backend:
    """The Backend behind the app serving ``request``."""
    backend: Backend = request.app.state.backend
    return backend
