"""systemd notifications: READY, STATUS, STOPPING, and a watchdog that stops when the event loop hangs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemowatch.daemon.notify import Notifier, describe_queue
from nemowatch.states import JobState

REPO = Path(__file__).resolve().parents[1]


class NotifySocket:
    """The systemd side of the protocol: a datagram socket collecting every notification."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        """Every datagram already queued, without waiting."""
        got: list[str] = []
        self.sock.setblocking(False)
        while True:
            try:
                got.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                break
        self.messages.extend(got)
        return got

    def wait_for(
        self, line: str, count: int = 1, timeout: float = 60, proc: subprocess.Popen[str] | None = None
    ) -> list[str]:
        """Collect until ``line`` has arrived ``count`` times; fails after ``timeout`` s or when ``proc`` exits."""
        deadline = time.monotonic() + timeout
        while self.lines().count(line) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (proc is not None and proc.poll() is not None):
                self.drain()
                died = (
                    f"; the daemon exited with status {proc.poll()}"
                    if proc and proc.poll() is not None
                    else ""
                )
                pytest.fail(f"{line} arrived {self.lines().count(line)} times, wanted {count}{died}")
            self.sock.setblocking(True)
            self.sock.settimeout(min(remaining, 1.0))
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return self.messages

    def lines(self) -> list[str]:
        return [line for message in self.messages for line in message.splitlines()]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def test_ready_status_and_stopping_reach_the_notify_socket(notify_socket: NotifySocket) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": notify_socket.address})
    assert notifier.ready() and notifier.status("2 rendering,\n1 queued") and notifier.stopping()
    assert notify_socket.drain() == ["READY=1", "STATUS=2 rendering, 1 queued", "STOPPING=1"]


def test_abstract_namespace_socket_is_supported() -> None:
    sock = NotifySocket(f"@nemowatch-test-{uuid.uuid4().hex}")
    try:
        Notifier.from_env({"NOTIFY_SOCKET": sock.address}).ready()
        assert sock.wait_for("READY=1", timeout=5)
    finally:
        sock.close()


async def test_without_notify_socket_every_call_is_a_noop() -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.active
    assert not notifier.ready() and not notifier.status("x") and not notifier.stopping()
    assert notifier.start_watchdog() is None


def test_watchdog_meant_for_another_process_is_not_fed(notify_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    assert Notifier.from_env(env).watchdog_interval_s is None
    env["WATCHDOG_PID"] = str(os.getpid())
    assert Notifier.from_env(env).watchdog_interval_s == 0.5


async def test_watchdog_pings_stop_while_the_event_loop_is_blocked(notify_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "100000"}  # a ping every 50 ms
    task = Notifier.from_env(env).start_watchdog(asyncio.get_running_loop())
    assert task is not None
    try:
        await asyncio.sleep(0.5)
        assert "WATCHDOG=1" in notify_socket.drain()
        # Block the loop as a hung handler would. A timer thread would keep pinging through this;
        # a task on the loop cannot, so nothing may have been queued by the time the block ends.
        time.sleep(0.6)
        assert notify_socket.drain() == []
        await asyncio.sleep(0.5)
        assert "WATCHDOG=1" in notify_socket.drain()
    finally:
        task.cancel()


def test_queue_description_names_counts_in_pipeline_order() -> None:
    counts = {JobState.WAITING_CREDITS: 1, JobState.RENDERING: 2, JobState.DONE: 7, JobState.QUEUED: 0}
    assert describe_queue(counts, "/srv/inbox") == "2 rendering, 1 waiting for credits"
    assert describe_queue({JobState.DONE: 3}, Path("/srv/inbox")) == "idle, watching /srv/inbox"


def test_real_daemon_reports_ready_watchdog_status_and_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    inbox, outbox, state = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "state"
    for folder in (inbox, outbox, state):
        folder.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\ninbox = "{inbox}"\noutbox = "{outbox}"\nstate = "{state}"\n'
        '[backend]\nkind = "local"\n[watch]\nsettle_s = 1\n'
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NEMO", "WATCHDOG", "CREDENTIALS"))},
        "NOTIFY_SOCKET": notify_socket.address,
        "WATCHDOG_USEC": "200000",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemowatch", "run", "--config", str(config)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        notify_socket.wait_for("READY=1", timeout=60, proc=proc)
        notify_socket.wait_for("WATCHDOG=1", count=4, timeout=30, proc=proc)
        assert any(line.startswith("STATUS=") for line in notify_socket.lines()), notify_socket.messages
        proc.send_signal(signal.SIGTERM)
        notify_socket.wait_for("STOPPING=1", timeout=30)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate()
        print(stderr)  # shown by pytest when the test fails
    assert "Traceback" not in stderr
