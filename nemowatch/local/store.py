"""The local backend's persistent state: sessions, uploads, renders, tokens and credits on disk.

Everything lives under ``<state>/local-backend``::

    sessions/<sid>.json      one session: messages received, media, draft, replies, render ids
    uploads/<sid>/<file>     the uploaded media, byte for byte
    renders/<id>.json        one render: status, progress, error, the draft it renders
    renders/<id>.mp4         the finished video
    tmp/                     what renders in progress write (part files, text images, filter
                             graphs); emptied at every start, when no render can be running
    tokens.json              sha256 of each issued token → user and expiry (never the token itself)
    claims.json              sha256 of each claim token → session and expiry
    credits.json             the credit balance and the budget it started from
    secret.key               the key that signs download links (survives restarts)

Sessions and renders unused for ``local.keep_days`` are pruned with their files
(``Store.prune``): the daemon has copied the inputs and the video to the outbox long
before, and a months-long service would otherwise fill its disk.

Every JSON file is written atomically (temp file, fsync, rename), so a crash
leaves either the old or the new version, never half of one. The store is
used from one event loop; render threads hand their updates back to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nemowatch.fsutil import atomic_write, is_temp_name

# Renders in these states still have work ahead of them (resumed at start-up).
RENDER_ACTIVE = ("pending", "processing")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers (and a crash) see either the old file or the new one."""
    atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1))


def read_json(path: Path, default: Any) -> Any:
    """The file's JSON, or ``default`` when it is missing or unreadable (a torn write never survives)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def token_digest(token: str) -> str:
    """What the store keeps instead of a token: tokens never reach a file."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_id(prefix: str, nbytes: int = 12) -> str:
    """A random, URL-safe identifier with a readable prefix."""
    return f"{prefix}{secrets.token_hex(nbytes)}"


def _from_dict(cls: type[Any], data: dict[str, Any]) -> Any:
    """Build a record dataclass from stored JSON, ignoring keys a newer/older version wrote."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class StoredMedia:
    """One uploaded file: where it is and what probing found (the fields of ``media.MediaItem``)."""

    id: str
    name: str
    file: str  # path relative to the store root
    kind: str
    size: int
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    has_audio: bool = False
    has_alpha: bool = False


@dataclass
class SessionRecord:
    """One agent session: what reached the server and what it made of it."""

    session_id: str
    task_id: str
    task_name: str
    language: str
    user: str
    created_at: float
    messages: list[str] = field(default_factory=list)  # accepted messages, in order
    refused: list[dict[str, str]] = field(default_factory=list)  # refused before any work (credits)
    replies: list[str] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)  # StoredMedia as dicts
    draft: dict[str, Any] | None = None
    revision: int = 0  # bumped each time a message changes the draft
    renders: list[str] = field(default_factory=list)


@dataclass
class RenderRecord:
    """One export: the draft it renders and how far it got."""

    id: str
    session_id: str
    draft: dict[str, Any]
    output: dict[str, Any]
    status: str = "pending"  # pending | processing | completed | failed
    progress: float = 0.0  # 0..100
    error: str | None = None
    attempts: int = 0  # how many times rendering started (restarts count)
    created_at: float = 0.0
    updated_at: float = 0.0


class Store:
    """The backend's state on disk, with the sessions and renders cached in memory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("sessions", "uploads", "renders", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.sessions: dict[str, SessionRecord] = {}
        self.renders: dict[str, RenderRecord] = {}
        for path in sorted((root / "sessions").glob("*.json")):
            data = read_json(path, None)
            if isinstance(data, dict):
                rec = _from_dict(SessionRecord, data)
                self.sessions[rec.session_id] = rec
        for path in sorted((root / "renders").glob("*.json")):
            data = read_json(path, None)
            if isinstance(data, dict):
                render = _from_dict(RenderRecord, data)
                self.renders[render.id] = render
        self._tokens: dict[str, dict[str, Any]] = read_json(root / "tokens.json", {})
        self._claims: dict[str, dict[str, Any]] = read_json(root / "claims.json", {})
        self.secret = self._load_secret()

    # -- signing key ---------------------------------------------------------------------------------

    def _load_secret(self) -> bytes:
        path = self.root / "secret.key"
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            if len(data) >= 32:
                return data
        data = secrets.token_bytes(32)
        atomic_write(path, data, mode=0o600)
        return data

    # -- tokens --------------------------------------------------------------------------------------

    def add_token(self, token: str, user: str, ttl_s: float) -> float:
        """Remember a token (by digest) for ``ttl_s`` seconds; returns its expiry (epoch seconds)."""
        now = time.time()
        # Expired tokens are dropped here so the file does not grow forever.
        self._tokens = {k: v for k, v in self._tokens.items() if v.get("expires_at", 0) > now}
        expires_at = now + ttl_s
        self._tokens[token_digest(token)] = {"user": user, "expires_at": expires_at}
        write_json_atomic(self.root / "tokens.json", self._tokens)
        return expires_at

    def token_user(self, token: str) -> str | None:
        """The user a live token belongs to; None when unknown or expired."""
        entry = self._tokens.get(token_digest(token))
        if not entry or entry.get("expires_at", 0) <= time.time():
            return None
        return str(entry.get("user"))

    def add_claim(self, claim: str, session_id: str, ttl_s: float) -> None:
        """Remember a claim token (by digest): it opens one session's page for ``ttl_s`` seconds."""
        now = time.time()
        self._claims = {k: v for k, v in self._claims.items() if v.get("expires_at", 0) > now}
        self._claims[token_digest(claim)] = {"session_id": session_id, "expires_at": now + ttl_s}
        write_json_atomic(self.root / "claims.json", self._claims)

    def claim_session(self, claim: str) -> str | None:
        """The session a live claim token opens; None when unknown or expired."""
        entry = self._claims.get(token_digest(claim))
        if not entry or entry.get("expires_at", 0) <= time.time():
            return None
        return str(entry.get("session_id"))

    # -- credits -------------------------------------------------------------------------------------

    def load_balance(self, configured: int | None) -> int | None:
        """The persisted balance; a changed configured budget starts over from the new budget."""
        data = read_json(self.root / "credits.json", {})
        if isinstance(data, dict) and "balance" in data and data.get("configured", "unset") == configured:
            balance = data["balance"]
            return balance if isinstance(balance, int) or balance is None else configured
        self.save_balance(configured, configured)
        return configured

    def save_balance(self, configured: int | None, balance: int | None) -> None:
        """Persist the balance together with the budget it derives from."""
        write_json_atomic(self.root / "credits.json", {"configured": configured, "balance": balance})

    # -- sessions ------------------------------------------------------------------------------------

    def save_session(self, rec: SessionRecord) -> None:
        """Persist one session (atomically) and keep it in the cache."""
        self.sessions[rec.session_id] = rec
        write_json_atomic(self.root / "sessions" / f"{rec.session_id}.json", asdict(rec))

    def upload_dir(self, session_id: str) -> Path:
        """Where a session's uploads are stored."""
        path = self.root / "uploads" / session_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def media_path(self, media: dict[str, Any]) -> Path:
        """The absolute path of a stored upload."""
        return self.root / str(media["file"])

    def relative(self, path: Path) -> str:
        """A path inside the store as it is written to JSON (relative, so the folder can move)."""
        return str(path.relative_to(self.root))

    # -- renders -------------------------------------------------------------------------------------

    def save_render(self, render: RenderRecord) -> None:
        """Persist one render (atomically) and keep it in the cache."""
        render.updated_at = time.time()
        self.renders[render.id] = render
        write_json_atomic(self.root / "renders" / f"{render.id}.json", asdict(render))

    def render_file(self, render_id: str) -> Path:
        """Where a finished render's MP4 lives."""
        return self.root / "renders" / f"{render_id}.mp4"

    def attempt_file(self, render_id: str) -> Path:
        """Where one attempt at a render writes its MP4 before it is moved to :meth:`render_file`.

        A name of its own per attempt: a stale thread of a stopped server cannot collide with the
        attempt that resumed it. The renderer keeps its scratch files next to it, in ``tmp/``.
        """
        return self.root / "tmp" / f"{render_id}.{new_id('', 4)}.mp4"

    def remove_leftovers(self) -> int:
        """Delete what renders and writes cut off by a kill left behind; returns how many entries.

        Only for start-up, before any render runs: ``tmp/`` then holds nothing but leftovers
        (part files, scratch folders), and a hidden temp name in ``sessions/`` or ``renders/``
        is a JSON write that never reached its rename (older versions also wrote their render
        part files into ``renders/``, under hidden names).
        """
        removed = 0
        for entry in (self.root / "tmp").iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        for folder in (self.root, self.root / "sessions", self.root / "renders"):
            for entry in folder.glob(".*"):
                if entry.is_file() and (is_temp_name(entry.name) or ".part" in entry.name):
                    entry.unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- retention -----------------------------------------------------------------------------------

    def session_last_used(self, session_id: str) -> float:
        """When a session last changed (its record is rewritten on every upload, message and render)."""
        try:
            return (self.root / "sessions" / f"{session_id}.json").stat().st_mtime
        except OSError:
            return 0.0

    def prune(self, cutoff: float, busy: Collection[str] = ()) -> tuple[int, int]:
        """Forget finished renders and sessions last used before ``cutoff`` (epoch seconds), with
        their files; returns (sessions, renders) removed.

        A session stays while it is ``busy`` (a message running) or has a render left. Files go
        before the record naming them: a crash midway leaves a record with some files gone, which
        the next prune removes, never files that nothing points at.
        """
        renders = 0
        for render in list(self.renders.values()):
            if render.status in RENDER_ACTIVE or render.updated_at >= cutoff:
                continue
            self.render_file(render.id).unlink(missing_ok=True)
            (self.root / "renders" / f"{render.id}.json").unlink(missing_ok=True)
            del self.renders[render.id]
            renders += 1
        rendered = {render.session_id for render in self.renders.values()}
        sessions = 0
        for session_id in list(self.sessions):
            if session_id in busy or session_id in rendered or self.session_last_used(session_id) >= cutoff:
                continue
            shutil.rmtree(self.root / "uploads" / session_id, ignore_errors=True)
            (self.root / "sessions" / f"{session_id}.json").unlink(missing_ok=True)
            del self.sessions[session_id]
            sessions += 1
        return sessions, renders
