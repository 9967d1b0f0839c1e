"""How the local backend runs: ``LocalSettings`` (config values, tuning and testing aids)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nemowatch.config import Config

DEFAULT_PORT = 8765
# What "unlimited" credits look like to a client that expects a number (shown as "unlimited").
UNLIMITED_CREDITS = 999_999


@dataclass(frozen=True)
class LocalSettings:
    """How the local backend runs; the fields after ``heartbeat_s`` are testing aids and tuning."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    access_token: str | None = None
    credits: int | None = None  # None: unlimited
    keep_days: float | None = 7.0  # None: keep sessions and renders forever
    token_ttl_s: float = 7 * 86400
    heartbeat_s: float = 5.0
    render_slots: int = 2  # renders at once; ffmpeg is multi-threaded, two saturate a small machine
    # -- testing aids: reproducible failures for the daemon's tests; the config file never sets them --
    fail_renders: int = 0  # the next N renders fail
    sse_delay_s: float = 0.0  # each tool step of a message takes this long (heartbeats flow meanwhile)
    reply_silently: bool = False  # streams end without a text reply (the cloud's ~30% silent edits)
    drop_streams: int = 0  # the next N streams are cut after the first tool call; the run still completes

    @classmethod
    def from_config(cls, cfg: Config, port: int | None = None) -> LocalSettings:
        """Settings from the ``[local]`` config table (``port`` from a flag wins)."""
        return cls(
            state_dir=cfg.state,
            host=cfg.local_host,
            port=port if port is not None else (cfg.local_port or DEFAULT_PORT),
            access_token=cfg.local_access_token or None,
            credits=None if cfg.local_credits < 0 else cfg.local_credits,
            keep_days=cfg.local_keep_days or None,
        )

    @property
    def root(self) -> Path:
        """Where the backend keeps everything."""
        return self.state_dir / "local-backend"
