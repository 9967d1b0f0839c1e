"""The daemon's timed chores on its own event loop (APScheduler 3): token refresh, credit checks, housekeeping.

- Token: an anonymous token is renewed one day before it expires and the next renewal is
  scheduled from the new expiry; a user-supplied token (NEMO_TOKEN, a token file) is only
  validated now and then — when the backend rejects it the queue is *paused*, not failed,
  because no job can succeed until the user sets a valid token.
- Credits: checked every few minutes and on demand (a job just started waiting for credits);
  when ``available >= min_credits`` the waiting jobs are released.
- Housekeeping: once a day, claim folders finished jobs left in the work area are removed;
  the intake removes only folders holding nothing but its claim record, never a user's file.

Every result is also written to the journal's meta table (facts.py) for ``nemowatch status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from nemowatch.api.errors import NemoError, TokenRejected
from nemowatch.daemon import facts
from nemowatch.daemon.journal import Journal
from nemowatch.states import JobState

# Renew an anonymous token this long before it expires: a day covers a daemon asleep over a weekend night.
TOKEN_MARGIN = timedelta(days=1)
# A user-supplied token cannot be renewed by us, only checked; a check costs one credits call.
TOKEN_VALIDATE_EVERY = timedelta(hours=6)
# After a failed refresh (backend down, rate limited) try again this soon.
TOKEN_RETRY_AFTER = timedelta(minutes=5)
CREDITS_EVERY_S = 300.0
HOUSEKEEPING_EVERY = timedelta(days=1)

PAUSED_TOKEN = "paused: the token in NEMO_TOKEN was rejected — set a valid token and restart"


class Scheduler:
    """Owns the AsyncIOScheduler and the three chores; the service gives it two callbacks."""

    def __init__(
        self,
        journal: Journal,
        client: Any,  # NemoClient: token_info, refresh_token, credits
        *,
        min_credits: int,
        housekeeping: Callable[[], int],
        on_credits: Callable[[int], None],
        on_pause: Callable[[str], None],
        heartbeat: Callable[[], Awaitable[None] | None] | None = None,
        credits_every_s: float = CREDITS_EVERY_S,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.journal = journal
        self.client = client
        self.min_credits = min_credits
        self._housekeeping = housekeeping
        self.on_credits = on_credits
        self.on_pause = on_pause
        self.credits_every_s = credits_every_s
        self.credit_checks = 0  # how many credit checks have completed (once mode counts them)
        self._heartbeat = heartbeat
        # coalesce + max_instances=1: a chore that overran is run once, never twice in parallel;
        # no misfire grace limit: a chore due while the machine slept still runs on wake-up.
        self._sched = AsyncIOScheduler(
            event_loop=loop or asyncio.get_running_loop(),
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def prime(self) -> None:
        """The first token check, then the first credit check, one after the other, before any job runs.

        In sequence on purpose: two first calls at once would each fetch an anonymous token,
        and the cloud allows one per client id per week.
        """
        await _guard(self.check_token)()
        await _guard(self.check_credits)()

    def start(self) -> None:
        """Schedule every chore (the token's next renewal is scheduled by :meth:`prime`'s check)."""
        now = facts.now()
        self._sched.add_job(
            _guard(self.check_credits),
            "interval",
            seconds=self.credits_every_s,
            next_run_time=now + timedelta(seconds=self.credits_every_s),
            id="credits",
        )
        self._sched.add_job(
            _guard(self.housekeeping),
            "interval",
            seconds=HOUSEKEEPING_EVERY.total_seconds(),
            next_run_time=now + timedelta(minutes=1),
            id="housekeeping",
        )
        if self._heartbeat is not None:
            self._sched.add_job(
                _guard(self._heartbeat),
                "interval",
                seconds=facts.HEARTBEAT_S,
                next_run_time=now,
                id="heartbeat",
            )
        self._sched.start()

    def shutdown(self) -> None:
        """Stop scheduling (running chores are cancelled with the loop's other tasks)."""
        with contextlib.suppress(Exception):
            self._sched.shutdown(wait=False)

    def check_credits_soon(self) -> None:
        """Run the credit check now instead of at its next tick (a job just began waiting for credits)."""
        with contextlib.suppress(Exception):
            self._sched.modify_job("credits", next_run_time=facts.now())

    # -- token -------------------------------------------------------------------------------

    async def check_token(self) -> None:
        """Learn the token's kind and expiry, then schedule its renewal (anonymous) or validation (user's)."""
        try:
            info = await self.client.token_info()
        except TokenRejected:
            self._pause()
            return
        except NemoError as exc:
            logger.warning("could not check the token ({}); trying again in 5 minutes", exc)
            self._again(self.check_token, TOKEN_RETRY_AFTER)
            return
        self._record_token(info)
        self._plan(info)

    async def refresh_token(self) -> None:
        """Renew an anonymous token, or validate a user's; a rejected user token pauses the queue."""
        try:
            info = await self.client.refresh_token()
        except TokenRejected:
            self._pause()
            return
        except NemoError as exc:
            logger.warning("could not renew the token ({}); trying again in 5 minutes", exc)
            self._again(self.refresh_token, TOKEN_RETRY_AFTER)
            return
        logger.info("token {}", "renewed" if info.anonymous else "checked: still accepted")
        self._record_token(info)
        self._plan(info)

    def _plan(self, info: Any) -> None:
        """Schedule the next renewal: expiry minus a day for anonymous tokens, a periodic check otherwise."""
        if info.anonymous and info.expires_at is not None:
            expires = info.expires_at if info.expires_at.tzinfo else info.expires_at.replace(tzinfo=UTC)
            when = max(facts.now(), expires - TOKEN_MARGIN)
            logger.debug("anonymous token renewal scheduled for {}", facts.stamp(when))
            self._sched.add_job(
                _guard(self.refresh_token), "date", run_date=when, id="token", replace_existing=True
            )
        else:
            self._again(self.refresh_token, TOKEN_VALIDATE_EVERY)

    def _again(self, func: Callable[[], Awaitable[None]], after: timedelta) -> None:
        self._sched.add_job(
            _guard(func), "date", run_date=facts.now() + after, id="token", replace_existing=True
        )

    def _record_token(self, info: Any) -> None:
        expires = info.expires_at
        self.journal.put_meta(
            facts.TOKEN,
            {
                "source": str(getattr(info, "source", "")),
                "anonymous": bool(info.anonymous),
                "expires_at": facts.stamp(expires) if expires is not None else None,
                "checked_at": facts.stamp(),
            },
        )

    def _pause(self) -> None:
        logger.error(PAUSED_TOKEN)
        self.journal.put_meta(facts.PAUSED, PAUSED_TOKEN)
        self.on_pause(PAUSED_TOKEN)

    # -- credits -----------------------------------------------------------------------------

    async def check_credits(self) -> None:
        """Ask the backend for the balance, record it, and release waiting jobs when it suffices."""
        try:
            balance = await self.client.credits()
        except TokenRejected:
            self._pause()
            return
        except NemoError as exc:
            logger.warning("could not check the credits ({})", exc)
            return
        finally:
            self.credit_checks += 1
        self.journal.put_meta(
            facts.CREDITS,
            {
                "available": balance.available,
                "frozen": balance.frozen,
                "total": balance.total,
                "checked_at": facts.stamp(),
            },
        )
        waiting = self.journal.jobs([JobState.WAITING_CREDITS])
        if waiting:
            logger.info(
                "{} credits available ({} needed); {} job(s) waiting",
                balance.available,
                self.min_credits,
                len(waiting),
            )
        self.on_credits(balance.available)

    # -- housekeeping ------------------------------------------------------------------------

    async def housekeeping(self) -> None:
        """Remove claim folders finished jobs left behind (the intake decides what is safe to remove)."""
        removed = self._housekeeping()
        if removed:
            logger.debug("housekeeping: removed {} leftover work folder(s)", removed)


def _guard(func: Callable[[], Awaitable[None] | None]) -> Callable[[], Awaitable[None]]:
    """A chore as APScheduler runs it: a stop cancelling it is quiet, a bug is one log line, not a traceback."""

    @functools.wraps(func)
    async def run() -> None:
        try:
            outcome = func()
            if inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            return  # the daemon is stopping; the chore runs again after the restart
        except Exception as exc:
            logger.opt(exception=exc).error("{} failed; it runs again at its next time", func.__name__)

    return run
