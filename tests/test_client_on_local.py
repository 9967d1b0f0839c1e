"""The real NemoClient against the real local backend over loopback: the seam the daemon depends on."""

from __future__ import annotations

import asyncio
import re
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from nemowatch.api.client import NemoClient
from nemowatch.api.draft import is_ready_for_export
from nemowatch.api.errors import OutOfCredits, UnsupportedFile
from nemowatch.api.settings import ClientSettings
from nemowatch.local.server import LocalSettings, RunningServer, start_server

CLIENT_ID = "5b1f3c1e-8d2a-4c6e-9f00-0123456789ab"
PROMPT = "make a 3-second 720p video"


def server_settings(tmp_path: Path, **changes: object) -> LocalSettings:
    return LocalSettings(state_dir=tmp_path / "server", port=0, heartbeat_s=0.5, **changes)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with start_server(server_settings(tmp_path)) as running:
        yield running


def client_settings(server: RunningServer, tmp_path: Path) -> ClientSettings:
    return ClientSettings(
        base_url=server.url,
        web_url="http://web.invalid",
        state_dir=tmp_path / "client",
        client_id=CLIENT_ID,
        client_id_file=tmp_path / "client_id",
        retry_base_s=0.01,
        retry_cap_s=0.05,
        rate_limit_wait_s=0.01,
    )


def photo(path: Path, color: str = "orange") -> Path:
    Image.new("RGB", (96, 54), color).save(path)
    return path


def tone(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x10\x00\xf0\xff" * 4000)
    return path


def ffmpeg_facts(path: Path) -> str:
    """Decode the whole file (it must be valid) and return ffmpeg's description of its streams."""
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    decoded = subprocess.run(
        [exe, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True, timeout=120
    )
    assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr
    return subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


async def test_the_whole_client_flow_makes_a_decodable_mp4(server: RunningServer, tmp_path: Path) -> None:
    async with NemoClient(client_settings(server, tmp_path)) as client:
        info = await client.token_info()
        assert info.anonymous and info.expires_at is not None
        session = await client.create_session("Beach Day")
        link = await client.project_link(session.task_id, session.session_id)
        assert link.startswith("http://web.invalid/workspace/claim?ct=clm_")
        await client.upload_file(session.session_id, photo(tmp_path / "a.png"))
        await client.upload_file(session.session_id, photo(tmp_path / "b.jpg", "teal"))
        await client.upload_file(session.session_id, tone(tmp_path / "music.wav"))
        events: list[object] = []
        result = await client.send_message(session.session_id, PROMPT, on_event=events.append)
        assert result.completed and result.error is None
        assert result.text and result.tool_calls == 2
        state = await client.get_state(session.session_id)
        assert is_ready_for_export(state.draft)
        assert [v["name"] for v in state.video_infos] == ["a.png", "b.jpg", "music.wav"]
        assert (state.canvas_config["width"], state.canvas_config["height"]) == (1280, 720)
        credits = await client.credits()
        assert credits.available > 0
        render_id = await client.submit_render(session.session_id, state.draft)
        status = await client.render_status(render_id)
        while not status.finished:
            await asyncio.sleep(0.1)
            status = await client.render_status(render_id)
        assert status.status == "completed", status.error
        assert status.url is not None
        (tmp_path / "out").mkdir()
        target = await client.download_render(render_id, tmp_path / "out" / "Beach Day.mp4", url=status.url)
    facts = ffmpeg_facts(target)
    assert "h264" in facts and "1280x720" in facts
    seconds = re.search(r"Duration: 00:00:(\d+\.\d+)", facts)
    assert seconds is not None and float(seconds.group(1)) == pytest.approx(3.0, abs=0.25)


async def test_an_edit_after_generation_changes_the_draft_the_client_reads(
    server: RunningServer, tmp_path: Path
) -> None:
    async with NemoClient(client_settings(server, tmp_path)) as client:
        session = await client.create_session("Edits")
        await client.upload_file(session.session_id, photo(tmp_path / "a.png"))
        await client.send_message(session.session_id, PROMPT)
        before = await client.get_state(session.session_id)
        result = await client.send_message(session.session_id, "make it black and white")
        after = await client.get_state(session.session_id)
    assert result.completed and result.text
    assert after.draft != before.draft


async def test_the_client_renews_an_expired_anonymous_token_by_itself(tmp_path: Path) -> None:
    with start_server(server_settings(tmp_path, token_ttl_s=0.5)) as server:
        async with NemoClient(client_settings(server, tmp_path)) as client:
            await client.create_session("First")
            await asyncio.sleep(1.0)
            session = await client.create_session("After expiry")
    assert session.session_id.startswith("ses_")


async def test_out_of_credits_reaches_the_client_as_out_of_credits(tmp_path: Path) -> None:
    with start_server(server_settings(tmp_path, credits=10)) as server:
        async with NemoClient(client_settings(server, tmp_path)) as client:
            session = await client.create_session("Broke")
            await client.upload_file(session.session_id, photo(tmp_path / "a.png"))
            with pytest.raises(OutOfCredits):
                await client.send_message(session.session_id, PROMPT)


async def test_a_file_the_backend_cannot_decode_reaches_the_client_as_unsupported(
    server: RunningServer, tmp_path: Path
) -> None:
    fake = tmp_path / "clip.mov"
    fake.write_bytes(b"not a movie at all")
    async with NemoClient(client_settings(server, tmp_path)) as client:
        session = await client.create_session("Bad file")
        with pytest.raises(UnsupportedFile, match=r"clip\.mov"):
            await client.upload_file(session.session_id, fake)
