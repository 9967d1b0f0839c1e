"""The shipped config profiles load cleanly and carry the settings their sync setups need."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemowatch.config import Config, load_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
PROFILES = ("dropbox.toml", "syncthing.toml", "network-share.toml", "system.toml")

SYNCTHING_BATCH_S = 10  # Syncthing's fsWatcherDelayS: changes are announced in 10 s batches


def profile(name: str) -> Config:
    return load_config(CONFIG_DIR / name, env={})


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_and_keeps_outbox_and_state_out_of_the_inbox(name: str) -> None:
    cfg = profile(name)
    assert cfg.source == CONFIG_DIR / name
    for folder in (cfg.outbox, cfg.state):
        assert not folder.is_relative_to(cfg.inbox), folder
    # The journal is SQLite: it must not sit in a synced or network folder.
    assert not cfg.state.is_relative_to(cfg.inbox.parent)


def test_dropbox_profile_waits_longer_than_the_default() -> None:
    cfg = profile("dropbox.toml")
    assert cfg.inbox == Path("~/Dropbox/Nemowatch/inbox").expanduser()
    assert cfg.settle_s == 45 and not cfg.polling


def test_syncthing_profile_outlasts_several_syncthing_batches() -> None:
    cfg = profile("syncthing.toml")
    assert cfg.settle_s >= 5 * SYNCTHING_BATCH_S and not cfg.polling


def test_network_share_profile_polls_rescans_often_and_settles_long() -> None:
    cfg = profile("network-share.toml")
    default = load_config(None, env={})
    assert cfg.polling
    assert cfg.poll_interval_s < default.poll_interval_s
    assert cfg.rescan_s < default.rescan_s
    assert cfg.settle_s > default.settle_s
