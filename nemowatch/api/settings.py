"""ClientSettings: everything NemoClient needs, as one frozen value (tests build it directly)."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nemowatch import __version__

if TYPE_CHECKING:
    from nemowatch.config import Config

# The file the official NemoVideo skill uses, so a user's anonymous account is shared with it.
CLIENT_ID_PATH = Path(".config") / "nemovideo" / "client_id"


def _default_client_id_file() -> Path:
    return Path.home() / CLIENT_ID_PATH


def _default_platform() -> str:
    return f"nemowatch-{platform.system().lower()}"


@dataclass(frozen=True)
class ClientSettings:
    """Where the backend is, where tokens come from, attribution headers and time limits."""

    base_url: str
    web_url: str
    state_dir: Path  # token cache: state_dir/token.json (0600)
    user_token: str | None = field(default=None, repr=False)  # $NEMO_TOKEN
    token_file: Path | None = None  # api.token_file
    credentials_dir: Path | None = None  # $CREDENTIALS_DIRECTORY (file nemo-token)
    client_id: str | None = None  # $NEMO_CLIENT_ID / api.client_id
    client_id_file: Path = field(default_factory=_default_client_id_file)
    language: str = "en"
    skill_source: str = "nemowatch"
    skill_version: str = __version__
    skill_platform: str = field(default_factory=_default_platform)
    sse_timeout_s: float = 900
    sse_idle_timeout_s: float = 600
    still_working_every_s: float = 120
    retry_base_s: float = 0.5
    retry_cap_s: float = 8
    retry_attempts: int = 5
    rate_limit_wait_s: float = 30  # 429 on the token call; tests set it small
    request_timeout_s: float = 60  # one ordinary HTTP call (not a stream, not an upload body)

    @classmethod
    def from_config(cls, cfg: Config, env: Mapping[str, str] | None = None) -> ClientSettings:
        """Settings for the cloud API from the loaded config and the environment (systemd credentials)."""
        env = os.environ if env is None else env
        home = env.get("HOME")
        credentials = env.get("CREDENTIALS_DIRECTORY")
        return cls(
            base_url=cfg.base_url,
            web_url=cfg.web_url,
            state_dir=cfg.state,
            user_token=cfg.token or (env.get("NEMO_TOKEN") or "").strip() or None,
            token_file=Path(cfg.token_file).expanduser() if cfg.token_file.strip() else None,
            credentials_dir=Path(credentials) if credentials else None,
            client_id=cfg.client_id.strip() or None,
            client_id_file=Path(home) / CLIENT_ID_PATH if home else _default_client_id_file(),
            language=cfg.language,
            skill_source=cfg.skill_source,
            skill_version=cfg.skill_version or __version__,
            skill_platform=cfg.skill_platform or _default_platform(),
            sse_timeout_s=cfg.sse_timeout_s,
            sse_idle_timeout_s=cfg.sse_idle_timeout_s,
        )
