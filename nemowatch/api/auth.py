"""Where the bearer token comes from: user sources, the client id, anonymous tokens and their cache.

Order: ``$NEMO_TOKEN`` (settings.user_token), the systemd credential
``$CREDENTIALS_DIRECTORY/nemo-token``, ``api.token_file``, then an anonymous
token requested with the client id. Anonymous tokens are cached in
``state_dir/token.json`` (mode 0600) and reused until one day before expiry.
Every token value is registered with :func:`nemowatch.logs.register_secret`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from loguru import logger

from nemowatch.api.errors import (
    BackendUnreachable,
    ErrorContext,
    MissingClientId,
    NemoError,
    RateLimited,
    TokenRejected,
    error_for,
    parse_envelope,
)
from nemowatch.api.retry import RetryPolicy, never_sent
from nemowatch.api.settings import ClientSettings
from nemowatch.errors import UserError
from nemowatch.fsutil import atomic_write
from nemowatch.logs import register_secret

ANONYMOUS_TTL = timedelta(days=7)
# Refresh a day early so a token never expires in the middle of a job.
REFRESH_MARGIN = timedelta(days=1)
TOKEN_PATH = "/api/auth/anonymous-token"
CREDENTIAL_NAME = "nemo-token"

SOURCE_ENV = "NEMO_TOKEN"
SOURCE_CREDENTIAL = "systemd credential nemo-token"
SOURCE_ANONYMOUS = "anonymous token"


@dataclass(frozen=True)
class TokenInfo:
    """What ``nemowatch status`` and ``doctor`` show about the token (never its value)."""

    source: str
    expires_at: datetime | None
    anonymous: bool


@dataclass(frozen=True)
class Token:
    """A bearer token and where it came from; ``repr`` hides the value."""

    value: str = field(repr=False)
    info: TokenInfo
    obtained_at: datetime | None = None

    def near_expiry(self, now: datetime | None = None) -> bool:
        """True when an anonymous token is within a day of expiring (user tokens never are).

        A token issued for less than a week gets a proportional margin (a seventh of its
        life), so a short-lived token is not replaced on every call.
        """
        expires = self.info.expires_at
        if expires is None:
            return False
        margin = REFRESH_MARGIN
        if self.obtained_at is not None and expires > self.obtained_at:
            margin = min(margin, (expires - self.obtained_at) / 7)
        return expires - (now or datetime.now(UTC)) <= margin

    def expired(self, now: datetime | None = None) -> bool:
        return self.info.expires_at is not None and self.info.expires_at <= (now or datetime.now(UTC))


def rejected_error(token: Token) -> TokenRejected:
    """The one-sentence report for a token the backend refuses, naming its source and the fix."""
    source = token.info.source
    if source == SOURCE_ENV:
        return TokenRejected(
            "the token in NEMO_TOKEN was rejected by the backend (invalid or expired)",
            "set NEMO_TOKEN to a valid token, or unset it to use a free anonymous token",
        )
    if source == SOURCE_CREDENTIAL:
        return TokenRejected(
            "the token in the systemd credential nemo-token was rejected by the backend (invalid or expired)",
            "replace the credential (LoadCredential=nemo-token:…) with a valid token, or remove it",
        )
    if source.startswith("token file "):
        path = source.removeprefix("token file ")
        return TokenRejected(
            f"the token in {path} (api.token_file) was rejected by the backend (invalid or expired)",
            f"put a valid token in {path}, or clear api.token_file to use a free anonymous token",
        )
    return TokenRejected(
        "the backend rejected a freshly issued anonymous token",
        "set NEMO_TOKEN to a token from your NemoVideo account, or try again later",
    )


def _read_secret_file(path: Path, what: str) -> str | None:
    """The stripped content of a token file; a file that exists but cannot be read is a user error."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise UserError(f"{what} {path} cannot be read ({reason})", "check its permissions") from None
    return value or None


def user_token(settings: ClientSettings) -> Token | None:
    """The first user-supplied token: NEMO_TOKEN, the systemd credential, then api.token_file."""
    value: str | None = (settings.user_token or "").strip()
    if value:
        register_secret(value)
        return Token(value, TokenInfo(SOURCE_ENV, None, anonymous=False))
    if settings.credentials_dir is not None:
        value = _read_secret_file(settings.credentials_dir / CREDENTIAL_NAME, "the systemd credential")
        if value:
            register_secret(value)
            return Token(value, TokenInfo(SOURCE_CREDENTIAL, None, anonymous=False))
    if settings.token_file is not None:
        value = _read_secret_file(settings.token_file, "the token file")
        if value is None:
            raise UserError(
                f"the token file {settings.token_file} (api.token_file) does not exist or is empty",
                "put your token in it, or clear api.token_file to use a free anonymous token",
            )
        register_secret(value)
        return Token(value, TokenInfo(f"token file {settings.token_file}", None, anonymous=False))
    return None


def new_client_id(path: Path) -> str:
    """A fresh UUID4, persisted to ``path`` holding only the UUID (as the official skill does)."""
    client_id = str(uuid.uuid4())
    atomic_write(path, client_id + "\n", durable=False)
    logger.info("created a new NemoVideo client id in {}", path)
    return client_id


def load_client_id(settings: ClientSettings) -> str:
    """settings.client_id, else the client-id file, created with a new UUID when absent or empty."""
    if settings.client_id:
        return settings.client_id.strip()
    try:
        existing = settings.client_id_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as exc:
        raise UserError(
            f"the client id file {settings.client_id_file} cannot be read ({exc.strerror})",
            "fix its permissions or set NEMO_CLIENT_ID to a UUID",
        ) from None
    return existing or new_client_id(settings.client_id_file)


def _parse_time(value: Any) -> datetime | None:
    """An expiry given as epoch seconds/milliseconds or an ISO 8601 string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def token_expiry(data: Mapping[str, Any], now: datetime) -> datetime:
    """When an anonymous token expires: the response's ``expires_at``/``expires_in``, else 7 days."""
    for key in ("expires_at", "expiresAt", "expire_at", "expired_at"):
        when = _parse_time(data.get(key))
        if when is not None:
            return when
    for key in ("expires_in", "expiresIn"):
        seconds = data.get(key)
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
            return now + timedelta(seconds=seconds)
    return now + ANONYMOUS_TTL


class TokenCache:
    """``state_dir/token.json``: the anonymous token, its expiry, and the backend and client it belongs to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, base_url: str, client_id: str) -> Token | None:
        """The cached token if it was issued by this backend for this client id."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return None
        if data.get("base_url") != base_url or data.get("client_id") != client_id:
            return None
        expires_at = _parse_time(data.get("expires_at"))
        if expires_at is None:
            return None
        register_secret(data["token"])
        info = TokenInfo(SOURCE_ANONYMOUS, expires_at, anonymous=True)
        return Token(data["token"], info, obtained_at=_parse_time(data.get("obtained_at")))

    def save(self, token: Token, base_url: str, client_id: str) -> None:
        expires = token.info.expires_at.isoformat() if token.info.expires_at else None
        record = {
            "token": token.value,
            "expires_at": expires,
            "client_id": client_id,
            "base_url": base_url,
            "obtained_at": (token.obtained_at or datetime.now(UTC)).isoformat(),
        }
        atomic_write(self.path, json.dumps(record, indent=2) + "\n", mode=0o600, durable=False)


class Authenticator:
    """Hands out the current token; renews anonymous tokens after 1001 and near expiry, one at a time."""

    def __init__(
        self,
        settings: ClientSettings,
        http: httpx.AsyncClient,
        headers: Mapping[str, str],
        policy: RetryPolicy,
    ) -> None:
        self._settings = settings
        self._http = http
        self._headers = dict(headers)
        self._policy = policy
        self._cache = TokenCache(settings.state_dir / "token.json")
        self._token: Token | None = None
        self._client_id: str | None = None
        # One lock: concurrent jobs hitting 1001 together must cause one token request, not several
        # (anonymous tokens are rate-limited to one per client per 7 days).
        self._lock = asyncio.Lock()

    @property
    def client_id(self) -> str | None:
        """The client id used for anonymous tokens, once one was needed."""
        return self._client_id

    async def current(self) -> Token:
        """The token to send now; fetched or refreshed as needed."""
        async with self._lock:
            token = self._token
            if token is not None and not (token.info.anonymous and token.near_expiry()):
                return token
            self._token = await self._obtain(stale=token)
            return self._token

    async def renew(self, rejected: Token) -> Token:
        """After code 1001: a new anonymous token (same client id); a user's token is reported instead."""
        async with self._lock:
            if self._token is not None and self._token.value != rejected.value:
                return self._token  # another call already renewed it
            if not rejected.info.anonymous:
                raise rejected_error(rejected)
            logger.info("the anonymous token was rejected; requesting a new one")
            self._token = await self._request_anonymous(self._ensure_client_id())
            return self._token

    async def refresh(self) -> Token:
        """Re-read the user sources; anonymous: request a new token now."""
        async with self._lock:
            token = user_token(self._settings)
            if token is None:
                stale = self._token if self._token and self._token.info.anonymous else None
                token = await self._request_anonymous(self._ensure_client_id(), fallback=stale)
            self._token = token
            return token

    def _ensure_client_id(self) -> str:
        if self._client_id is None:
            self._client_id = load_client_id(self._settings)
        return self._client_id

    async def _obtain(self, stale: Token | None) -> Token:
        token = user_token(self._settings)
        if token is not None:
            return token
        client_id = self._ensure_client_id()
        cached = self._cache.load(self._settings.base_url, client_id)
        if cached is not None and not cached.near_expiry():
            logger.debug("using the cached anonymous token (expires {})", cached.info.expires_at)
            return cached
        fallback = cached if cached is not None else stale
        return await self._request_anonymous(client_id, fallback=fallback)

    async def _request_anonymous(self, client_id: str, fallback: Token | None = None) -> Token:
        """POST the token call; a still-valid ``fallback`` is kept if the backend rate-limits us."""
        try:
            return await self._token_call(client_id)
        except RateLimited:
            if fallback is not None and not fallback.expired():
                logger.warning(
                    "could not renew the anonymous token yet (rate limited); keeping the current one"
                )
                return fallback
            raise

    async def _token_call(self, client_id: str) -> Token:
        url = self._settings.base_url.rstrip("/") + TOKEN_PATH
        ctx = ErrorContext("requesting an anonymous token", self._settings.web_url, token_call=True)
        regenerated = rate_waited = False
        attempt = 0
        while True:
            headers = {**self._headers, "X-Client-Id": client_id}
            try:
                response = await self._http.post(url, headers=headers)
            except httpx.TransportError as exc:
                # Not idempotent (rate-limited per client): only retried when it never left the machine.
                if never_sent(exc) and attempt + 1 < self._policy.attempts:
                    await asyncio.sleep(self._policy.delay(attempt))
                    attempt += 1
                    continue
                raise unreachable(self._settings.base_url, exc) from None
            env = parse_envelope(response.status_code, response.content)
            if env.ok:
                break
            error = error_for(env, ctx)
            if isinstance(error, MissingClientId) and not regenerated:
                client_id = self._replace_client_id()
                regenerated = True
                continue
            if isinstance(error, RateLimited) and not rate_waited:
                logger.warning(
                    "the backend rate-limits anonymous tokens; retrying once in {:g} s",
                    self._settings.rate_limit_wait_s,
                )
                await asyncio.sleep(self._settings.rate_limit_wait_s)
                rate_waited = True
                continue
            raise error
        data = env.data if isinstance(env.data, dict) else {}
        value = data.get("token")
        if not isinstance(value, str) or not value.strip():
            raise NemoError(
                "the backend answered the anonymous-token request without a token",
                "check api.base_url points at a NemoVideo backend",
            )
        value = value.strip()
        register_secret(value)
        now = datetime.now(UTC)
        info = TokenInfo(SOURCE_ANONYMOUS, token_expiry(data, now), anonymous=True)
        token = Token(value, info, obtained_at=now)
        self._cache.save(token, self._settings.base_url, client_id)
        logger.info(
            "obtained an anonymous NemoVideo token (valid until {:%Y-%m-%d %H:%M} UTC)", token.info.expires_at
        )
        return token

    def _replace_client_id(self) -> str:
        """HTTP 400 on the token call: a new UUID (persisted when the id came from the file)."""
        if self._settings.client_id:
            self._client_id = str(uuid.uuid4())
        else:
            self._client_id = new_client_id(self._settings.client_id_file)
        logger.warning("the backend refused the client id; retrying once with a new one")
        return self._client_id


def unreachable(base_url: str, exc: Exception) -> BackendUnreachable:
    """The report for a backend that cannot be reached (after retries)."""
    host = httpx.URL(base_url).host or base_url
    reason = type(exc).__name__
    if str(exc):
        reason += f": {str(exc)[:120]}"
    return BackendUnreachable(
        f"cannot reach the NemoVideo backend at {host} ({reason})",
        "check the network connection and api.base_url (or NEMO_API_URL)",
    )
