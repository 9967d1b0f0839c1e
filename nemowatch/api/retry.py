"""The retry policy: exponential backoff with jitter, Retry-After, and "was the request ever sent?"."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# A server asking for more than a minute is not waited for inside one call; the caller decides.
RETRY_AFTER_CAP_S = 60.0
JITTER = 0.25

# These fail before a single byte of the request left the machine, so retrying cannot duplicate work.
_NEVER_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff ``base_s`` doubling up to ``cap_s``, ±25 % jitter, at most ``attempts`` tries in all."""

    base_s: float = 0.5
    cap_s: float = 8.0
    attempts: int = 5

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        backoff = min(self.cap_s, self.base_s * 2**attempt)
        backoff *= random.uniform(1 - JITTER, 1 + JITTER)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, RETRY_AFTER_CAP_S))
        return backoff


def never_sent(exc: BaseException) -> bool:
    """True when the request certainly did not reach the server (no connection was made)."""
    return isinstance(exc, _NEVER_SENT)


def retry_after_seconds(value: str | None) -> float | None:
    """The Retry-After header as seconds (it may be a number or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
