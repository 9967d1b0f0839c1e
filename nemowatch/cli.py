"""Commands: parse, call one function of a layer below, print, exit code. No logic.

Exit status: 0 success, 1 a job (or a check) failed, 2 bad usage or bad config — each failure one
line on stderr (``nemowatch: what happened; what to do.``), never a traceback:

- ConfigError and UsageError (an unknown job, a job that did not fail, a second daemon, `serve`
  asked for an address or port it cannot have, a path `init` cannot write) → 2;
- any other UserError (a job failed, the backend is unreachable, a check failed) → 1;
- an OSError no layer turned into a sentence (a folder that vanished, a full disk) → 1, naming the
  file: the command could not do its work, but nothing about how it was asked is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nemowatch import __version__
from nemowatch.config import Config, ConfigError, default_config_path, load_config, write_example
from nemowatch.errors import UsageError, UserError
from nemowatch.fsutil import private_dir
from nemowatch.logs import escape_controls, setup_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _common(parser: argparse.ArgumentParser, *, folders: bool = True) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="config file (default: $NEMOWATCH_CONFIG, then ~/.config/nemowatch/config.toml)",
    )
    if folders:
        parser.add_argument("--backend", choices=("cloud", "local"), help="which NemoVideo backend to use")
        parser.add_argument("--inbox", type=Path, help="folder to watch for job folders")
        parser.add_argument("--outbox", type=Path, help="folder where results are written")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemowatch",
        description="Turn folders of photos, clips and a prompt.txt into finished videos through NemoVideo.",
    )
    parser.add_argument("--version", action="version", version=f"nemowatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("init", help="write a commented config file and create the folders")
    _common(p)
    p.add_argument("--state", type=Path, help="folder for the journal, work area and logs")
    p.add_argument(
        "--sample",
        action="store_true",
        help="only copy the sample job (four photos and a prompt.txt) into the inbox; writes no config",
    )
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="run the daemon in the foreground (what systemd runs)")
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("once", help="process every job now in the inbox, wait for them, then exit")
    _common(p)
    p.set_defaults(func=cmd_once)

    p = sub.add_parser("status", help="daemon health, credits, token expiry and every job with its state")
    _common(p, folders=False)
    p.add_argument("--json", action="store_true", help="machine-readable output (every job)")
    p.add_argument("--all", action="store_true", help="list every done job, not only the newest")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("credits", help="the credit balance")
    _common(p)
    p.set_defaults(func=cmd_credits)

    p = sub.add_parser("retry", help="queue a failed job again")
    _common(p, folders=False)
    p.add_argument("job", help="the job's name, as `nemowatch status` shows it")
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("serve", help="run the local NemoVideo-compatible backend on its own")
    _common(p, folders=False)
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port to listen on (default 8765)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "doctor", help="check config, folders, backend, token, ffmpeg and inotify; say what to fix"
    )
    _common(p)
    p.set_defaults(func=cmd_doctor)
    return parser


def _port(text: str) -> int:
    """argparse type for --port: a whole number 0-65535 (0: any free port), else a usage error (exit 2)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    """Load the config with this command's flags on top; loaded before any layer is imported."""
    overrides = {
        "backend.kind": getattr(args, "backend", None),
        "paths.inbox": getattr(args, "inbox", None),
        "paths.outbox": getattr(args, "outbox", None),
        **extra,
    }
    return load_config(args.config, overrides)


def cmd_init(args: argparse.Namespace) -> int:
    if args.sample:
        return _init_sample(args)
    path = (args.config or default_config_path()).expanduser()
    overrides = {
        "backend.kind": args.backend,
        "paths.inbox": args.inbox.expanduser().resolve() if args.inbox else None,
        "paths.outbox": args.outbox.expanduser().resolve() if args.outbox else None,
        "paths.state": args.state.expanduser().resolve() if args.state else None,
    }
    try:
        write_example(path, overrides)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the config file {path} ({exc.strerror}); pass another --config path."
        ) from None
    cfg = load_config(path)
    for key, folder in (("paths.inbox", cfg.inbox), ("paths.outbox", cfg.outbox), ("paths.state", cfg.state)):
        try:
            if key == "paths.state":
                private_dir(folder)  # the daemon's journal, logs and token: its user's alone
            else:
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create {folder} ({exc.strerror}); fix {key} in {path} (or its --option) and run"
                " `nemowatch run`, which creates the folders."
            ) from None
    print(f"Wrote {path}")
    print(f"Inbox:  {cfg.inbox}")
    print(f"Outbox: {cfg.outbox}")
    print(f"Start the daemon with: nemowatch run --config {path}")
    return EXIT_OK


def _init_sample(args: argparse.Namespace) -> int:
    """`nemowatch init --sample`: the sample job into the inbox of --inbox or the config."""
    cfg = _config(args)
    from nemowatch.samples import SAMPLE_NAME, write_sample

    job = write_sample(cfg.inbox)
    # The daemon that takes it may run with other flags (its own --outbox, settle time): say only what holds.
    print(f"Wrote the sample job to {job} (four photos and a prompt.txt)")
    print("A daemon watching that inbox starts it once it has been quiet for watch.settle_s;")
    print(
        f"`nemowatch once` starts it now. The video appears in the outbox as {SAMPLE_NAME}/{SAMPLE_NAME}.mp4"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from nemowatch.daemon.service import run_daemon

    return run_daemon(cfg, once=False)


def cmd_once(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from nemowatch.daemon.service import run_daemon

    return run_daemon(cfg, once=True)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from nemowatch.daemon.status import status_text

    print(status_text(cfg, as_json=args.json, show_all=args.all))
    return EXIT_OK


def cmd_credits(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from nemowatch.daemon.status import credits_text

    print(credits_text(cfg))
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from nemowatch.daemon.status import retry_job

    print(retry_job(cfg, args.job))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _config(args, **{"local.host": args.host})
    from nemowatch.local.server import serve

    try:
        return serve(cfg, port=args.port)
    except UserError as exc:
        # serve() raises only before it listens: about the address, port or access token asked for.
        raise UsageError(exc.message, exc.hint) from None


def cmd_doctor(args: argparse.Namespace) -> int:
    cfg = _config(args)
    from nemowatch.doctor import run_doctor

    return run_doctor(cfg)


def _say(sentence: str) -> None:
    """A failure's one line on stderr; names in it (a job's, a folder's) have their control
    characters escaped, as in the logs, so it stays one line and cannot drive the terminal."""
    print(f"nemowatch: {escape_controls(sentence)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nemowatch`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # One-shot commands print their answer; only warnings from the layers below belong beside it.
    # `run`, `serve` and `doctor` set up their own sinks.
    setup_logging(None, level="WARNING")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ConfigError, UsageError) as exc:
        _say(str(exc))
        return EXIT_USAGE
    except UserError as exc:
        _say(str(exc))
        return EXIT_FAILED
    except BrokenPipeError:
        # `nemowatch status | head`: the reader left; say nothing, like other command-line tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        _say(f"{exc.strerror or exc}{where}; check that path and its permissions.")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
