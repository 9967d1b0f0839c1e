"""The daemon's one seam to "a NemoVideo backend": the cloud, or the local backend started in-process."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from loguru import logger

from nemowatch.api.client import NemoClient
from nemowatch.api.settings import ClientSettings
from nemowatch.config import Config
from nemowatch.fsutil import private_dir

# The local backend issues its own anonymous tokens: they are cached apart from the cloud's,
# so neither token is ever sent to the other backend.
LOCAL_CLIENT_DIR = "local-client"


def local_client_settings(cfg: Config, url: str) -> ClientSettings:
    """Client settings pointed at a local backend at ``url`` (never carrying the cloud's token)."""
    base = ClientSettings.from_config(cfg)
    folder = cfg.state / LOCAL_CLIENT_DIR
    return dataclasses.replace(
        base,
        base_url=url,
        web_url=url,
        state_dir=folder,
        user_token=cfg.local_access_token or None,
        token_file=None,
        credentials_dir=None,
        # The local backend's anonymous account is its own, not the NemoVideo skill's.
        client_id_file=folder / "client_id",
    )


@asynccontextmanager
async def open_backend(cfg: Config) -> AsyncIterator[NemoClient]:
    """A client for the configured backend; ``local`` starts the server first and stops it after."""
    if cfg.backend != "local":
        async with NemoClient(ClientSettings.from_config(cfg)) as client:
            yield client
        return

    from nemowatch.local.server import LocalSettings, start_server

    # port 0 (the default) lets the kernel pick a free port, so two daemons never collide.
    settings = LocalSettings.from_config(cfg, port=cfg.local_port)
    # Its uploads and renders, and its client's token, are copies of the users' jobs: made private
    # (0700) before anything is written there, whatever modes the server gives its own files.
    for folder in (cfg.state, settings.root, cfg.state / LOCAL_CLIENT_DIR):
        private_dir(folder)
    server = await asyncio.to_thread(start_server, settings)
    logger.info("local backend listening on {}", server.url)
    try:
        async with NemoClient(local_client_settings(cfg, server.url)) as client:
            yield client
    finally:
        await asyncio.to_thread(server.stop)
