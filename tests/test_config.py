"""The config: defaults, precedence, clear errors, and the example nemowatch init writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomli_w

from nemowatch.cli import main
from nemowatch.config import SCHEMA, ConfigError, example_text, load_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_match_the_contract(tmp_path: Path) -> None:
    cfg = load_config(None, env={})
    assert cfg.backend == "cloud"
    assert cfg.base_url == "https://mega-api-prod.nemovideo.ai"
    assert cfg.settle_s == 30 and cfg.rescan_s == 300 and cfg.max_concurrent == 2 and cfg.min_credits == 100
    assert cfg.inbox == Path("~/Nemowatch/inbox").expanduser()


def test_flag_beats_environment_beats_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[backend]\nkind = "local"\n[api]\nbase_url = "http://file"\n[watch]\nsettle_s = 5\n')
    env = {"NEMO_API_URL": "http://env", "NEMOWATCH_BACKEND": "cloud"}
    cfg = load_config(path, {"backend.kind": "local"}, env=env)
    assert cfg.backend == "local"  # flag
    assert cfg.base_url == "http://env"  # environment over file
    assert cfg.settle_s == 5  # file over default


def test_token_comes_from_the_environment_and_is_not_in_repr(tmp_path: Path) -> None:
    cfg = load_config(None, env={"NEMO_TOKEN": "nmv_usr_secret123"})
    assert cfg.token == "nmv_usr_secret123"
    assert "secret123" not in repr(cfg)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[watch]\nsettle_s = "soon"\n', ["watch.settle_s", "a number", "settle_s = 30"]),
        ('[backend]\nkind = "gpu"\n', ["backend.kind", '"cloud" or "local"']),
        ("[jobs]\nmax_concurent = 3\n", ["jobs.max_concurent", "max_concurrent"]),
        ("[wacth]\n", ["[wacth]", "[watch]"]),
        ("[jobs]\nmax_concurrent = 0\n", ["jobs.max_concurrent", "at least 1"]),
        ("[paths\ninbox = 1\n", ["not valid TOML"]),
    ],
)
def test_a_wrong_key_type_or_value_names_key_file_and_fix(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_bad_config_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[watch]\npolling = "maybe"\n')
    assert main(["credits", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "watch.polling" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_explicit_config_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nemowatch init" in capsys.readouterr().err


def test_init_writes_a_commented_config_that_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "config.toml"
    code = main(
        [
            "init",
            "--config",
            str(path),
            "--inbox",
            str(tmp_path / "in"),
            "--outbox",
            str(tmp_path / "out"),
            "--state",
            str(tmp_path / "st"),
            "--backend",
            "local",
        ]
    )
    assert code == 0
    text = path.read_text()
    assert text.count("#") > 20
    cfg = load_config(path, env={})
    assert cfg.inbox == tmp_path / "in" and cfg.backend == "local"
    assert (tmp_path / "in").is_dir() and (tmp_path / "out").is_dir() and (tmp_path / "st").is_dir()
    # A second init never overwrites a user's file.
    assert main(["init", "--config", str(path)]) == 2


def test_the_shipped_example_is_what_init_writes() -> None:
    assert (REPO / "config" / "nemowatch.example.toml").read_text() == example_text()


def test_the_contract_lists_every_config_key_with_its_default() -> None:
    """docs/contract.md is the reference users read: each key of the schema, its default as TOML, and no other."""
    contract = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", contract, re.MULTILINE)
    assert listed == [key.dotted for key in SCHEMA]
    for key in SCHEMA:
        default = tomli_w.dumps({"x": key.default}).strip().removeprefix("x = ")
        assert f"| `{key.dotted}` | `{default}` |" in contract, key.dotted
