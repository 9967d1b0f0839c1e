"""The typed config: load (tomllib), write (tomli-w), environment overrides, validation.

One table, ``SCHEMA``, is the single source of truth: it gives every key its
type, default and comment, drives validation, the defaults, and the commented
example that ``nemowatch init`` writes (``config/nemowatch.example.toml`` is
that same text). Precedence: command-line flag > environment > file > default.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from nemowatch import __version__
from nemowatch.fsutil import atomic_write

DEFAULT_CONFIG_PATH = "~/.config/nemowatch/config.toml"


class ConfigError(Exception):
    """A config problem a user can fix; ``str()`` is one sentence naming the key, the file and the fix."""


@dataclass(frozen=True)
class Key:
    """One config key: its section, name, type, default and the comment the example carries."""

    section: str
    name: str
    kind: type
    default: Any
    comment: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    env: str | None = None

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


SCHEMA: tuple[Key, ...] = (
    Key("paths", "inbox", Path, "~/Nemowatch/inbox", "drop job folders here"),
    Key("paths", "outbox", Path, "~/Nemowatch/outbox", "finished videos, logs and results appear here"),
    Key("paths", "state", Path, "~/.local/state/nemowatch", "journal, work area, token cache, daemon log"),
    Key(
        "backend",
        "kind",
        str,
        "cloud",
        '"cloud" (NemoVideo) or "local" (ffmpeg on this machine)',
        choices=("cloud", "local"),
        env="NEMOWATCH_BACKEND",
    ),
    Key(
        "api", "base_url", str, "https://mega-api-prod.nemovideo.ai", "the NemoVideo API", env="NEMO_API_URL"
    ),
    Key("api", "web_url", str, "https://nemovideo.com", "the web app, for project links", env="NEMO_WEB_URL"),
    Key("api", "token_file", str, "", "a file holding your token; the NEMO_TOKEN variable wins"),
    Key(
        "api",
        "client_id",
        str,
        "",
        "client id for anonymous tokens; empty: ~/.config/nemovideo/client_id",
        env="NEMO_CLIENT_ID",
    ),
    Key("api", "language", str, "en", "language of the backend's replies"),
    Key("api", "render_poll_interval_s", float, 30, "seconds between render status checks", minimum=0.05),
    Key("api", "sse_timeout_s", float, 900, "longest a single message may take", minimum=1),
    Key(
        "api",
        "sse_idle_timeout_s",
        float,
        600,
        "heartbeats alone for this long count as a timeout",
        minimum=1,
    ),
    Key("api", "skill_source", str, "nemowatch", "X-Skill-Source attribution header"),
    Key("api", "skill_version", str, "", "X-Skill-Version attribution header; empty: nemowatch's version"),
    Key("api", "skill_platform", str, "", "X-Skill-Platform attribution header; empty: nemowatch-<os>"),
    Key("watch", "settle_s", float, 30, "a job starts once its folder has been quiet this long", minimum=0),
    Key("watch", "polling", bool, False, "true for network or bind-mounted folders where inotify is blind"),
    Key("watch", "poll_interval_s", float, 30, "the polling observer's period", minimum=0.05),
    Key(
        "watch",
        "rescan_s",
        float,
        300,
        "a full rescan of the inbox, a safety net for missed events",
        minimum=0.1,
    ),
    Key("jobs", "max_concurrent", int, 2, "jobs worked on at once", minimum=1),
    Key(
        "jobs", "min_credits", int, 100, "below this, new jobs wait for credits instead of failing", minimum=0
    ),
    Key(
        "jobs",
        "patience_h",
        float,
        24,
        "how long a job waits out a passing fault (an unreachable backend, a full or read-only outbox)"
        " before it fails",
        minimum=0,
    ),
    Key(
        "jobs",
        "retry_every_s",
        float,
        60,
        "how often a waiting job's fault is tried again (after an hour of it, backing off to 5 minutes)",
        minimum=0.1,
    ),
    Key(
        "jobs",
        "once_patience_min",
        float,
        10,
        "`nemowatch once`: how long it waits out a passing fault before it exits 1, the job kept",
        minimum=0,
    ),
    Key("local", "host", str, "127.0.0.1", "where the local backend listens"),
    Key("local", "port", int, 0, "0: any free port, when the daemon starts it in-process", minimum=0),
    Key("local", "access_token", str, "", "required when host is not a loopback address"),
    Key("local", "credits", int, -1, "credit budget of the local backend; -1: unlimited", minimum=-1),
    Key(
        "local",
        "keep_days",
        float,
        7,
        "days the local backend keeps a session's uploads and renders after their last use; 0: forever",
        minimum=0,
    ),
)

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(key.section for key in SCHEMA))
_BY_DOTTED = {key.dotted: key for key in SCHEMA}


@dataclass(frozen=True)
class Config:
    """Every setting nemowatch reads, already validated and with ``~`` expanded."""

    inbox: Path
    outbox: Path
    state: Path
    backend: str
    base_url: str
    web_url: str
    token_file: str
    client_id: str
    language: str
    render_poll_interval_s: float
    sse_timeout_s: float
    sse_idle_timeout_s: float
    skill_source: str
    skill_version: str
    skill_platform: str
    settle_s: float
    polling: bool
    poll_interval_s: float
    rescan_s: float
    max_concurrent: int
    min_credits: int
    patience_h: float
    retry_every_s: float
    once_patience_min: float
    local_host: str
    local_port: int
    local_access_token: str = field(repr=False)
    local_credits: int
    local_keep_days: float
    # The NEMO_TOKEN variable. Never printed: repr=False keeps it out of tracebacks and logs.
    token: str | None = field(default=None, repr=False)
    source: Path | None = None

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some fields changed (used by flags after loading)."""
        return replace(self, **changes)


def _field_name(key: Key) -> str:
    """The Config attribute a key fills (``local.port`` → ``local_port``, ``backend.kind`` → ``backend``)."""
    if key.section == "backend":
        return "backend"
    return f"local_{key.name}" if key.section == "local" else key.name


assert {_field_name(key) for key in SCHEMA} <= {f.name for f in fields(Config)}


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$NEMOWATCH_CONFIG``, then ``~/.config/nemowatch/config.toml``."""
    env = os.environ if env is None else env
    return Path(env.get("NEMOWATCH_CONFIG") or DEFAULT_CONFIG_PATH).expanduser()


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def _coerce(key: Key, value: Any, where: str) -> Any:
    """Check one value against its key; raise a ConfigError saying what to write instead."""
    default = tomli_w.dumps({key.name: key.default}).strip()
    fix = f"write it like `{default}` or remove the line to use the default"
    if key.kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            value = value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: `{key.dotted}` must be true or false, not {_show(value)}; {fix}.")
        return value
    if key.kind in (int, float):
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = key.kind(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if key.kind is int and ok and float(value) != int(value):
            ok = False
        if not ok:
            noun = "a whole number" if key.kind is int else "a number"
            raise ConfigError(f"{where}: `{key.dotted}` must be {noun}, not {_show(value)}; {fix}.")
        if key.minimum is not None and value < key.minimum:
            raise ConfigError(
                f"{where}: `{key.dotted}` must be at least {key.minimum:g}, not {value}; {fix}."
            )
        return key.kind(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: `{key.dotted}` must be a quoted string, not {_show(value)}; {fix}.")
    if key.choices and value not in key.choices:
        allowed = " or ".join(f'"{choice}"' for choice in key.choices)
        raise ConfigError(f"{where}: `{key.dotted}` must be {allowed}, not {_show(value)}; {fix}.")
    if key.kind is Path:
        if not value.strip():
            raise ConfigError(f"{where}: `{key.dotted}` must not be empty; {fix}.")
        return Path(value).expanduser()
    return value


def _read_file(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.exists():
        if explicit:
            raise ConfigError(
                f"config file {path} does not exist; create it with `nemowatch init --config {path}`"
                " or point --config at an existing file."
            )
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix that line.") from None
    except OSError as exc:
        raise ConfigError(
            f"config file {path} cannot be read ({exc.strerror}); check its permissions."
        ) from None


def _from_file(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Flatten and validate the file's tables into ``{dotted key: value}``."""
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SECTIONS:
            known = ", ".join(f"[{name}]" for name in SECTIONS)
            raise ConfigError(f"{path}: unknown section [{section}]; the sections are {known}.")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: `{section}` must be a table like [{section}]; fix that line.")
        for name, value in table.items():
            key = _BY_DOTTED.get(f"{section}.{name}")
            if key is None:
                known = ", ".join(k.name for k in SCHEMA if k.section == section)
                raise ConfigError(f"{path}: unknown key `{section}.{name}`; [{section}] takes {known}.")
            values[key.dotted] = _coerce(key, value, str(path))
    return values


def load_config(
    path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load the config: defaults, then the file, then the environment, then ``overrides``.

    ``overrides`` maps dotted keys (``"paths.inbox"``, ``"backend.kind"``) to flag values;
    ``None`` values are ignored so argparse results can be passed straight in.
    """
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get("NEMOWATCH_CONFIG"))
    config_path = Path(path).expanduser() if path is not None else default_config_path(env)
    values = {key.dotted: _coerce(key, key.default, "default") for key in SCHEMA}
    values.update(_from_file(_read_file(config_path, explicit), config_path))
    for key in SCHEMA:
        if key.env and env.get(key.env):
            values[key.dotted] = _coerce(key, env[key.env], f"environment variable {key.env}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        named = _BY_DOTTED.get(dotted)
        if named is None:
            raise ValueError(f"unknown config key {dotted}")
        values[dotted] = _coerce(named, str(value) if isinstance(value, Path) else value, "command line")
    kwargs = {_field_name(key): values[key.dotted] for key in SCHEMA}
    # Attribution defaults follow the installed package, so they are filled here, not written to files.
    kwargs["skill_version"] = kwargs["skill_version"] or __version__
    kwargs["skill_platform"] = kwargs["skill_platform"] or f"nemowatch-{platform.system().lower()}"
    token = (env.get("NEMO_TOKEN") or "").strip() or None
    return Config(**kwargs, token=token, source=config_path if config_path.exists() else None)


def example_text(overrides: Mapping[str, Any] | None = None) -> str:
    """The complete, commented config that ``nemowatch init`` writes.

    Values are encoded by tomli-w, so the file always parses back to the same settings.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    lines = [
        "# nemowatch configuration. Every key is optional: delete a line to use its default.",
        "# Precedence: command-line flag > environment variable > this file > default.",
    ]
    for section in SECTIONS:
        lines.append("")
        lines.append(f"[{section}]")
        for key in (k for k in SCHEMA if k.section == section):
            value = overrides.get(key.dotted, key.default)
            value = str(value) if isinstance(value, Path) else value
            encoded = tomli_w.dumps({key.name: value}).strip()
            note = f"  # {key.comment}" + (f" (env {key.env})" if key.env else "")
            lines.append(f"{encoded}{note}")
    return "\n".join(lines) + "\n"


def write_example(path: Path, overrides: Mapping[str, Any] | None = None) -> None:
    """Write the commented config to ``path`` (parents created); refuses to overwrite."""
    if path.exists():
        raise ConfigError(f"{path} already exists; edit it, or pass another --config path.")
    atomic_write(path, example_text(overrides), durable=False)
