"""The shipped systemd units load cleanly in systemd and keep their hardening and notify settings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEM_UNIT = REPO / "systemd" / "nemowatch.service"
USER_UNIT = REPO / "systemd" / "nemowatch-user.service"

# CI installs it (Debian package `systemd`); without it these checks cannot run, which is a failure.
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values...]}}``; systemd allows a key more than once, so values are lists."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def runnable_copy(unit: Path, target_dir: Path) -> Path:
    """A copy whose ExecStart names an executable that exists here.

    ``systemd-analyze verify`` checks that the ExecStart binary exists, and the real
    paths (/opt/nemowatch/bin/nemowatch, ~/.local/share/...) exist only on an installed
    machine. The same command run through this interpreter (``python -m nemowatch``)
    keeps every other line, so everything else is verified exactly as shipped.
    """
    text = re.sub(
        r"^ExecStart=\S+",
        f"ExecStart={sys.executable} -m nemowatch",
        unit.read_text(),
        count=1,
        flags=re.MULTILINE,
    )
    copy = target_dir / unit.name
    copy.write_text(text)
    return copy


def verify_problems(unit: Path, *, user: bool, tmp_path: Path) -> list[str]:
    """What ``systemd-analyze verify`` objects to in ``unit``: its exit status and every line naming the file.

    verify exits 0 even for unknown keys and unparsable values, printing them to stderr as
    ``<path>:<line>: ...``, so those lines are what count. Lines about other units are
    environment noise (a host's own units that verify loads as dependencies, such as
    complaints about /lib/systemd/system/*.service on a container image) and are ignored.
    """
    env = dict(os.environ)
    args = [SYSTEMD_ANALYZE, "verify", "--man=no"]
    if user:
        # A user manager needs a runtime directory; a CI container has no login session.
        runtime = tmp_path / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        args.append("--user")
    result = subprocess.run(
        [*args, str(unit)], capture_output=True, text=True, env=env, cwd=unit.parent, timeout=120
    )
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if unit.name in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}: {output}")
    return problems


@pytest.fixture(scope="module", autouse=True)
def _systemd_analyze_is_installed() -> None:
    if not Path(SYSTEMD_ANALYZE).exists():
        pytest.fail(
            "systemd-analyze is missing: install the Debian package `systemd` (apt-get install systemd)"
        )


def test_system_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert verify_problems(runnable_copy(SYSTEM_UNIT, tmp_path), user=False, tmp_path=tmp_path) == []


def test_user_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert verify_problems(runnable_copy(USER_UNIT, tmp_path), user=True, tmp_path=tmp_path) == []


def test_verify_check_catches_a_broken_unit(tmp_path: Path) -> None:
    broken = runnable_copy(SYSTEM_UNIT, tmp_path)
    broken.write_text(
        broken.read_text().replace("ProtectSystem=strict", "ProtectSystem=sometimes\nBogusKey=1")
    )
    problems = verify_problems(broken, user=False, tmp_path=tmp_path)
    assert any("ProtectSystem" in line or "protect system" in line for line in problems)
    assert any("BogusKey" in line for line in problems)


def test_both_units_notify_systemd_feed_a_watchdog_and_restart_with_a_limit() -> None:
    for unit in (SYSTEM_UNIT, USER_UNIT):
        parsed = parse_unit(unit)
        service, head = parsed["Service"], parsed["Unit"]
        assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"], unit
        assert 10 <= int(service["WatchdogSec"][0]) <= 300, unit
        assert service["Restart"] == ["on-failure"] and int(service["RestartSec"][0]) > 0, unit
        assert int(head["StartLimitBurst"][0]) > 1 and int(head["StartLimitIntervalSec"][0]) > 0, unit
        assert service["ExecStart"][0].split()[1] == "run", unit


SYSTEM_HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "DevicePolicy": "closed",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "SystemCallArchitectures": "native",
    "UMask": "0027",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
}

# The options a user manager applies without user namespaces (seccomp filters and process flags).
USER_HARDENING = (
    "NoNewPrivileges",
    "RestrictAddressFamilies",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "SystemCallFilter",
    "SystemCallArchitectures",
)
NEEDS_MOUNT_NAMESPACE = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ReadWritePaths")


def test_system_unit_runs_as_its_own_user_fully_hardened() -> None:
    service = parse_unit(SYSTEM_UNIT)["Service"]
    assert service["User"] == ["nemowatch"] and service["StateDirectory"] == ["nemowatch"]
    for key, value in SYSTEM_HARDENING.items():
        assert service.get(key) == [value], key


def test_system_unit_takes_the_token_as_a_credential_not_an_environment_variable() -> None:
    service = parse_unit(SYSTEM_UNIT)["Service"]
    assert service["LoadCredential"] == ["nemo-token:/etc/nemowatch/nemo-token"]
    assert "EnvironmentFile" not in service  # documented, commented out, as the alternative
    assert "#EnvironmentFile=-/etc/nemowatch/env" in SYSTEM_UNIT.read_text()
    assert not any("NEMO_TOKEN" in value for value in service.get("Environment", []))


def test_user_unit_keeps_only_hardening_that_works_unprivileged() -> None:
    service = parse_unit(USER_UNIT)["Service"]
    assert service["ExecStart"][0].startswith("%h/.local/share/nemowatch/venv/bin/nemowatch ")
    for key in USER_HARDENING:
        assert key in service, key
    for key in (*NEEDS_MOUNT_NAMESPACE, "LoadCredential", "User"):
        assert key not in service, key


def test_system_config_matches_the_folders_the_unit_lets_it_write() -> None:
    service = parse_unit(SYSTEM_UNIT)["Service"]
    config = tomllib.loads((REPO / "config" / "system.toml").read_text())["paths"]
    writable = {path.lstrip("-") for path in service["ReadWritePaths"][0].split()}
    assert writable == {config["inbox"], config["outbox"]}
    assert config["state"] == "/var/lib/" + service["StateDirectory"][0]
    assert "--config /etc/nemowatch/config.toml" in service["ExecStart"][0]
